"""Small conversions between Python values and protobuf well-known types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2
from google.protobuf.message import Message

from iotkit.errors import FieldViolation, ValidationFailed

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def epoch_micros(value: datetime) -> int:
    """Microseconds since the epoch of an aware datetime, exactly.

    Integer arithmetic on purpose: ``int(value.timestamp() * 1e6)`` goes
    through a float, which cannot hold every microsecond of distant dates.
    """
    return (value - EPOCH) // _MICROSECOND


def micros_datetime(micros: int) -> datetime:
    """The aware UTC datetime of microseconds since the epoch, exactly."""
    return EPOCH + timedelta(microseconds=micros)


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    """A protobuf Timestamp for an aware datetime, or None to leave the field unset.

    What ``Timestamp.FromDatetime`` sets, by integer arithmetic: it goes through a time tuple
    and ``calendar.timegm``, several times the cost, for every time of every answer.
    """
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.astimezone(UTC)  # a naive time is local, as astimezone takes it
    delta = value - EPOCH
    return timestamp_pb2.Timestamp(
        seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1000
    )


def epoch_timestamp(seconds: int) -> timestamp_pb2.Timestamp:
    """A protobuf Timestamp for seconds since the epoch."""
    return timestamp_pb2.Timestamp(seconds=seconds)


def micros_timestamp(micros: int) -> timestamp_pb2.Timestamp:
    """A protobuf Timestamp for microseconds since the epoch (how readings keep time)."""
    stamp = timestamp_pb2.Timestamp()
    stamp.FromMicroseconds(micros)
    return stamp


def micros(stamp: timestamp_pb2.Timestamp) -> int:
    """Microseconds since the epoch of a protobuf Timestamp (nanoseconds below a µs dropped)."""
    return stamp.seconds * 1_000_000 + stamp.nanos // 1000


def micros_duration(micros: int) -> duration_pb2.Duration:
    """A protobuf Duration of ``micros`` microseconds ("300s" in JSON)."""
    duration = duration_pb2.Duration()
    duration.FromMicroseconds(micros)
    return duration


def duration_micros(message: Message, name: str) -> int | None:
    """Whole microseconds of ``message``'s Duration field ``name`` (towards zero), or None
    when unset. A duration shorter than a microsecond but not zero answers ±1, never 0:
    0 often means "none" (an irregular stream's period), which 500 ns was not asked to be."""
    if not message.HasField(name):
        return None
    duration: duration_pb2.Duration = getattr(message, name)
    micros = duration.ToMicroseconds()
    if micros == 0 and (duration.seconds or duration.nanos):
        return 1 if duration.nanos > 0 or duration.seconds > 0 else -1
    return micros


TIMESTAMP_RANGE = "must be a timestamp between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z"


def datetime_field(message: Message, name: str) -> datetime | None:
    """The aware UTC datetime of ``message``'s Timestamp field ``name``, or None when unset.

    Raises :class:`ValidationFailed` naming the field when the Timestamp is outside
    what a datetime (and the proto's own spec) allows: seconds before year 1 or after
    9999, or nanos outside [0, 999999999] — a caller's value, not a server fault.
    """
    if not message.HasField(name):
        return None
    stamp: timestamp_pb2.Timestamp = getattr(message, name)
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise ValidationFailed([FieldViolation(name, TIMESTAMP_RANGE)]) from None


def struct(value: dict[str, Any] | None) -> struct_pb2.Struct:
    """A protobuf Struct holding a JSON object."""
    message = struct_pb2.Struct()
    if value:
        message.update(value)
    return message
