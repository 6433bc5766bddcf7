"""Reading MQTT messages into ingest entries: topics, JSON and protobuf, and refusals.

Whatever bytes a device publishes, the parser answers entries or a refusal
with a reason, never another exception: the consumer must not crash.
"""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iot.telemetry.v1 import telemetry_pb2
from iotkit.mqtt import parse_url, readings_topic, telemetry_password
from services.telemetry.mqtt import payload
from services.telemetry.mqtt.payload import Refused, device_of, parse

DEVICE = str(uuid.uuid4())
LIMIT = 64 * 1024


def test_the_device_comes_from_the_readings_topic_only() -> None:
    assert device_of(readings_topic(DEVICE)) == DEVICE
    assert device_of(readings_topic(DEVICE.upper())) == DEVICE  # canonical form
    for topic in (
        f"iot/v1/devices/{DEVICE}/acks",
        f"iot/v1/devices/{DEVICE}/readings/more",
        "iot/v1/devices/not-a-uuid/readings",
        f"iot/v2/devices/{DEVICE}/readings",
        "",
    ):
        assert device_of(topic) is None, topic


def test_json_timestamps_take_the_units_the_upload_takes() -> None:
    body = {
        "metric_name": "temp",
        "readings": [[1_700_000_000, 1], [1_700_000_000_500, 2], [1_700_000_001_000_000, 3]],
    }
    parsed = parse(
        device_id=DEVICE, payload=json.dumps(body).encode(), content_type="", max_bytes=LIMIT
    )
    assert parsed.entries[0].timestamps.tolist() == [
        1_700_000_000_000_000,
        1_700_000_000_500_000,
        1_700_000_001_000_000,
    ]
    rfc = {"metric_name": "temp", "readings": [["2025-01-01T00:00:00+01:00", 1.5]]}
    parsed = parse(
        device_id=DEVICE, payload=json.dumps(rfc).encode(), content_type="", max_bytes=LIMIT
    )
    assert parsed.entries[0].timestamps.tolist() == [1_735_686_000_000_000]


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"x" * (LIMIT + 1), "", payload.MESSAGE_TOO_LARGE),
        (b"{}", "text/csv", payload.UNSUPPORTED_CONTENT_TYPE),
        (b'{"metric_name": "t", "readings": [["yesterday", 1]]}', "", payload.MALFORMED),
        (b'{"metric_name": "t", "readings": [[1, true]]}', "", payload.MALFORMED),
        (b'{"metric_name": "t", "readings": [[1, 1%s]]}' % (b"0" * 400), "", payload.MALFORMED),
        (b'{"metric_name": "t", "readings": [[1%s, 1]]}' % (b"0" * 400), "", payload.MALFORMED),
        (b'{"metric_name": 5, "readings": []}', "", payload.MALFORMED),
        (b'{"metric_name": "t", "readings": [], "sequence": -1}', "", payload.MALFORMED),
        (b"\xff\xfe", "application/json", payload.MALFORMED),
    ],
)
def test_bad_messages_are_refused_with_a_reason(
    body: bytes, content_type: str, reason: str
) -> None:
    with pytest.raises(Refused) as refused:
        parse(device_id=DEVICE, payload=body, content_type=content_type, max_bytes=LIMIT)
    assert refused.value.reason == reason and refused.value.message


def test_protobuf_entries_of_another_device_or_a_stream_are_refused_before_ingest() -> None:
    batch = telemetry_pb2.ReadingBatch(
        sequence=3,
        streams=[
            telemetry_pb2.StreamReadings(metric_name="a", timestamps=[1], values=[1.0]),
            telemetry_pb2.StreamReadings(
                device_id=str(uuid.uuid4()), metric_name="b", timestamps=[1], values=[1.0]
            ),
            telemetry_pb2.StreamReadings(stream_id=str(uuid.uuid4()), timestamps=[1], values=[1]),
            telemetry_pb2.StreamReadings(
                device_id=DEVICE, metric_name="c", timestamps=[2], values=[2.0]
            ),
        ],
    )
    parsed = parse(
        device_id=DEVICE,
        payload=batch.SerializeToString(),
        content_type="application/x-protobuf",
        max_bytes=LIMIT,
    )
    assert parsed.sequence == 3 and parsed.protobuf and parsed.total == 4
    assert parsed.places == [0, 3]
    assert {e.device_id for e in parsed.entries} == {DEVICE}
    assert [(r.index, r.reason) for r in parsed.refused] == [
        (1, "DEVICE_NOT_ALLOWED"),
        (2, "UNKNOWN_STREAM"),
    ]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@given(body=st.binary(max_size=200), protobuf=st.booleans())
def test_any_bytes_give_entries_or_a_refusal(body: bytes, protobuf: bool) -> None:
    content_type = "application/x-protobuf" if protobuf else "application/json"
    try:
        parse(device_id=DEVICE, payload=body, content_type=content_type, max_bytes=LIMIT)
    except Refused as refused:
        assert refused.reason in {payload.MALFORMED, payload.MESSAGE_TOO_LARGE}


@given(readings=json_values, metric=json_values)
def test_any_json_gives_entries_or_a_refusal(readings: object, metric: object) -> None:
    body = json.dumps({"metric_name": metric, "readings": readings}).encode()
    try:
        parsed = parse(device_id=DEVICE, payload=body, content_type="", max_bytes=LIMIT)
    except Refused as refused:
        assert refused.reason == payload.MALFORMED
    else:
        (entry,) = parsed.entries
        assert entry.timestamps.size == entry.values.size


def test_the_broker_url_and_telemetrys_password() -> None:
    broker = parse_url("mqtt://iot-admin:p%40ss@127.0.0.1:41883")
    assert (broker.host, broker.port, broker.username, broker.password) == (
        "127.0.0.1",
        41883,
        "iot-admin",
        "p@ss",
    )
    assert broker.display == "mqtt://127.0.0.1:41883"  # no credentials
    assert parse_url("mqtt://broker").port == 1883
    with pytest.raises(ValueError, match="IOT_MQTT_URL"):
        parse_url("http://broker:1883")
    assert telemetry_password("a" * 32) != telemetry_password("b" * 32)
    assert len(telemetry_password("a" * 32)) == 64
