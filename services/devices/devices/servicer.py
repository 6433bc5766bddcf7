"""gRPC <-> domain translation for ``iot.devices.v1.DeviceService``."""

from __future__ import annotations

from typing import Any, TypeAlias

from grpc import aio

from iot.devices.v1 import devices_pb2, devices_pb2_grpc
from iotkit.context import current_caller
from iotkit.convert import datetime_field, timestamp
from iotkit.listing import pagination
from services.devices.devices.service import DeviceService, DeviceView
from services.devices.devices.values import NewDevice

Context: TypeAlias = aio.ServicerContext[Any, Any]


def device_message(view: DeviceView) -> devices_pb2.Device:
    """A device as the API shows it (seed 000 DeviceResponseDTO)."""
    device = view.device
    location = None
    if device.latitude is not None and device.longitude is not None:
        location = devices_pb2.Location(latitude=device.latitude, longitude=device.longitude)
    return devices_pb2.Device(
        device_id=device.id,
        user_id=device.owner_id,
        name=device.name,
        type=device.type,
        registered_at=timestamp(device.registered_at),
        location=location,
        status=device.status,
        last_seen_at=timestamp(device.last_seen_at),
        readings_total=device.readings_total,
        has_credential=view.has_credential,
        updated_at=timestamp(device.updated_at),
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
        imported = await self._service.import_devices(
            caller=current_caller(),
            devices=[_new_device(device) for device in request.devices],
            format=request.format,
            content=request.content,
        )
        results = [
            devices_pb2.ImportRowResult(
                row=outcome.row,
                status="created" if outcome.device else "rejected",
                device=device_message(outcome.device) if outcome.device else None,
                errors=[
                    devices_pb2.FieldError(field=e.field, message=e.message) for e in outcome.errors
                ],
            )
            for outcome in imported.outcomes
        ]
        return devices_pb2.ImportDevicesResponse(
            created=imported.created, rejected=imported.rejected, results=results
        )

    async def CheckDeviceAccess(
        self, request: devices_pb2.CheckDeviceAccessRequest, context: Context
    ) -> devices_pb2.DeviceAccess:
        """Whether the forwarded caller may use a device's data."""
        access = await self._service.check_access(
            caller=current_caller(), device_id=request.device_id, access=request.access
        )
        return devices_pb2.DeviceAccess(
            allowed=access.allowed,
            reason=access.reason,
            device_id=request.device_id,
            owner_id=access.owner_id,
            device_type=access.device_type,
            ttl_seconds=access.ttl_seconds,
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
