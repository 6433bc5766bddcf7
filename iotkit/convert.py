"""Small conversions between Python values and protobuf well-known types."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    """A protobuf Timestamp for an aware datetime, or None to leave the field unset."""
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp


def epoch_timestamp(seconds: int) -> timestamp_pb2.Timestamp:
    """A protobuf Timestamp for seconds since the epoch."""
    return timestamp_pb2.Timestamp(seconds=seconds)


def struct(value: dict[str, Any] | None) -> struct_pb2.Struct:
    """A protobuf Struct holding a JSON object."""
    message = struct_pb2.Struct()
    if value:
        message.update(value)
    return message
