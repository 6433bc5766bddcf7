"""Reading an MQTT message into ingest entries: its topic, JSON or protobuf body, and limits.

JSON is ``{"metric_name": ..., "readings": [[timestamp, value], ...]}`` with an
optional ``"sequence"`` echoed in the acknowledgement; timestamps as the bulk
upload and the file import take them (RFC 3339 with a zone, or a number since
the epoch whose magnitude tells seconds, milliseconds or microseconds). A
message whose MQTT 5 content type is ``application/x-protobuf`` is a
``ReadingBatch``. The device is the one of the topic, which the broker's ACL
ties to the connected client: an entry naming another device or a stream id is
refused here, before ingest, which would take telemetry's own word for it.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field

import numpy as np
from google.protobuf.message import DecodeError

from iot.telemetry.v1 import telemetry_pb2
from iotkit.mqtt import TOPIC_PREFIX
from services.telemetry.imports.parsing import (
    MILLISECONDS_BELOW,
    SECONDS_BELOW,
    parse_timestamp,
)
from services.telemetry.telemetry.ingest import EntryIn, Rejected
from services.telemetry.telemetry.servicer import entries_of

PROTOBUF_TYPES = frozenset({"application/x-protobuf", "application/protobuf"})
JSON_TYPES = frozenset({"", "application/json", "text/json"})
_TOPIC = re.compile(rf"^{re.escape(TOPIC_PREFIX)}/([^/]+)/readings$")

MALFORMED = "MALFORMED_PAYLOAD"
MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"
UNSUPPORTED_CONTENT_TYPE = "UNSUPPORTED_CONTENT_TYPE"


class Refused(Exception):
    """The whole message is refused: a reason and a message for the device."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class Parsed:
    """A message read: its entries for ingest, with their places, and what was refused before."""

    sequence: int
    protobuf: bool
    entries: list[EntryIn] = field(default_factory=list)
    # The index in the message of each entry of ``entries``.
    places: list[int] = field(default_factory=list)
    refused: list[Rejected] = field(default_factory=list)
    # Entries in the message in all.
    total: int = 0


def device_of(topic: str) -> str | None:
    """The canonical device id of a readings topic; None for any other topic."""
    match = _TOPIC.match(topic)
    if match is None:
        return None
    try:
        return str(uuid.UUID(match.group(1)))
    except ValueError:
        return None


def parse(*, device_id: str, payload: bytes, content_type: str, max_bytes: int) -> Parsed:
    """The entries of a message from ``device_id``; raises Refused for a message refused whole."""
    if len(payload) > max_bytes:
        raise Refused(MESSAGE_TOO_LARGE, f"a message holds at most {max_bytes} bytes")
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind in PROTOBUF_TYPES:
        return _protobuf(device_id, payload)
    if kind in JSON_TYPES:
        return _json(device_id, payload)
    raise Refused(
        UNSUPPORTED_CONTENT_TYPE,
        "content type must be application/json or application/x-protobuf",
    )


def _protobuf(device_id: str, payload: bytes) -> Parsed:
    try:
        batch = telemetry_pb2.ReadingBatch.FromString(payload)
    except DecodeError:
        raise Refused(MALFORMED, "the payload is not a ReadingBatch") from None
    parsed = Parsed(sequence=batch.sequence, protobuf=True, total=len(batch.streams))
    for index, entry in enumerate(entries_of(batch)):
        count = int(entry.values.size)
        if entry.stream_id:
            parsed.refused.append(
                Rejected(
                    index, "", count, "UNKNOWN_STREAM", "over MQTT, name the metric, not a stream"
                )
            )
            continue
        if entry.device_id:
            try:
                named = str(uuid.UUID(entry.device_id))
            except ValueError:
                named = ""
            if named != device_id:
                parsed.refused.append(
                    Rejected(
                        index,
                        "",
                        count,
                        "DEVICE_NOT_ALLOWED",
                        "a device publishes its own readings only; leave device_id empty",
                    )
                )
                continue
        parsed.entries.append(
            EntryIn("", device_id, entry.metric_name, entry.timestamps, entry.values)
        )
        parsed.places.append(index)
    return parsed


def _json(device_id: str, payload: bytes) -> Parsed:
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Refused(MALFORMED, f"the payload is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Refused(MALFORMED, 'the payload must be {"metric_name": ..., "readings": [...]}')
    metric, readings = body.get("metric_name"), body.get("readings")
    sequence = body.get("sequence", 0)
    if not isinstance(metric, str):
        raise Refused(MALFORMED, "metric_name must be a string")
    if not isinstance(sequence, int) or isinstance(sequence, bool) or not 0 <= sequence < 2**64:
        raise Refused(MALFORMED, "sequence must be an unsigned integer")
    if not isinstance(readings, list) or not all(
        isinstance(r, list) and len(r) == 2 for r in readings
    ):
        raise Refused(MALFORMED, "readings must be a list of [timestamp, value] pairs")
    stamps = [r[0] for r in readings]
    values = [r[1] for r in readings]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise Refused(MALFORMED, "each reading's value must be a number")
    try:
        timestamps = _timestamps(stamps)
    except (ValueError, OverflowError) as exc:
        raise Refused(MALFORMED, f"readings.timestamp: {exc}") from None
    try:
        numbers = np.array(values, dtype=np.float64)
    except OverflowError:  # an integer beyond float64: ingest's range check would refuse it
        raise Refused(MALFORMED, "readings.value: a number beyond ±1.8e308") from None
    parsed = Parsed(sequence=sequence, protobuf=False, total=1)
    parsed.entries.append(EntryIn("", device_id, metric, timestamps, numbers))
    parsed.places.append(0)
    return parsed


def _timestamps(stamps: list[object]) -> np.ndarray:
    """Microseconds since the epoch; numbers (the usual case) are converted column-wise."""
    if all(type(s) is int for s in stamps):
        raw = np.array(stamps, dtype=np.int64)
        magnitude = np.abs(raw)
        factor = np.where(
            magnitude < SECONDS_BELOW, 1_000_000, np.where(magnitude < MILLISECONDS_BELOW, 1_000, 1)
        )
        return raw * factor  # cannot overflow: the factor grows only below 10**14
    return np.array([parse_timestamp(s) for s in stamps], dtype=np.int64)
