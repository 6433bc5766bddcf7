"""The device registry's domain values: what the service takes and answers.

Plain frozen dataclasses, shared by the service, the store (which converts
its rows into them, so nothing above it sees a row), the importer and the
servicer. No gRPC and no SQL here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from iotkit.errors import FieldViolation


@dataclass(frozen=True, slots=True)
class NewDevice:
    """A device to register, as received (unchecked)."""

    name: str
    type: str
    location: tuple[float, float] | None


@dataclass(frozen=True, slots=True)
class ParsedRow:
    """An import row as parsed: the device to register, or why it cannot be."""

    device: NewDevice | None
    errors: list[FieldViolation] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Device:
    """A registered device; ``decommissioned_at`` is set once it is gone."""

    id: str
    owner_id: str
    name: str
    type: str
    status: str
    latitude: float | None
    longitude: float | None
    registered_at: datetime
    updated_at: datetime
    readings_total: int = 0
    last_seen_at: datetime | None = None
    decommissioned_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Credential:
    """A device credential; its token carries the id."""

    id: str
    device_id: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """One registry change, numbered in order for followers."""

    sequence: int
    kind: str
    device_id: str
    owner_id: str
    occurred_at: datetime
