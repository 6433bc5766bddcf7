"""gRPC <-> domain translation for ``iot.devices.v1.DeviceService``."""

from __future__ import annotations

from typing import Any, TypeAlias

from grpc import aio

from iot.devices.v1 import devices_pb2, devices_pb2_grpc
from iotkit.context import current_caller
from iotkit.convert import datetime_field, timestamp
from iotkit.listing import pagination
from services.devices.devices.importer import parse_content
from services.devices.devices.service import (
    ACCESS_TTL_SECONDS,
    DeviceService,
    DeviceView,
    NewDevice,
    ParsedRow,
)

Context: TypeAlias = aio.ServicerContext[Any, Any]


def device_message(view: DeviceView) -> devices_pb2.Device:
    """A device as the API shows it (seed 000 DeviceResponseDTO)."""
    row = view.row
    location = None
    if row.latitude is not None and row.longitude is not None:
        location = devices_pb2.Location(latitude=row.latitude, longitude=row.longitude)
    return devices_pb2.Device(
        device_id=row.id,
        user_id=row.owner_id,
        name=row.name,
        type=row.type,
        registered_at=timestamp(row.registered_at),
        location=location,
        status=row.status,
        last_seen_at=timestamp(row.last_seen_at),
        readings_total=row.readings_total,
        has_credential=view.has_credential,
        updated_at=timestamp(row.updated_at),
    )


def _new_device(request: devices_pb2.RegisterDeviceRequest) -> NewDevice:
    location = None
    if request.HasField("location"):
        location = (request.location.latitude, request.location.longitude)
    return NewDevice(request.name, request.type, location)


class DeviceServicer(devices_pb2_grpc.DeviceServiceServicer):
    """Each RPC reads its message, calls the service and builds the answer."""

    def __init__(self, service: DeviceService) -> None:
        self._service = service

    async def RegisterDevice(
        self, request: devices_pb2.RegisterDeviceRequest, context: Context
    ) -> devices_pb2.Device:
        """Register a device."""
        view = await self._service.register(caller=current_caller(), device=_new_device(request))
        return device_message(view)

    async def ListDevices(
        self, request: devices_pb2.ListDevicesRequest, context: Context
    ) -> devices_pb2.ListDevicesResponse:
        """A page of devices."""
        page = await self._service.list_devices(
            caller=current_caller(),
            page=request.page,
            limit=request.limit,
            type=request.type,
            status=request.status,
            search=request.search,
            sort=request.sort,
        )
        return devices_pb2.ListDevicesResponse(
            devices=[device_message(view) for view in page.devices],
            total_count=page.total,
            pagination=pagination(page.request, page.total),
        )

    async def GetDevice(
        self, request: devices_pb2.GetDeviceRequest, context: Context
    ) -> devices_pb2.Device:
        """One device."""
        return device_message(
            await self._service.get(caller=current_caller(), device_id=request.device_id)
        )

    async def UpdateDevice(
        self, request: devices_pb2.UpdateDeviceRequest, context: Context
    ) -> devices_pb2.Device:
        """Change a device."""
        location = None
        if request.HasField("location"):
            location = (request.location.latitude, request.location.longitude)
        view = await self._service.update(
            caller=current_caller(),
            device_id=request.device_id,
            name=request.name if request.HasField("name") else None,
            location=location,
            clear_location=request.clear_location,
            status=request.status if request.HasField("status") else None,
        )
        return device_message(view)

    async def DecommissionDevice(
        self, request: devices_pb2.DecommissionDeviceRequest, context: Context
    ) -> devices_pb2.DecommissionDeviceResponse:
        """Decommission a device."""
        gone = await self._service.decommission(
            caller=current_caller(), device_id=request.device_id
        )
        return devices_pb2.DecommissionDeviceResponse(
            device_id=gone.id, decommissioned_at=timestamp(gone.decommissioned_at)
        )

    async def IssueDeviceCredential(
        self, request: devices_pb2.IssueDeviceCredentialRequest, context: Context
    ) -> devices_pb2.DeviceCredential:
        """Issue a device credential."""
        issued = await self._service.issue_credential(
            caller=current_caller(), device_id=request.device_id, valid_days=request.valid_days
        )
        return devices_pb2.DeviceCredential(
            credential_id=issued.credential.id,
            device_id=issued.credential.device_id,
            token=issued.token,
            token_type="bearer",
            scopes=issued.scopes,
            created_at=timestamp(issued.credential.created_at),
            expires_at=timestamp(issued.credential.expires_at),
        )

    async def RevokeDeviceCredential(
        self, request: devices_pb2.RevokeDeviceCredentialRequest, context: Context
    ) -> devices_pb2.RevokeDeviceCredentialResponse:
        """Revoke a device's credential."""
        revoked = await self._service.revoke_credential(
            caller=current_caller(), device_id=request.device_id
        )
        return devices_pb2.RevokeDeviceCredentialResponse(
            device_id=request.device_id, revoked=revoked
        )

    async def ImportDevices(
        self, request: devices_pb2.ImportDevicesRequest, context: Context
    ) -> devices_pb2.ImportDevicesResponse:
        """Register devices in bulk."""
        rows: list[ParsedRow]
        if request.devices:
            rows = [ParsedRow(_new_device(device)) for device in request.devices]
            if request.content:
                rows += parse_content(format=request.format, content=request.content)
        else:
            rows = parse_content(format=request.format or "json", content=request.content)
        outcomes = await self._service.import_devices(caller=current_caller(), rows=rows)
        results = [
            devices_pb2.ImportRowResult(
                row=outcome.row,
                status="created" if outcome.device else "rejected",
                device=device_message(outcome.device) if outcome.device else None,
                errors=[
                    devices_pb2.FieldError(field=e.field, message=e.message) for e in outcome.errors
                ],
            )
            for outcome in outcomes
        ]
        created = sum(1 for outcome in outcomes if outcome.device)
        return devices_pb2.ImportDevicesResponse(
            created=created, rejected=len(outcomes) - created, results=results
        )

    async def CheckDeviceAccess(
        self, request: devices_pb2.CheckDeviceAccessRequest, context: Context
    ) -> devices_pb2.DeviceAccess:
        """Whether the forwarded caller may use a device's data."""
        access = await self._service.check_access(
            caller=current_caller(), device_id=request.device_id, access=request.access
        )
        device = access.device
        return devices_pb2.DeviceAccess(
            allowed=access.allowed,
            reason=access.reason,
            device_id=request.device_id,
            owner_id=device.owner_id if device and access.allowed else "",
            device_type=device.type if device and access.allowed else "",
            ttl_seconds=ACCESS_TTL_SECONDS,
        )

    async def RecordDeviceActivity(
        self, request: devices_pb2.RecordDeviceActivityRequest, context: Context
    ) -> devices_pb2.RecordDeviceActivityResponse:
        """Telemetry's activity report."""
        recorded = await self._service.record_activity(
            device_id=request.device_id,
            last_seen_at=datetime_field(request, "last_seen_at"),
            readings=request.readings,
        )
        return devices_pb2.RecordDeviceActivityResponse(recorded=recorded)

    async def ListDeviceEvents(
        self, request: devices_pb2.ListDeviceEventsRequest, context: Context
    ) -> devices_pb2.ListDeviceEventsResponse:
        """Registry events after a cursor."""
        events = await self._service.events(after=request.after_sequence, limit=request.limit)
        return devices_pb2.ListDeviceEventsResponse(
            events=[
                devices_pb2.DeviceEvent(
                    sequence=event.sequence,
                    kind=event.kind,
                    device_id=event.device_id,
                    owner_id=event.owner_id,
                    occurred_at=timestamp(event.occurred_at),
                )
                for event in events
            ]
        )
