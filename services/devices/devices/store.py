"""The devices service's tables and queries (SQLAlchemy 2, async).

Devices owns devices, their locations and status, their credentials, and
the event log other services follow. Rows stay here: every method takes and
answers the domain values of :mod:`services.devices.devices.values`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    LargeBinary,
    String,
    bindparam,
    exists,
    false,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from iotkit.listing import contains, fetch_page
from iotkit.point_reads import PointReads
from iotkit.sqltypes import SEQUENCE, UtcDateTime
from iotkit.validation import INT64_MAX
from services.devices.devices.values import Credential, Device, DeviceEvent


class Base(DeclarativeBase):
    """Declarative base of the devices tables."""


class DeviceRow(Base):
    """A registered device; decommissioned ones stay as tombstones for the event log."""

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(36), index=True)
    name: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    latitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    longitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    decommissioned_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    readings_total: Mapped[int] = mapped_column(BigInteger, default=0)


class CredentialRow(Base):
    """A device credential; its token carries the id, and revoking the row revokes the token."""

    __tablename__ = "device_credentials"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # The token sealed with a key of the service secret, so that the MQTT broker can be
    # given it later (a broker configured after it was issued, or one that lost its
    # state); None for a credential issued before tokens were kept.
    sealed_token: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # Whether the broker was given this credential's token (a failed grant leaves False).
    on_broker: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class DeviceEventRow(Base):
    """One registry change, numbered in order for followers."""

    __tablename__ = "device_events"

    sequence: Mapped[int] = mapped_column(SEQUENCE, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    device_id: Mapped[str] = mapped_column(String(36))
    owner_id: Mapped[str] = mapped_column(String(36))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)


@dataclass(frozen=True, slots=True)
class BrokerCredential:
    """A device's working credential as the MQTT broker needs it."""

    device_id: str
    credential_id: str
    sealed_token: bytes | None
    on_broker: bool


@dataclass(frozen=True, slots=True)
class DeviceQuery:
    """Filters, order and window of a device listing."""

    owner_id: str | None
    type: str | None
    status: str | None
    search: str | None
    sort: str
    offset: int
    limit: int


_ORDER = {
    "registered_at": (DeviceRow.registered_at.asc(), DeviceRow.id.asc()),
    "-registered_at": (DeviceRow.registered_at.desc(), DeviceRow.id.desc()),
    "name": (func.lower(DeviceRow.name).asc(), DeviceRow.id.asc()),
    "-name": (func.lower(DeviceRow.name).desc(), DeviceRow.id.desc()),
}
SORTS = tuple(_ORDER)


def _event(kind: str, device: DeviceRow, now: datetime) -> DeviceEventRow:
    return DeviceEventRow(kind=kind, device_id=device.id, owner_id=device.owner_id, occurred_at=now)


def _device(row: Any) -> Device:
    # A DeviceRow, or a core Row of its columns (read by name alike).
    return Device(
        id=row.id,
        owner_id=row.owner_id,
        name=row.name,
        type=row.type,
        status=row.status,
        latitude=row.latitude,
        longitude=row.longitude,
        registered_at=row.registered_at,
        updated_at=row.updated_at,
        readings_total=row.readings_total,
        last_seen_at=row.last_seen_at,
        decommissioned_at=row.decommissioned_at,
    )


def _device_row(device: Device) -> DeviceRow:
    return DeviceRow(
        id=device.id,
        owner_id=device.owner_id,
        name=device.name,
        type=device.type,
        status=device.status,
        latitude=device.latitude,
        longitude=device.longitude,
        registered_at=device.registered_at,
        updated_at=device.updated_at,
        readings_total=device.readings_total,
        last_seen_at=device.last_seen_at,
        decommissioned_at=device.decommissioned_at,
    )


_LIVE_DEVICE_VIEW = select(
    *DeviceRow.__table__.c,
    exists()
    .where(
        CredentialRow.device_id == DeviceRow.id,
        CredentialRow.revoked_at.is_(None),
        CredentialRow.expires_at > bindparam("now"),
    )
    .label("has_credential"),
).where(DeviceRow.id == bindparam("device_id"), DeviceRow.decommissioned_at.is_(None))
"""A live device and whether it holds a working credential, in one statement: built once,
so SQLAlchemy compiles it once (the read path of GetDevice, the gateway's commonest call)."""


class DeviceStore:
    """Queries over the devices tables; every method runs in its own transaction."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], reads: PointReads) -> None:
        self._sessions = sessions
        # The one-row reads of the hot path go past the session and the async engine: a
        # session's identity map and unit of work, and on SQLite the engine's trips to its
        # thread, cost many times the query itself (iotkit.point_reads).
        self._reads = reads

    async def add_devices(self, *, devices: Sequence[Device], now: datetime) -> None:
        """Insert devices with their "registered" events, all or none."""
        rows = [_device_row(device) for device in devices]
        async with self._sessions.begin() as session:
            session.add_all(rows)
            session.add_all(_event("registered", row, now) for row in rows)

    async def live_device(self, *, device_id: str) -> Device | None:
        """A device that has not been decommissioned."""
        async with self._sessions() as session:
            row = await session.scalar(
                select(DeviceRow).where(
                    DeviceRow.id == device_id, DeviceRow.decommissioned_at.is_(None)
                )
            )
            return None if row is None else _device(row)

    async def live_device_view(
        self, *, device_id: str, now: datetime
    ) -> tuple[Device, bool] | None:
        """A device that has not been decommissioned and whether it has a working credential
        (unrevoked and unexpired at ``now``), or None."""
        row = await self._reads.first(_LIVE_DEVICE_VIEW, {"device_id": device_id, "now": now})
        return None if row is None else (_device(row), bool(row.has_credential))

    async def list_devices(self, *, query: DeviceQuery) -> tuple[list[Device], int]:
        """A page of live devices matching ``query`` and how many match in all."""
        conditions: list[Any] = [DeviceRow.decommissioned_at.is_(None)]
        if query.owner_id is not None:
            conditions.append(DeviceRow.owner_id == query.owner_id)
        if query.type:
            conditions.append(DeviceRow.type == query.type)
        if query.status:
            conditions.append(DeviceRow.status == query.status)
        if query.search:
            conditions.append(contains(DeviceRow.name, query.search))
        async with self._sessions() as session:
            rows, total = await fetch_page(
                session,
                select(DeviceRow).where(*conditions).order_by(*_ORDER[query.sort]),
                offset=query.offset,
                limit=query.limit,
            )
            return [_device(row) for row in rows], total

    async def update_device(
        self, *, device_id: str, values: dict[str, Any], now: datetime
    ) -> Device | None:
        """Apply ``values`` to a live device and log the change; None if it is gone."""
        async with self._sessions.begin() as session:
            device = await session.scalar(
                select(DeviceRow)
                .where(DeviceRow.id == device_id, DeviceRow.decommissioned_at.is_(None))
                .with_for_update()
            )
            if device is None:
                return None
            for name, value in values.items():
                setattr(device, name, value)
            device.updated_at = now
            session.add(_event("updated", device, now))
            return _device(device)

    async def decommission(self, *, device_id: str, now: datetime) -> Device | None:
        """Tombstone a device, revoke its credentials and log it; None if already gone."""
        async with self._sessions.begin() as session:
            device = await session.scalar(
                select(DeviceRow)
                .where(DeviceRow.id == device_id, DeviceRow.decommissioned_at.is_(None))
                .with_for_update()
            )
            if device is None:
                return None
            device.decommissioned_at = now
            device.updated_at = now
            await session.execute(
                update(CredentialRow)
                .where(CredentialRow.device_id == device_id, CredentialRow.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            session.add(_event("decommissioned", device, now))
            return _device(device)

    async def replace_credential(
        self, *, credential: Credential, now: datetime, sealed_token: bytes | None = None
    ) -> int:
        """Store a new credential (with its sealed token) and revoke the device's others;
        answers how many were revoked."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(CredentialRow)
                .where(
                    CredentialRow.device_id == credential.device_id,
                    CredentialRow.revoked_at.is_(None),
                )
                .values(revoked_at=now)
            )
            session.add(
                CredentialRow(
                    id=credential.id,
                    device_id=credential.device_id,
                    created_at=credential.created_at,
                    expires_at=credential.expires_at,
                    sealed_token=sealed_token,
                    on_broker=False,
                )
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def revoke_credentials(self, *, device_id: str, now: datetime) -> int:
        """Revoke every working credential of a device; answers how many."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(CredentialRow)
                .where(CredentialRow.device_id == device_id, CredentialRow.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def credential_is_live(
        self, *, credential_id: str, device_id: str, now: datetime
    ) -> bool:
        """True when the credential belongs to the device, is unrevoked and unexpired."""
        async with self._sessions() as session:
            found = await session.scalar(
                select(CredentialRow.id).where(
                    CredentialRow.id == credential_id,
                    CredentialRow.device_id == device_id,
                    CredentialRow.revoked_at.is_(None),
                    CredentialRow.expires_at > now,
                )
            )
            return found is not None

    async def devices_with_credentials(
        self, *, device_ids: Iterable[str], now: datetime
    ) -> set[str]:
        """Which of ``device_ids`` have a working credential."""
        ids = list(device_ids)
        if not ids:
            return set()
        async with self._sessions() as session:
            rows = await session.scalars(
                select(CredentialRow.device_id).where(
                    CredentialRow.device_id.in_(ids),
                    CredentialRow.revoked_at.is_(None),
                    CredentialRow.expires_at > now,
                )
            )
            return set(rows)

    def _working(self, now: datetime) -> Any:
        return select(
            CredentialRow.device_id,
            CredentialRow.id,
            CredentialRow.sealed_token,
            CredentialRow.on_broker,
        ).where(CredentialRow.revoked_at.is_(None), CredentialRow.expires_at > now)

    async def broker_credentials_after(
        self, *, after: str, limit: int, now: datetime
    ) -> list[BrokerCredential]:
        """Up to ``limit`` working credentials of devices whose id sorts after ``after``,
        by device id (pages of the broker's reconciliation)."""
        statement = (
            self._working(now)
            .where(CredentialRow.device_id > after)
            .order_by(CredentialRow.device_id, CredentialRow.id)
            .limit(limit)
        )
        async with self._sessions() as session:
            rows = (await session.execute(statement)).all()
        return [BrokerCredential(*row) for row in rows]

    async def broker_credentials(
        self, *, device_ids: Iterable[str], now: datetime
    ) -> dict[str, BrokerCredential]:
        """The working credential of each of ``device_ids`` that has one."""
        ids = list(device_ids)
        if not ids:
            return {}
        async with self._sessions() as session:
            rows = (
                await session.execute(self._working(now).where(CredentialRow.device_id.in_(ids)))
            ).all()
        return {row[0]: BrokerCredential(*row) for row in rows}

    async def mark_on_broker(self, *, credential_ids: Iterable[str]) -> None:
        """Record that the broker was given these credentials' tokens."""
        ids = list(credential_ids)
        if not ids:
            return
        async with self._sessions.begin() as session:
            await session.execute(
                update(CredentialRow).where(CredentialRow.id.in_(ids)).values(on_broker=True)
            )

    async def record_activity(
        self, *, device_id: str, last_seen_at: datetime | None, readings: int
    ) -> bool:
        """Add to the reading counter and advance last-seen, never backwards."""
        async with self._sessions.begin() as session:
            device = await session.scalar(
                select(DeviceRow)
                .where(DeviceRow.id == device_id, DeviceRow.decommissioned_at.is_(None))
                .with_for_update()
            )
            if device is None:
                return False
            # The counter stops at the column's largest value rather than fail the report.
            device.readings_total = min(device.readings_total + readings, INT64_MAX)
            if last_seen_at is not None and (
                device.last_seen_at is None or last_seen_at > device.last_seen_at
            ):
                device.last_seen_at = last_seen_at
            return True

    async def events_after(self, *, sequence: int, limit: int) -> list[DeviceEvent]:
        """Events after ``sequence``, oldest first."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(DeviceEventRow)
                .where(DeviceEventRow.sequence > sequence)
                .order_by(DeviceEventRow.sequence)
                .limit(limit)
            )
            return [
                DeviceEvent(
                    sequence=row.sequence,
                    kind=row.kind,
                    device_id=row.device_id,
                    owner_id=row.owner_id,
                    occurred_at=row.occurred_at,
                )
                for row in rows
            ]
