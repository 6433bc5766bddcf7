"""Ingest: checking a batch, resolving its streams, and handing it to the writer.

Every problem is reported per entry with a reason and a count; the rest of
the batch is stored. The caller's own token decides which devices it may
write (a user's own devices, or a device credential's one device). A stream
is created on its first stored reading, never for an entry none of whose
readings is stored. The bulk upload (:meth:`IngestService.upload`) fails
outright when it stores nothing, so that a REST client never reads a refusal
as a success. What is stored is told to the activity sink (the devices
service's last-seen and readings counts), whoever wrote it: a device, a user
or a file import.
"""

from __future__ import annotations

import re
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from iotkit import reasons
from iotkit.codec import Float64s, Int64s
from iotkit.context import Caller
from iotkit.convert import epoch_micros
from iotkit.device_access import DeviceAccessClient
from iotkit.errors import (
    DomainError,
    FailedPrecondition,
    FieldViolation,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from iotkit.sqltypes import utcnow
from iotkit.validation import Violations, check_uuid
from services.telemetry.telemetry.store import TelemetryStore
from services.telemetry.telemetry.values import Stream
from services.telemetry.telemetry.writer import GroupWriter, Prepared

MAX_BATCH_READINGS = 100_000
FUTURE_TOLERANCE_US = 5 * 60 * 1_000_000
OLDEST_US = 946_684_800 * 1_000_000  # 2000-01-01: older readings are almost surely unit mistakes
# \Z, not $: "$" also matches before a final newline, and "temp\n" is no metric name.
METRIC_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}\Z")
STREAM_CACHE_SIZE = 100_000
MAX_MAGNITUDE = 1e150
"""Largest magnitude of a reading's value: the squares of a range's values (its standard
deviation) then stay far from float64's overflow at about 1.8e308, whatever its length."""
MAX_STREAMS_PER_DEVICE = 100  # the default of IOT_MAX_STREAMS_PER_DEVICE

ActivitySink = Callable[[str, int, int], None]
"""Told (device id, newest timestamp µs, readings stored) for each entry that stored readings."""


@dataclass(frozen=True, slots=True)
class EntryIn:
    """Readings of one stream as received."""

    stream_id: str
    device_id: str
    metric_name: str
    timestamps: Int64s
    values: Float64s


# Where the bulk upload's refusals point, by rejection reason (others: "readings").
_REASON_FIELDS = {
    "NON_FINITE_VALUE": "readings.value",
    "VALUE_OUT_OF_RANGE": "readings.value",
    "TIMESTAMP_IN_FUTURE": "readings.timestamp",
    "TIMESTAMP_TOO_OLD": "readings.timestamp",
    "UNKNOWN_DEVICE": "device_id",
    "INVALID_METRIC": "metric_name",
}


@dataclass(frozen=True, slots=True)
class Rejected:
    """Readings of one entry that were not stored, and why."""

    index: int
    # The stream concerned; "" when the entry reached none (never the device id).
    stream_id: str
    count: int
    reason: str
    message: str
    # The device the entry named, canonical; "" when it named none that is well-formed.
    device_id: str = ""
    # For DEVICE_NOT_ALLOWED: why devices refused ("not_found", "credential_revoked", ...).
    access: str = ""


@dataclass
class BatchResult:
    """What happened to a batch: each reading is accepted, a duplicate or rejected, once."""

    # New readings stored; readings already stored (duplicates) are not counted here.
    accepted: int = 0
    duplicates: int = 0
    rejections: list[Rejected] = field(default_factory=list)
    stream_ids: list[str] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        """Readings not stored."""
        return sum(r.count for r in self.rejections)

    @property
    def summary(self) -> str:
        """One sentence for people: "Stored 8 of 10 readings; 2 rejected: 2 NON_FINITE_VALUE"."""
        total = self.accepted + self.duplicates + self.rejected
        text = f"Stored {self.accepted} of {total} reading{'' if total == 1 else 's'}"
        if self.duplicates:
            text += f"; {self.duplicates} already stored"
        if self.rejections:
            by_reason: dict[str, int] = {}
            for rejection in self.rejections:
                by_reason[rejection.reason] = by_reason.get(rejection.reason, 0) + rejection.count
            listed = ", ".join(f"{count} {reason}" for reason, count in by_reason.items())
            text += f"; {self.rejected} rejected: {listed}"
        return text


@dataclass(frozen=True, slots=True)
class _Target:
    """Where an entry's readings go: an existing stream, or what a new one is made of."""

    device_id: str
    metric_name: str
    owner_id: str
    device_type: str
    stream: Stream | None


def too_many_streams(limit: int) -> FailedPrecondition:
    """The refusal of a new stream for a device that has ``limit`` streams already."""
    return FailedPrecondition(
        f"A device has at most {limit} streams; this metric would be a new one",
        reason=reasons.TOO_MANY_STREAMS,
        metadata={"max_streams_per_device": str(limit)},
    )


def _device_named(entry: EntryIn) -> str:
    """The entry's device id in canonical form, or "" when it is not a UUID."""
    try:
        return str(uuid.UUID(entry.device_id))
    except ValueError:
        return ""


class IngestService:
    """Checks batches and stores them through the group writer."""

    def __init__(
        self,
        *,
        store: TelemetryStore,
        writer: GroupWriter,
        access: DeviceAccessClient,
        activity: ActivitySink,
        clock: Callable[[], datetime] = utcnow,
        max_streams_per_device: int = MAX_STREAMS_PER_DEVICE,
    ) -> None:
        self._store = store
        self._writer = writer
        self.max_streams_per_device = max_streams_per_device
        self._access = access
        self._activity = activity
        self._clock = clock
        self._streams: OrderedDict[tuple[str, str], Stream] = OrderedDict()
        self._by_id: OrderedDict[str, Stream] = OrderedDict()

    async def ingest(
        self,
        *,
        caller: Caller | None,
        token: str,
        entries: Sequence[EntryIn],
        trusted_owner: str | None = None,
    ) -> BatchResult:
        """Store what is valid of a batch; answers counts and rejections per entry.

        ``trusted_owner`` skips the access check for work the service already
        authorised (a file import, checked when it was uploaded): the devices
        are taken to belong to that owner, and ``caller`` may be None.
        """
        result = BatchResult(stream_ids=[""] * len(entries))
        total = sum(int(e.values.size) for e in entries)
        if total > MAX_BATCH_READINGS:
            for index, entry in enumerate(entries):
                result.rejections.append(
                    Rejected(
                        index,
                        "",
                        int(entry.values.size),
                        "BATCH_TOO_LARGE",
                        f"a batch holds at most {MAX_BATCH_READINGS} readings; split it",
                        device_id=_device_named(entry),
                    )
                )
            return result
        now_us = epoch_micros(self._clock())
        prepared: list[Prepared] = []
        places: list[tuple[str, int, int]] = []  # device, newest ts, kept
        stream_counts: dict[str, int] = {}  # device -> its streams, counting those opened here
        for index, entry in enumerate(entries):
            target = await self._resolve(index, entry, caller, token, result, trusted_owner)
            if target is None:
                continue
            if target.stream is None and not await self._room_for(target, stream_counts):
                result.rejections.append(
                    Rejected(
                        index,
                        "",
                        int(entry.values.size),
                        reasons.TOO_MANY_STREAMS,
                        f"a device has at most {self.max_streams_per_device} streams;"
                        " this metric would be a new one",
                        device_id=target.device_id,
                    )
                )
                continue
            kept, problems = self._clean(entry, now_us, result)
            stream = target.stream
            if stream is None and kept is not None:
                stream = await self._open(target)  # created on its first stored reading only
                stream_counts[target.device_id] += 1
            for count, reason, message in problems:
                result.rejections.append(
                    Rejected(
                        index,
                        stream.id if stream else "",
                        count,
                        reason,
                        message,
                        device_id=target.device_id,
                    )
                )
            if stream is None or kept is None:
                if stream is not None:
                    result.stream_ids[index] = stream.id
                continue
            result.stream_ids[index] = stream.id
            timestamps, values = kept
            prepared.append(Prepared(stream.id, timestamps, values))
            places.append((stream.device_id, int(timestamps[-1]), int(timestamps.size)))
        duplicates = await self._writer.write(prepared)
        for (device_id, newest, kept_count), dup in zip(places, duplicates, strict=True):
            result.accepted += kept_count - dup
            result.duplicates += dup
            if kept_count - dup:
                self._activity(device_id, newest, kept_count - dup)
        return result

    async def _room_for(self, target: _Target, stream_counts: dict[str, int]) -> bool:
        """True when the target's device may have one stream more."""
        if target.device_id not in stream_counts:
            stream_counts[target.device_id] = await self._store.count_streams(
                device_id=target.device_id
            )
        return stream_counts[target.device_id] < self.max_streams_per_device

    async def upload(self, *, caller: Caller, token: str, entry: EntryIn) -> BatchResult:
        """Store the readings of one metric of one device; fails when it stores none.

        Some stored (or already stored: a retry) answers the result with its
        rejections. None stored raises, and creates nothing: ValidationFailed for
        an empty, malformed or too large upload or readings that are all invalid
        (one violation per reason), NotFound for a device that is unknown,
        another user's or decommissioned, PermissionDenied for a revoked
        credential, an inactive device or a missing scope.
        """
        violations = Violations()
        check_uuid(violations, entry.device_id, field="device_id")
        if not METRIC_NAME.match(entry.metric_name):
            violations.add(
                "metric_name", "metric_name must be 1 to 64 letters, digits, '_', '.' or '-'"
            )
        if not entry.values.size:
            violations.add("readings", "at least one reading is required")
        elif entry.values.size > MAX_BATCH_READINGS:
            violations.add(
                "readings", f"an upload holds at most {MAX_BATCH_READINGS} readings; split it"
            )
        violations.raise_if_any()
        result = await self.ingest(caller=caller, token=token, entries=[entry])
        if result.accepted or result.duplicates:
            return result
        raise _refusal(result, self.max_streams_per_device)

    async def stream_for(
        self, *, caller: Caller, token: str, stream_id: str, access: str
    ) -> Stream | None:
        """A stream the caller may ``access`` ("read"/"write"); None if unknown or foreign alike."""
        try:
            stream_id = str(uuid.UUID(stream_id))
        except ValueError:
            return None
        stream = await self._stream_by_id(stream_id)
        if stream is None:
            return None
        if caller.token_type == "service":
            return stream if f"telemetry:{access}" in caller.scopes else None
        grant = await self._access.check(token=token, device_id=stream.device_id, access=access)
        return stream if grant.allowed else None

    def forget(self, stream_ids: set[str]) -> None:
        """Drop what is known of streams whose data was deleted: cached here and in the writer."""
        for key, stream in list(self._streams.items()):
            if stream.id in stream_ids:
                del self._streams[key]
        for stream_id in stream_ids:
            self._by_id.pop(stream_id, None)
        self._writer.forget(stream_ids)

    async def _stream_by_id(self, stream_id: str) -> Stream | None:
        stream = self._by_id.get(stream_id)
        if stream is None:
            stream = await self._store.stream(stream_id=stream_id)
            if stream is not None:
                self._remember(stream)
        return stream

    def _remember(self, stream: Stream) -> None:
        self._streams[(stream.device_id, stream.metric_name)] = stream
        self._by_id[stream.id] = stream
        for cache in (self._streams, self._by_id):
            while len(cache) > STREAM_CACHE_SIZE:
                cache.popitem(last=False)

    async def _resolve(
        self,
        index: int,
        entry: EntryIn,
        caller: Caller | None,
        token: str,
        result: BatchResult,
        trusted_owner: str | None,
    ) -> _Target | None:
        """Where the entry goes, if the caller may write it; rejects it (whole) otherwise."""
        count = int(entry.values.size)

        def reject(reason: str, message: str, device_id: str = "", access: str = "") -> None:
            result.rejections.append(
                Rejected(index, "", count, reason, message, device_id=device_id, access=access)
            )

        if entry.timestamps.size != entry.values.size:
            reject(
                "LENGTH_MISMATCH",
                f"{entry.timestamps.size} timestamps but {entry.values.size} values",
            )
            return None
        if entry.stream_id:
            stream = None
            if trusted_owner is not None:
                found = await self._stream_by_id(entry.stream_id)
                stream = found if found is not None and found.owner_id == trusted_owner else None
            elif caller is not None:
                stream = await self.stream_for(
                    caller=caller, token=token, stream_id=entry.stream_id, access="write"
                )
            if stream is None:
                reject("UNKNOWN_STREAM", "no such stream, or not yours")
                return None
            self._remember(stream)
            return _Target(
                stream.device_id, stream.metric_name, stream.owner_id, stream.device_type, stream
            )
        try:
            device_id = str(uuid.UUID(entry.device_id))
        except ValueError:
            reject("UNKNOWN_DEVICE", "device_id must be a UUID")
            return None
        if not METRIC_NAME.match(entry.metric_name):
            reject(
                "INVALID_METRIC",
                "metric_name must be 1 to 64 letters, digits, '_', '.' or '-'",
                device_id,
            )
            return None
        device_type = ""
        if trusted_owner is not None:
            owner = trusted_owner
        else:
            grant = await self._access.check(token=token, device_id=device_id, access="write")
            if not grant.allowed:
                reject(
                    "DEVICE_NOT_ALLOWED",
                    f"this token may not write this device ({grant.reason})",
                    device_id,
                    grant.reason,
                )
                return None
            owner, device_type = grant.owner_id, grant.device_type
        stream = self._streams.get((device_id, entry.metric_name))
        if stream is None:
            stream = await self._store.stream_of(device_id=device_id, metric_name=entry.metric_name)
        if stream is not None:
            self._remember(stream)
        return _Target(device_id, entry.metric_name, owner, device_type, stream)

    async def _open(self, target: _Target) -> Stream:
        """Create the stream of ``target`` (or take the one a concurrent writer created)."""
        stream = await self._store.add_stream(
            stream=Stream(
                id=str(uuid.uuid4()),
                device_id=target.device_id,
                owner_id=target.owner_id,
                metric_name=target.metric_name,
                device_type=target.device_type,
                sampling_rate=0,
                sampling_period_us=0,
                retention_days=0,
                created_at=self._clock().astimezone(UTC),
                readings_count=0,
            )
        )
        self._remember(stream)
        return stream

    @staticmethod
    def _clean(
        entry: EntryIn, now_us: int, result: BatchResult
    ) -> tuple[tuple[Int64s, Float64s] | None, list[tuple[int, str, str]]]:
        """The entry's valid readings, sorted and unique (None if none), and the problems.

        Problems are (count, reason, message); readings sharing a timestamp count
        as duplicates in ``result`` (the first is kept).
        """
        timestamps = np.asarray(entry.timestamps, dtype=np.int64)
        values = np.asarray(entry.values, dtype=np.float64)
        checks = (
            (~np.isfinite(values), "NON_FINITE_VALUE", "values must be finite numbers"),
            (
                np.abs(values) > MAX_MAGNITUDE,
                "VALUE_OUT_OF_RANGE",
                f"values must be within ±{MAX_MAGNITUDE:g}",
            ),
            (
                timestamps > now_us + FUTURE_TOLERANCE_US,
                "TIMESTAMP_IN_FUTURE",
                "timestamps more than 5 minutes ahead",
            ),
            (
                timestamps < OLDEST_US,
                "TIMESTAMP_TOO_OLD",
                "timestamps before 2000-01-01 (microseconds expected)",
            ),
        )
        keep = np.ones(values.size, dtype=bool)
        problems: list[tuple[int, str, str]] = []
        for bad, reason, message in checks:
            bad &= keep
            if count := int(bad.sum()):
                problems.append((count, reason, message))
                keep &= ~bad
        timestamps, values = timestamps[keep], values[keep]
        if not timestamps.size:
            return None, problems
        if timestamps.size < 2 or bool(np.all(np.diff(timestamps) > 0)):
            return (timestamps, values), problems  # the usual case: sorted, unique
        # Sort, and keep the first of readings that share a timestamp.
        unique_ts, first = np.unique(timestamps, return_index=True)
        if unique_ts.size != timestamps.size:
            result.duplicates += int(timestamps.size - unique_ts.size)
            timestamps, values = unique_ts, values[first]
        elif np.any(np.diff(timestamps) < 0):
            order = np.argsort(timestamps, kind="stable")
            timestamps, values = timestamps[order], values[order]
        return (timestamps, values), problems


def _refusal(result: BatchResult, max_streams: int) -> DomainError:
    """The error for an upload that stored nothing, from its rejections (see upload)."""
    for rejection in result.rejections:
        if rejection.reason != "DEVICE_NOT_ALLOWED":
            continue
        if rejection.access == "credential_revoked":
            return PermissionDenied(
                "This device credential was revoked; issue a new one",
                reason=reasons.CREDENTIAL_REVOKED,
            )
        if rejection.access == "inactive":
            return PermissionDenied(
                "The device is inactive and takes no readings", reason=reasons.DEVICE_INACTIVE
            )
        if rejection.access == "missing_scope":
            return PermissionDenied(
                "This token may not write readings of this device", reason=reasons.MISSING_SCOPE
            )
        # "not_found" (unknown, another user's, decommissioned) and anything unforeseen:
        # say no more than "not found", as every other call does.
        return NotFound("Device not found", reason=reasons.DEVICE_NOT_FOUND)
    for rejection in result.rejections:
        if rejection.reason == reasons.TOO_MANY_STREAMS:
            return too_many_streams(max_streams)
    total = result.rejected
    return ValidationFailed(
        [
            FieldViolation(
                _REASON_FIELDS.get(r.reason, "readings"),
                f"{r.count} of {total} readings: {r.message} ({r.reason})",
            )
            for r in result.rejections
        ],
        message=f"No reading was stored: {total} rejected",
    )
