"""The device registry's logic: ownership, validation, credentials, access checks.

No gRPC and no SQL here: it takes and answers the domain values of
:mod:`services.devices.devices.values`. A user sees and changes only their
own devices (another user's device is "not found"); an admin sees all.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from iotkit import reasons
from iotkit.context import Caller
from iotkit.errors import FieldViolation, NotFound, Unavailable
from iotkit.listing import PageRequest, check_page
from iotkit.ownership import owned
from iotkit.sqltypes import utcnow
from iotkit.validation import INT64_MAX, Violations, check_uuid
from services.devices.broker import BrokerAccess
from services.devices.devices import rules
from services.devices.devices.importer import MAX_CONTENT_CHARS, MAX_ROWS, parse_content
from services.devices.devices.store import SORTS, DeviceQuery, DeviceStore
from services.devices.devices.values import (
    Credential,
    Device,
    DeviceEvent,
    NewDevice,
    ParsedRow,
)

log = logging.getLogger(__name__)

ACCESS_TTL_SECONDS = 30
DEFAULT_VALID_DAYS, MAX_VALID_DAYS = 365, 3650
EVENTS_DEFAULT, EVENTS_MAX = 100, 1000
_ACCESS_SCOPES = {"read": "telemetry:read", "write": "telemetry:write"}
MQTT_INGEST_SCOPE = "devices:ingest"
"""The service scope (telemetry's) to write any device that holds a working credential."""


@dataclass(frozen=True, slots=True)
class DeviceView:
    """A device with what the registry knows about its credential."""

    device: Device
    has_credential: bool


@dataclass(frozen=True, slots=True)
class DevicePage:
    """One page of a listing."""

    devices: list[DeviceView]
    total: int
    request: PageRequest


@dataclass(frozen=True, slots=True)
class IssuedCredential:
    """A new credential with its token, shown once."""

    credential: Credential
    token: str
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Access:
    """Whether a caller may use a device's data, and why not.

    The owner and type of the device are told only when access is allowed, so a
    refusal never reveals whose device it is; callers may cache the answer for
    ``ttl_seconds``.
    """

    allowed: bool
    reason: str
    owner_id: str = ""
    device_type: str = ""
    # Read when the answer is made, so that tests may set the module's TTL to 0.
    ttl_seconds: int = field(default_factory=lambda: ACCESS_TTL_SECONDS)


@dataclass(frozen=True, slots=True)
class RowOutcome:
    """The result of one imported row."""

    row: int
    device: DeviceView | None
    errors: list[FieldViolation]


@dataclass(frozen=True, slots=True)
class ImportResult:
    """The outcome of a bulk import: one per row, in order, and the counts."""

    outcomes: list[RowOutcome]
    created: int
    rejected: int


class DeviceTokenMinter(Protocol):
    """Asks auth to sign the token of a recorded credential."""

    async def __call__(
        self, *, device_id: str, owner_id: str, credential_id: str, ttl_seconds: int
    ) -> tuple[str, tuple[str, ...]]:
        """Answers the token and its scopes."""
        ...


class DeviceService:
    """The registry of devices and their credentials."""

    def __init__(
        self,
        *,
        store: DeviceStore,
        mint_token: DeviceTokenMinter,
        broker: BrokerAccess | None = None,
        seal: Callable[[str], bytes] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        """``seal`` seals a credential's token to keep beside it, so that a broker can be
        given it later (``services.devices.broker_sync``); None keeps no token."""
        self._store = store
        self._mint_token = mint_token
        # The MQTT broker's accounts follow the credentials; None when no broker is configured.
        self._broker = broker
        self._seal = seal
        self._clock = clock

    async def register(self, *, caller: Caller, device: NewDevice) -> DeviceView:
        """Register one device for the caller."""
        violations = Violations()
        new = self._checked_device(violations, caller, device)
        violations.raise_if_any()
        await self._store.add_devices(devices=[new], now=new.registered_at)
        return DeviceView(new, False)

    async def import_devices(
        self, *, caller: Caller, devices: Sequence[NewDevice], format: str, content: str
    ) -> ImportResult:
        """Register every valid row of ``devices`` then of ``content``; one outcome per row.

        ``content`` is CSV or JSON as ``format`` says; JSON when only content is given
        and its format is not.
        """
        violations = Violations()
        if len(content) > MAX_CONTENT_CHARS:
            violations.add(
                "content", f"Content must be at most {MAX_CONTENT_CHARS:,} characters (1 MiB)"
            )
        if len(devices) > MAX_ROWS:
            violations.add("devices", f"At most {MAX_ROWS} rows per import")
        violations.raise_if_any()
        rows: list[ParsedRow]
        if devices:
            rows = [ParsedRow(device) for device in devices]
            if content:
                rows += parse_content(format=format, content=content)
        else:
            rows = parse_content(format=format or "json", content=content)
        outcomes = await self._import_rows(caller, rows)
        created = sum(1 for outcome in outcomes if outcome.device)
        return ImportResult(outcomes, created, len(outcomes) - created)

    async def _import_rows(self, caller: Caller, rows: Sequence[ParsedRow]) -> list[RowOutcome]:
        outcomes: list[RowOutcome] = []
        accepted: list[Device] = []
        for number, parsed in enumerate(rows, start=1):
            if parsed.device is None:
                outcomes.append(RowOutcome(number, None, parsed.errors))
                continue
            violations = Violations()
            new = self._checked_device(violations, caller, parsed.device)
            if errors := violations.found():  # the row is reported, the others go on
                outcomes.append(RowOutcome(number, None, errors))
                continue
            accepted.append(new)
            outcomes.append(RowOutcome(number, DeviceView(new, False), []))
        if accepted:
            await self._store.add_devices(devices=accepted, now=self._clock())
        return outcomes

    async def list_devices(
        self,
        *,
        caller: Caller,
        page: int,
        limit: int,
        type: str,
        status: str,
        search: str,
        sort: str,
    ) -> DevicePage:
        """A page of the caller's devices (all devices for an admin)."""
        violations = Violations()
        request = check_page(violations, page, limit)
        if type:
            type = rules.check_choice(violations, type, rules.DEVICE_TYPES, field="type")
        if status:
            status = rules.check_choice(violations, status, rules.DEVICE_STATUSES, field="status")
        sort = sort or "-registered_at"
        if sort not in SORTS:
            violations.add("sort", f"Sort must be one of: {', '.join(SORTS)}")
        if len(search) > rules.NAME_MAX:
            violations.add("search", "Search must be at most 100 characters")
        violations.raise_if_any()
        query = DeviceQuery(
            owner_id=None if caller.is_admin else caller.subject,
            type=type or None,
            status=status or None,
            search=search.strip() or None,
            sort=sort,
            offset=request.offset,
            limit=request.limit,
        )
        devices, total = await self._store.list_devices(query=query)
        return DevicePage(await self._views(devices), total, request)

    async def get(self, *, caller: Caller, device_id: str) -> DeviceView:
        """One of the caller's devices."""
        # One statement answers the device and its credential; the credential's presence is
        # only told once ownership has been checked.
        found = await self._store.live_device_view(
            device_id=_device_id(device_id), now=self._clock()
        )
        device = _theirs(found[0] if found else None, caller)
        return DeviceView(device, found is not None and found[1])

    async def update(
        self,
        *,
        caller: Caller,
        device_id: str,
        name: str | None,
        location: tuple[float, float] | None,
        clear_location: bool,
        status: str | None,
    ) -> DeviceView:
        """Change name, location or status of one of the caller's devices."""
        device = await self._owned(caller, device_id)
        violations = Violations()
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = rules.check_name(violations, name)
        if status is not None:
            values["status"] = rules.check_choice(
                violations, status, rules.DEVICE_STATUSES, field="status"
            )
        if location is not None and clear_location:
            violations.add("clear_location", "Give either a location or clear_location, not both")
        elif location is not None:
            coordinates = rules.check_location(violations, *location)
            values.update(latitude=coordinates.latitude, longitude=coordinates.longitude)
        elif clear_location:
            values.update(latitude=None, longitude=None)
        violations.raise_if_any()
        updated = await self._store.update_device(
            device_id=device.id, values=values, now=self._clock()
        )
        if updated is None:
            raise NotFound("Device not found")
        return (await self._views([updated]))[0]

    async def decommission(self, *, caller: Caller, device_id: str) -> Device:
        """Decommission one of the caller's devices."""
        device = await self._owned(caller, device_id)
        gone = await self._store.decommission(device_id=device.id, now=self._clock())
        if gone is None:
            raise NotFound("Device not found")
        if self._broker is not None:
            try:
                await self._broker.revoke(device_id=device.id)
            except RuntimeError as exc:  # the registry has spoken; the broker is told again on
                # a revoke of the same device (it answers NotFound then: nothing more to do)
                log.error("device %s decommissioned but not removed from MQTT: %s", device.id, exc)
        return gone

    async def issue_credential(
        self, *, caller: Caller, device_id: str, valid_days: int
    ) -> IssuedCredential:
        """A new credential for one of the caller's devices; earlier ones stop working."""
        violations = Violations()
        if valid_days < 0 or valid_days > MAX_VALID_DAYS:
            violations.add("valid_days", f"valid_days must be between 1 and {MAX_VALID_DAYS}")
        violations.raise_if_any()
        device = await self._owned(caller, device_id)
        now = self._clock()
        days = valid_days or DEFAULT_VALID_DAYS
        credential = Credential(
            id=str(uuid.uuid4()),
            device_id=device.id,
            created_at=now,
            expires_at=now + timedelta(days=days),
        )
        try:
            token, scopes = await self._mint_token(
                device_id=device.id,
                owner_id=device.owner_id,
                credential_id=credential.id,
                ttl_seconds=days * 24 * 3600,
            )
        except Exception as exc:  # nothing is stored when auth cannot sign
            raise Unavailable("Cannot issue a credential right now; retry shortly") from exc
        await self._store.replace_credential(
            credential=credential,
            now=now,
            sealed_token=self._seal(token) if self._seal is not None else None,
        )
        if self._broker is not None:
            try:
                await self._broker.grant(device_id=device.id, password=token)
            except RuntimeError as exc:
                # The credential works over gRPC and REST; MQTT takes it when the broker is
                # next reconciled (devices' reconnection or restart), or once issued again.
                log.error("credential of device %s not provisioned on MQTT: %s", device.id, exc)
            else:
                try:
                    await self._store.mark_on_broker(credential_ids=[credential.id])
                except Exception as exc:  # issued all the same: the next reconciliation
                    # grants it again, which changes nothing
                    log.warning(
                        "credential of device %s on MQTT but not marked so: %s",
                        device.id,
                        type(exc).__name__,
                    )
        return IssuedCredential(credential, token, scopes)

    async def revoke_credential(self, *, caller: Caller, device_id: str) -> int:
        """Revoke the credential of one of the caller's devices; answers how many were working."""
        device = await self._owned(caller, device_id)
        revoked = await self._store.revoke_credentials(device_id=device.id, now=self._clock())
        if self._broker is not None:
            try:
                await self._broker.revoke(device_id=device.id)
            except RuntimeError as exc:
                # Revoked here, maybe still connected there: say so, so that the caller retries.
                log.error("device %s revoked but not removed from MQTT: %s", device.id, exc)
                raise Unavailable(
                    "The credential is revoked, but the MQTT broker could not be told; retry"
                ) from None
        return revoked

    async def check_access(self, *, caller: Caller, device_id: str, access: str) -> Access:
        """Whether ``caller`` may read or write the data of a device."""
        violations = Violations()
        device_id = check_uuid(violations, device_id, field="device_id")
        access = rules.check_choice(violations, access, ("read", "write"), field="access")
        violations.raise_if_any()
        device = await self._store.live_device(device_id=device_id)
        if device is None:
            return Access(False, "not_found")
        if caller.token_type == "service":
            # Telemetry writing what a device published over MQTT: the broker authenticated the
            # device, and takes it only while it holds a working credential (checked here too).
            if access != "write" or MQTT_INGEST_SCOPE not in caller.scopes:
                return Access(False, "missing_scope")
            live = await self._store.devices_with_credentials(
                device_ids=[device.id], now=self._clock()
            )
            if device.id not in live:
                return Access(False, "credential_revoked")
        elif _ACCESS_SCOPES[access] not in caller.scopes:
            return Access(False, "missing_scope")
        elif caller.token_type == "device":
            credential = str(caller.claims.get("cid", ""))
            if caller.subject != device.id or caller.claims.get("owner") != device.owner_id:
                return Access(False, "not_found")
            if not await self._store.credential_is_live(
                credential_id=credential, device_id=device.id, now=self._clock()
            ):
                return Access(False, "credential_revoked")
        elif caller.token_type == "site":
            # A site uploads for its account: it writes the devices of the account's owner
            # (the ``owner`` claim auth put in its token) and reads nothing.
            owner = caller.claims.get("owner")
            if access != "write" or not owner or device.owner_id != owner:
                return Access(False, "not_found")
        elif device.owner_id != caller.subject and not caller.is_admin:
            return Access(False, "not_found")
        if access == "write" and device.status == "inactive":
            return Access(False, "inactive")
        return Access(True, "", owner_id=device.owner_id, device_type=device.type)

    async def record_activity(
        self, *, device_id: str, last_seen_at: datetime | None, readings: int
    ) -> bool:
        """Telemetry's report of what it stored for a device."""
        violations = Violations()
        device_id = check_uuid(violations, device_id, field="device_id")
        if readings > INT64_MAX:
            violations.add("readings", f"Readings must be at most {INT64_MAX}")
        violations.raise_if_any()
        return await self._store.record_activity(
            device_id=device_id, last_seen_at=last_seen_at, readings=readings
        )

    async def events(self, *, after: int, limit: int) -> list[DeviceEvent]:
        """Registry events after a cursor."""
        violations = Violations()
        if limit < 0 or limit > EVENTS_MAX:
            violations.add("limit", f"Limit must be between 1 and {EVENTS_MAX}")
        violations.raise_if_any()
        # No sequence is past what the column holds: a cursor beyond it has no events after.
        return await self._store.events_after(
            sequence=min(after, INT64_MAX), limit=limit or EVENTS_DEFAULT
        )

    def _checked_device(self, violations: Violations, caller: Caller, device: NewDevice) -> Device:
        name = rules.check_name(violations, device.name, field="name")
        kind = rules.check_choice(violations, device.type, rules.DEVICE_TYPES, field="type")
        latitude = longitude = None
        if device.location is not None:
            coordinates = rules.check_location(violations, *device.location, field="location")
            latitude, longitude = coordinates.latitude, coordinates.longitude
        now = self._clock()
        return Device(
            id=str(uuid.uuid4()),
            owner_id=caller.subject,
            name=name,
            type=kind,
            status="active",
            latitude=latitude,
            longitude=longitude,
            registered_at=now,
            updated_at=now,
            readings_total=0,
        )

    async def _owned(self, caller: Caller, device_id: str) -> Device:
        return _theirs(await self._store.live_device(device_id=_device_id(device_id)), caller)

    async def _views(self, devices: Sequence[Device]) -> list[DeviceView]:
        with_credentials = await self._store.devices_with_credentials(
            device_ids=[device.id for device in devices], now=self._clock()
        )
        return [DeviceView(device, device.id in with_credentials) for device in devices]


def _device_id(device_id: str) -> str:
    """``device_id`` when it is a UUID; else INVALID_ARGUMENT on the field."""
    violations = Violations()
    device_id = check_uuid(violations, device_id, field="device_id")
    violations.raise_if_any()
    return device_id


def _theirs(device: Device | None, caller: Caller) -> Device:
    """``device`` when it is the caller's (or the caller an admin); else NOT_FOUND."""
    return owned(device, caller, message="Device not found", reason=reasons.DEVICE_NOT_FOUND)
