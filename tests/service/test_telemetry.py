"""Telemetry over real gRPC with auth and devices beside it, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import numpy as np
import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from iot.auth.v1 import auth_pb2_grpc
from iot.devices.v1 import devices_pb2, devices_pb2_grpc
from iot.telemetry.v1 import telemetry_pb2, telemetry_pb2_grpc
from iotkit.errors import reason_of, violations_of
from services.devices.devices import service as devices_service
from services.telemetry import wiring as telemetry_wiring
from tests.conftest import Backend, Suite, start_suite
from tests.support import bearer, new_user

NOW_US = int(time.time() * 1_000_000)


@dataclass
class Env:
    auth: auth_pb2_grpc.AuthServiceStub
    devices: devices_pb2_grpc.DeviceServiceStub
    telemetry: telemetry_pb2_grpc.TelemetryServiceStub
    suite: Suite
    backend: Backend


@pytest.fixture
async def env(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    monkeypatch.setattr(telemetry_wiring, "ACTIVITY_PERIOD", 0.1)
    monkeypatch.setattr(telemetry_wiring, "EVENTS_PERIOD", 0.1)
    suite = await start_suite(backend, ("auth", "devices", "telemetry"))
    async with (
        grpc.aio.insecure_channel(suite.address("auth")) as a,
        grpc.aio.insecure_channel(suite.address("devices")) as d,
        grpc.aio.insecure_channel(suite.address("telemetry")) as t,
    ):
        yield Env(
            auth_pb2_grpc.AuthServiceStub(a),
            devices_pb2_grpc.DeviceServiceStub(d),
            telemetry_pb2_grpc.TelemetryServiceStub(t),
            suite,
            backend,
        )
    await suite.aclose()


async def user(env: Env) -> list[tuple[str, str]]:
    return bearer((await new_user(env.auth)).access_token)


async def device(
    env: Env, who: list[tuple[str, str]], kind: str = "temperature"
) -> devices_pb2.Device:
    return await env.devices.RegisterDevice(
        devices_pb2.RegisterDeviceRequest(name="dev", type=kind), metadata=who
    )


async def credential(env: Env, who: list[tuple[str, str]], device_id: str) -> list[tuple[str, str]]:
    issued = await env.devices.IssueDeviceCredential(
        devices_pb2.IssueDeviceCredentialRequest(device_id=device_id), metadata=who
    )
    return bearer(issued.token)


def batch(
    sequence: int, device_id: str, timestamps: list[int], values: list[float], metric: str = "temp"
):  # type: ignore[no-untyped-def]
    return telemetry_pb2.ReadingBatch(
        sequence=sequence,
        streams=[
            telemetry_pb2.StreamReadings(
                device_id=device_id, metric_name=metric, timestamps=timestamps, values=values
            )
        ],
    )


async def stream(
    env: Env, who: list[tuple[str, str]], batches: list[telemetry_pb2.ReadingBatch]
) -> list[telemetry_pb2.BatchAck]:
    async def requests() -> AsyncIterator[telemetry_pb2.ReadingBatch]:
        for item in batches:
            yield item

    return [ack async for ack in env.telemetry.StreamReadings(requests(), metadata=who)]


def series(
    count: int, start: int = NOW_US - 3_600_000_000, step: int = 1_000_000
) -> tuple[list[int], list[float]]:
    timestamps = [start + i * step for i in range(count)]
    values = [round(20 + 5 * np.sin(i / 50), 2) for i in range(count)]
    return timestamps, values


async def test_device_streams_and_retries_never_duplicate(env: Env) -> None:
    ann = await user(env)
    sensor = await device(env, ann)
    token = await credential(env, ann, sensor.device_id)
    timestamps, values = series(3000)
    first = [
        batch(
            n,
            sensor.device_id,
            timestamps[n * 1000 : (n + 1) * 1000],
            values[n * 1000 : (n + 1) * 1000],
        )
        for n in range(3)
    ]
    acks = await stream(env, token, first)
    assert [(a.sequence, a.accepted, a.duplicates, a.rejected) for a in acks] == [
        (n, 1000, 0, 0) for n in range(3)
    ]
    stream_id = acks[0].stream_ids[0]
    assert stream_id and all(a.stream_ids == [stream_id] for a in acks)
    # The device retries its last batch, overlapping new readings too: nothing doubles.
    more_ts, more_values = series(500, start=timestamps[-1] + 1_000_000)
    retry = batch(3, sensor.device_id, timestamps[2000:] + more_ts, values[2000:] + more_values)
    (ack,) = await stream(env, token, [retry])
    assert (ack.accepted, ack.duplicates) == (500, 1000)  # accepted counts new readings only
    data = await env.telemetry.GetStreamData(
        telemetry_pb2.GetStreamDataRequest(stream_id=stream_id, max_points=10_000), metadata=ann
    )
    assert data.stats.count == 3500 and len(data.data) == 3500 and not data.downsampled
    assert [p.value for p in data.data[:3]] == values[:3]
    assert data.stats.first == values[0] and data.stats.last == more_values[-1]


async def test_credential_is_refused_for_any_other_device(env: Env) -> None:
    ann = await user(env)
    mine, other = await device(env, ann), await device(env, ann)
    token = await credential(env, ann, mine.device_id)
    timestamps, values = series(10)
    (ack,) = await stream(env, token, [batch(1, other.device_id, timestamps, values)])
    assert (ack.accepted, ack.rejected) == (0, 10)
    assert ack.rejections[0].reason == "DEVICE_NOT_ALLOWED"
    bob = await user(env)
    (foreign,) = await stream(env, bob, [batch(1, mine.device_id, timestamps, values)])
    assert foreign.rejections[0].reason == "DEVICE_NOT_ALLOWED"
    (own,) = await stream(env, ann, [batch(1, mine.device_id, timestamps, values)])
    assert own.accepted == 10  # the owner's user token writes too


async def test_bad_readings_are_rejected_with_reasons_and_the_rest_kept(env: Env) -> None:
    ann = await user(env)
    sensor = await device(env, ann)
    token = await credential(env, ann, sensor.device_id)
    good_ts, good_values = series(5)
    mixed = telemetry_pb2.ReadingBatch(
        sequence=7,
        streams=[
            telemetry_pb2.StreamReadings(
                device_id=sensor.device_id,
                metric_name="temp",
                timestamps=[*good_ts, NOW_US + 3_600_000_000, 1_000, good_ts[0] + 10],
                values=[*good_values, 1.0, 2.0, float("nan")],
            ),
            telemetry_pb2.StreamReadings(
                device_id=sensor.device_id, metric_name="temp", timestamps=[1, 2], values=[1.0]
            ),
            telemetry_pb2.StreamReadings(
                # A final newline passed Python's "$" once: the name must end where it ends.
                device_id=sensor.device_id,
                metric_name="temp\n",
                timestamps=[1],
                values=[1.0],
            ),
            telemetry_pb2.StreamReadings(
                stream_id=str(uuid.uuid4()), timestamps=[NOW_US], values=[1.0]
            ),
            telemetry_pb2.StreamReadings(
                device_id="nope", metric_name="x", timestamps=[NOW_US], values=[1.0]
            ),
        ],
    )
    (ack,) = await stream(env, token, [mixed])
    assert ack.sequence == 7 and ack.accepted == 5
    reasons = {(r.index, r.reason): r.count for r in ack.rejections}
    assert reasons == {
        (0, "NON_FINITE_VALUE"): 1,
        (0, "TIMESTAMP_IN_FUTURE"): 1,
        (0, "TIMESTAMP_TOO_OLD"): 1,
        (1, "LENGTH_MISMATCH"): 1,
        (2, "INVALID_METRIC"): 1,
        (3, "UNKNOWN_STREAM"): 1,
        (4, "UNKNOWN_DEVICE"): 1,
    }
    # The stream is still open and accepts the next batch.
    later_ts, later_values = series(3, start=good_ts[-1] + 1_000_000)
    (next_ack,) = await stream(env, token, [batch(8, sensor.device_id, later_ts, later_values)])
    assert next_ack.accepted == 3


async def test_queries_downsample_and_normalize(env: Env) -> None:
    ann = await user(env)
    sensor = await device(env, ann)
    timestamps, values = series(20_000, step=100_000)
    values[12_345] = 99.0  # a spike the chart must keep
    acks = await stream(
        env,
        ann,
        [
            batch(
                n,
                sensor.device_id,
                timestamps[n * 5000 : (n + 1) * 5000],
                values[n * 5000 : (n + 1) * 5000],
            )
            for n in range(4)
        ],
    )
    stream_id = acks[0].stream_ids[0]
    data = await env.telemetry.GetStreamData(
        telemetry_pb2.GetStreamDataRequest(
            stream_id=stream_id, max_points=500, normalization="min_max"
        ),
        metadata=ann,
    )
    assert data.downsampled and data.downsampling == "min_max"
    assert len(data.data) <= 500
    assert max(p.value for p in data.data) == 99.0
    assert data.stats.count == 20_000 and data.stats.max == 99.0
    assert abs(data.stats.mean - float(np.mean(values))) < 1e-9
    assert all(0.0 <= p.normalized_value <= 1.0 for p in data.data)
    stamps = [p.timestamp.ToMicroseconds() for p in data.data]
    assert stamps == sorted(stamps)
    window = await env.telemetry.GetStreamData(
        telemetry_pb2.GetStreamDataRequest(
            stream_id=stream_id,
            start=timestamp_pb2.Timestamp(
                seconds=timestamps[100] // 1_000_000, nanos=(timestamps[100] % 1_000_000) * 1000
            ),
            end=timestamp_pb2.Timestamp(
                seconds=timestamps[200] // 1_000_000, nanos=(timestamps[200] % 1_000_000) * 1000
            ),
            normalization="z_score",
        ),
        metadata=ann,
    )
    assert window.stats.count == 100 and abs(sum(p.normalized_value for p in window.data)) < 1e-6
    chunks = [
        c
        async for c in env.telemetry.ReadStream(
            telemetry_pb2.ReadStreamRequest(stream_id=stream_id), metadata=ann
        )
    ]
    assert sum(len(c.values) for c in chunks) == 20_000
    assert list(chunks[0].timestamps[:2]) == timestamps[:2]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"max_points": 1}, "max_points"),
        ({"normalization": "log"}, "normalization"),
        ({"stream_id": "x"}, "stream_id"),
    ],
)
async def test_bad_query_parameters(env: Env, fields: dict[str, object], field: str) -> None:
    ann = await user(env)
    request = telemetry_pb2.GetStreamDataRequest(stream_id=str(uuid.uuid4()))
    for name, value in fields.items():
        setattr(request, name, value)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.telemetry.GetStreamData(request, metadata=ann)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in violations_of(caught.value)] == [field]


async def test_streams_are_listed_and_foreign_ones_hidden(env: Env) -> None:
    ann, bob = await user(env), await user(env)
    sensor = await device(env, ann)
    created = await env.telemetry.CreateStream(
        telemetry_pb2.CreateStreamRequest(
            device_id=sensor.device_id, metric_name="humidity", sampling_rate=10, retention_days=7
        ),
        metadata=ann,
    )
    assert (created.sampling_rate, created.retention_days) == (10, 7)
    timestamps, values = series(3)
    await stream(env, ann, [batch(1, sensor.device_id, timestamps, values, metric="temp")])
    listed = await env.telemetry.ListStreams(
        telemetry_pb2.ListStreamsRequest(device_id=sensor.device_id), metadata=ann
    )
    assert [s.metric_name for s in listed.streams] == ["humidity", "temp"]
    temp = listed.streams[1]
    assert temp.readings_count == 3 and temp.latest_value == values[-1]
    assert temp.last_seen_at.ToMicroseconds() == timestamps[-1]
    for call in (
        env.telemetry.GetStream(
            telemetry_pb2.GetStreamRequest(stream_id=temp.stream_id), metadata=bob
        ),
        env.telemetry.ListStreams(
            telemetry_pb2.ListStreamsRequest(device_id=sensor.device_id), metadata=bob
        ),
        env.telemetry.GetStreamData(
            telemetry_pb2.GetStreamDataRequest(stream_id=temp.stream_id), metadata=bob
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_bulk_upload(env: Env) -> None:
    ann = await user(env)
    sensor = await device(env, ann, "pressure")
    readings = [
        telemetry_pb2.Reading(
            timestamp=timestamp_pb2.Timestamp(seconds=NOW_US // 1_000_000 - 60 + i),
            value=1000.0 + i,
        )
        for i in range(60)
    ]
    request = telemetry_pb2.UploadReadingsRequest(
        device_id=sensor.device_id, metric_name="pressure", readings=readings
    )
    ack = await env.telemetry.UploadReadings(request, metadata=ann)
    assert (ack.accepted, ack.duplicates) == (60, 0)
    again = await env.telemetry.UploadReadings(request, metadata=ann)
    assert (again.accepted, again.duplicates) == (0, 60)  # duplicates are not accepted


async def test_activity_reaches_the_device_and_decommission_purges(env: Env) -> None:
    ann = await user(env)
    sensor = await device(env, ann)
    timestamps, values = series(250)
    acks = await stream(env, ann, [batch(1, sensor.device_id, timestamps, values)])
    stream_id = acks[0].stream_ids[0]
    for _ in range(50):
        shown = await env.devices.GetDevice(
            devices_pb2.GetDeviceRequest(device_id=sensor.device_id), metadata=ann
        )
        if shown.readings_total:
            break
        await asyncio.sleep(0.1)
    assert shown.readings_total == 250
    assert shown.last_seen_at.ToMicroseconds() == timestamps[-1]
    await env.devices.DecommissionDevice(
        devices_pb2.DecommissionDeviceRequest(device_id=sensor.device_id), metadata=ann
    )
    remaining: list[tuple[object, ...]] = []
    for _ in range(50):  # telemetry follows the device event log in the background
        await asyncio.sleep(0.1)
        remaining = await env.backend.sql(
            "telemetry", "SELECT count(*) FROM chunks WHERE stream_id = ?", (stream_id,)
        )
        remaining += await env.backend.sql(
            "telemetry", "SELECT count(*) FROM streams WHERE id = ?", (stream_id,)
        )
        if remaining == [(0,), (0,)]:
            break
    assert remaining == [(0,), (0,)]


def readings_of(
    values: list[float], start_us: int = NOW_US - 600_000_000
) -> list[telemetry_pb2.Reading]:
    """Bulk-upload readings one second apart from ``start_us``."""
    return [
        telemetry_pb2.Reading(
            timestamp=timestamp_pb2.Timestamp(
                seconds=(start_us + i * 1_000_000) // 1_000_000,
                nanos=(start_us + i * 1_000_000) % 1_000_000 * 1000,
            ),
            value=value,
        )
        for i, value in enumerate(values)
    ]


def upload_request(
    device_id: str, values: list[float], metric: str = "pressure", start_us: int | None = None
) -> telemetry_pb2.UploadReadingsRequest:
    readings = readings_of(values) if start_us is None else readings_of(values, start_us)
    return telemetry_pb2.UploadReadingsRequest(
        device_id=device_id,
        metric_name=metric,
        readings=readings,
    )


async def refused(
    env: Env, request: telemetry_pb2.UploadReadingsRequest, who: list[tuple[str, str]]
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.telemetry.UploadReadings(request, metadata=who)
    return caught.value


async def test_upload_of_only_invalid_readings_fails_and_creates_nothing(env: Env) -> None:
    ann = await user(env)
    sensor = await device(env, ann)
    nan = await refused(env, upload_request(sensor.device_id, [float("nan")] * 3), ann)
    assert nan.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [(v.field, v.message) for v in violations_of(nan)] == [
        ("readings.value", "3 of 3 readings: values must be finite numbers (NON_FINITE_VALUE)")
    ]
    mixed = upload_request(sensor.device_id, [1.0, float("nan")])
    mixed.readings[0].timestamp.seconds = NOW_US // 1_000_000 + 3600  # in the future too
    both = await refused(env, mixed, ann)
    assert [v.field for v in violations_of(both)] == ["readings.value", "readings.timestamp"]
    too_many = upload_request(sensor.device_id, [1.0] * 100_001)
    large = await refused(env, too_many, ann)
    assert large.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in violations_of(large)] == ["readings"]
    bad_names = telemetry_pb2.UploadReadingsRequest(device_id="nope", metric_name="bad name!")
    named = await refused(env, bad_names, ann)
    assert [v.field for v in violations_of(named)] == ["device_id", "metric_name", "readings"]
    # A refused write leaves no empty stream behind.
    listed = await env.telemetry.ListStreams(
        telemetry_pb2.ListStreamsRequest(device_id=sensor.device_id), metadata=ann
    )
    assert list(listed.streams) == []


async def test_upload_of_times_past_64_bits_of_microseconds_is_refused_by_reason(
    env: Env,
) -> None:
    # Timestamps whose microseconds overflow an int64 answered INTERNAL (OverflowError).
    ann = await user(env)
    sensor = await device(env, ann)
    request = upload_request(sensor.device_id, [1.0, 2.0, 3.0])
    request.readings[0].timestamp.seconds = 2**63 - 1
    request.readings[1].timestamp.seconds = -(2**63)
    ack = await env.telemetry.UploadReadings(request, metadata=ann)
    assert (ack.accepted, ack.rejected) == (1, 2)
    assert sorted(r.reason for r in ack.rejections) == ["TIMESTAMP_IN_FUTURE", "TIMESTAMP_TOO_OLD"]
    request.readings[2].timestamp.seconds = 253402300800  # the day after 9999-12-31
    none = await refused(env, request, ann)
    assert none.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {v.field for v in violations_of(none)} == {"readings.timestamp"}


async def test_upload_to_a_device_one_may_not_write_fails(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Devices' answers are cached for up to ACCESS_TTL_SECONDS; 0 makes a revocation immediate.
    monkeypatch.setattr(devices_service, "ACCESS_TTL_SECONDS", 0)
    ann, bob = await user(env), await user(env)
    sensor, other = await device(env, ann), await device(env, ann)
    token = await credential(env, ann, sensor.device_id)
    values = [1.0, 2.0]
    for who, device_id in (
        (bob, sensor.device_id),  # another user's device
        (ann, str(uuid.uuid4())),  # no such device
        (token, other.device_id),  # a device credential writing another device
    ):
        error = await refused(env, upload_request(device_id, values), who)
        assert error.code() == grpc.StatusCode.NOT_FOUND, device_id
        assert reason_of(error) == "DEVICE_NOT_FOUND"
    ack = await env.telemetry.UploadReadings(
        upload_request(sensor.device_id, values), metadata=token
    )
    assert ack.accepted == 2
    await env.devices.RevokeDeviceCredential(
        devices_pb2.RevokeDeviceCredentialRequest(device_id=sensor.device_id), metadata=ann
    )
    revoked = await refused(env, upload_request(sensor.device_id, [3.0], start_us=NOW_US), token)
    assert revoked.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(revoked) == "CREDENTIAL_REVOKED"
    await env.devices.DecommissionDevice(
        devices_pb2.DecommissionDeviceRequest(device_id=sensor.device_id), metadata=ann
    )
    gone = await refused(env, upload_request(sensor.device_id, [3.0], start_us=NOW_US), ann)
    assert gone.code() == grpc.StatusCode.NOT_FOUND and reason_of(gone) == "DEVICE_NOT_FOUND"


async def test_partial_upload_says_what_was_stored_and_never_counts_duplicates(env: Env) -> None:
    ann = await user(env)
    sensor = await device(env, ann)
    values = [float(i) for i in range(10)]
    values[3] = values[7] = float("nan")
    ack = await env.telemetry.UploadReadings(upload_request(sensor.device_id, values), metadata=ann)
    (shown,) = (
        await env.telemetry.ListStreams(
            telemetry_pb2.ListStreamsRequest(device_id=sensor.device_id), metadata=ann
        )
    ).streams
    assert (ack.accepted, ack.duplicates, ack.rejected) == (8, 0, 2)
    assert ack.summary == "Stored 8 of 10 readings; 2 rejected: 2 NON_FINITE_VALUE"
    assert list(ack.stream_ids) == [shown.stream_id] != [sensor.device_id]
    (rejection,) = ack.rejections
    assert (rejection.stream_id, rejection.device_id, rejection.count) == (
        shown.stream_id,
        sensor.device_id,
        2,
    )
    # The same upload again: the 8 stored readings are duplicates, not accepted.
    again = await env.telemetry.UploadReadings(
        upload_request(sensor.device_id, values), metadata=ann
    )
    assert (again.accepted, again.duplicates, again.rejected) == (0, 8, 2)
    assert (
        again.summary == "Stored 0 of 10 readings; 8 already stored; 2 rejected: 2 NON_FINITE_VALUE"
    )
    # Two readings of one upload sharing a timestamp: the first is stored, the second a duplicate.
    twice = upload_request(sensor.device_id, [5.0, 6.0, 7.0], start_us=NOW_US - 1_000_000)
    twice.readings[2].timestamp.CopyFrom(twice.readings[1].timestamp)
    ack = await env.telemetry.UploadReadings(twice, metadata=ann)
    assert (ack.accepted, ack.duplicates, ack.summary) == (
        2,
        1,
        "Stored 2 of 3 readings; 1 already stored",
    )


async def test_streamed_rejections_name_streams_never_devices(env: Env) -> None:
    ann = await user(env)
    mine, other = await device(env, ann), await device(env, ann)
    token = await credential(env, ann, mine.device_id)
    timestamps, values = series(3)
    (ack,) = await stream(env, token, [batch(1, other.device_id, timestamps, values)])
    (rejection,) = ack.rejections
    assert (rejection.stream_id, rejection.device_id) == ("", other.device_id)
    (nan,) = await stream(env, token, [batch(2, mine.device_id, timestamps, [float("nan")] * 3)])
    # No reading stored: no stream was created for the new metric either.
    assert (nan.accepted, nan.rejections[0].stream_id, nan.rejections[0].device_id) == (
        0,
        "",
        mine.device_id,
    )
    assert nan.summary == "Stored 0 of 3 readings; 3 rejected: 3 NON_FINITE_VALUE"


async def test_a_streamed_batch_holds_at_most_100000_readings(env: Env) -> None:
    ann = await user(env)
    mine = await device(env, ann)
    token = await credential(env, ann, mine.device_id)
    # 10 ms apart, so that even the last reading is in the past.
    timestamps, values = series(100_001, step=10_000)
    # Counted over the whole batch: two streams, neither over the limit alone.
    over = telemetry_pb2.ReadingBatch(
        sequence=1,
        streams=[
            telemetry_pb2.StreamReadings(
                device_id=mine.device_id,
                metric_name=metric,
                timestamps=timestamps[part],
                values=values[part],
            )
            for metric, part in (("a", slice(0, 50_000)), ("b", slice(50_000, None)))
        ],
    )
    (refused,) = await stream(env, token, [over])
    assert (refused.accepted, refused.rejected) == (0, 100_001)
    assert {r.reason for r in refused.rejections} == {"BATCH_TOO_LARGE"}
    (taken,) = await stream(env, token, [batch(2, mine.device_id, timestamps[1:], values[1:])])
    assert (taken.accepted, taken.rejected) == (100_000, 0)


async def test_a_stream_without_readings_has_no_latest_value(env: Env) -> None:
    ann = await user(env)
    sensor = await device(env, ann)
    created = await env.telemetry.CreateStream(
        telemetry_pb2.CreateStreamRequest(device_id=sensor.device_id, metric_name="temp"),
        metadata=ann,
    )
    assert not created.HasField("latest_value") and not created.HasField("last_seen_at")
    shown = await env.telemetry.GetStream(
        telemetry_pb2.GetStreamRequest(stream_id=created.stream_id), metadata=ann
    )
    assert not shown.HasField("latest_value")
    await stream(env, ann, [batch(1, sensor.device_id, [NOW_US - 1_000_000], [0.0])])
    shown = await env.telemetry.GetStream(
        telemetry_pb2.GetStreamRequest(stream_id=created.stream_id), metadata=ann
    )
    assert shown.HasField("latest_value") and shown.latest_value == 0.0  # a real 0.0 reading


async def test_downsampling_uses_the_whole_point_budget(env: Env) -> None:
    ann = await user(env)
    sensor = await device(env, ann)
    timestamps, values = series(600)
    (ack,) = await stream(env, ann, [batch(1, sensor.device_id, timestamps, values)])
    # Each point counts: an odd budget leaves one unused (min and max come in pairs).
    for max_points, expected in ((500, 500), (499, 498), (2, 2), (601, 600)):
        data = await env.telemetry.GetStreamData(
            telemetry_pb2.GetStreamDataRequest(stream_id=ack.stream_ids[0], max_points=max_points),
            metadata=ann,
        )
        stamps = [p.timestamp.ToMicroseconds() for p in data.data]
        assert len(stamps) == expected, max_points
        assert (stamps[0], stamps[-1]) == (timestamps[0], timestamps[-1])
        assert stamps == sorted(set(stamps))
        assert data.downsampled is (max_points < 600)


async def test_streams_per_device_are_capped_and_listed_by_page(env: Env) -> None:
    ann = await user(env)
    sensor = await device(env, ann)
    other = await device(env, ann)
    timestamps, values = series(1)
    limit = 100  # IOT_MAX_STREAMS_PER_DEVICE's default
    # One batch with 150 new metrics of one device and one of another: 100 streams, no more.
    entries = [
        telemetry_pb2.StreamReadings(
            device_id=sensor.device_id, metric_name=f"m{n:03}", timestamps=timestamps, values=values
        )
        for n in range(limit + 50)
    ] + [
        telemetry_pb2.StreamReadings(
            device_id=other.device_id, metric_name="temp", timestamps=timestamps, values=values
        )
    ]
    [ack] = await stream(env, ann, [telemetry_pb2.ReadingBatch(sequence=1, streams=entries)])
    assert ack.accepted == limit + 1
    assert [(r.index, r.reason, r.count) for r in ack.rejections] == [
        (n, "TOO_MANY_STREAMS", 1) for n in range(limit, limit + 50)
    ]
    # An existing metric still takes readings; a new one is refused on every path.
    later, more = series(1, start=NOW_US - 1_000_000)
    [again] = await stream(
        env,
        ann,
        [
            telemetry_pb2.ReadingBatch(
                sequence=2,
                streams=[
                    telemetry_pb2.StreamReadings(
                        device_id=sensor.device_id, metric_name=name, timestamps=later, values=more
                    )
                    for name in ("m000", "new")
                ],
            )
        ],
    )
    assert again.accepted == 1
    assert [(r.index, r.reason) for r in again.rejections] == [(1, "TOO_MANY_STREAMS")]
    for call in (
        env.telemetry.UploadReadings(
            telemetry_pb2.UploadReadingsRequest(
                device_id=sensor.device_id,
                metric_name="new",
                readings=[
                    telemetry_pb2.Reading(
                        timestamp=timestamp_pb2.Timestamp(seconds=later[0] // 1_000_000), value=1
                    )
                ],
            ),
            metadata=ann,
        ),
        env.telemetry.CreateStream(
            telemetry_pb2.CreateStreamRequest(device_id=sensor.device_id, metric_name="new"),
            metadata=ann,
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert reason_of(caught.value) == "TOO_MANY_STREAMS"
    # The default page holds every stream of a device at the default limit.
    listed = await env.telemetry.ListStreams(
        telemetry_pb2.ListStreamsRequest(device_id=sensor.device_id), metadata=ann
    )
    assert [s.metric_name for s in listed.streams] == [f"m{n:03}" for n in range(limit)]
    assert (listed.pagination.page, listed.pagination.limit) == (1, 100)
    assert (listed.pagination.total, listed.pagination.total_pages) == (limit, 1)
    paged = await env.telemetry.ListStreams(
        telemetry_pb2.ListStreamsRequest(device_id=sensor.device_id, page=4, limit=30),
        metadata=ann,
    )
    assert [s.metric_name for s in paged.streams] == [f"m{n:03}" for n in range(90, 100)]
    assert (paged.pagination.total, paged.pagination.total_pages) == (limit, 4)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.telemetry.ListStreams(
            telemetry_pb2.ListStreamsRequest(device_id=sensor.device_id, limit=101), metadata=ann
        )
    assert [v.field for v in violations_of(caught.value)] == ["limit"]


def seconds(value: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromMicroseconds(round(value * 1_000_000))
    return duration


async def test_sampling_is_a_rate_a_period_or_both_alike(env: Env) -> None:
    ann = await user(env)
    sensor = await device(env, ann)

    async def create(metric: str, **sampling: object) -> telemetry_pb2.SensorStream:
        return await env.telemetry.CreateStream(
            telemetry_pb2.CreateStreamRequest(
                device_id=sensor.device_id, metric_name=metric, **sampling
            ),
            metadata=ann,
        )

    def shown(s: telemetry_pb2.SensorStream) -> tuple[int, int]:
        return s.sampling_rate, s.sampling_period.ToMicroseconds()

    assert shown(await create("rate", sampling_rate=4)) == (4, 250_000)
    assert shown(await create("slow", sampling_period=seconds(300))) == (0, 300_000_000)
    assert shown(await create("fast", sampling_period=seconds(0.1))) == (10, 100_000)
    # 1 / 0.4 s = 2.5 Hz: the rate rounds halves up.
    assert shown(await create("half", sampling_period=seconds(0.4))) == (3, 400_000)
    assert shown(await create("both", sampling_rate=3, sampling_period=seconds(0.333))) == (
        3,
        333_000,
    )
    irregular = await create("none")
    assert shown(irregular) == (0, 0) and irregular.HasField("sampling_period")

    for sampling, field in (
        ({"sampling_rate": 5, "sampling_period": seconds(1)}, "sampling_period"),
        ({"sampling_rate": 5, "sampling_period": seconds(0)}, "sampling_period"),
        ({"sampling_period": seconds(0.0005)}, "sampling_period"),
        ({"sampling_period": seconds(8 * 86_400)}, "sampling_period"),
        ({"sampling_period": seconds(-1)}, "sampling_period"),
        ({"sampling_rate": 2_000_000}, "sampling_rate"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await create("bad", **sampling)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in violations_of(caught.value)] == [field], sampling

    slow = (await create("slow", sampling_period=seconds(300))).stream_id

    async def update(**changes: object) -> telemetry_pb2.SensorStream:
        return await env.telemetry.UpdateStream(
            telemetry_pb2.UpdateStreamRequest(stream_id=slow, **changes), metadata=ann
        )

    assert shown(await update(sampling_rate=2)) == (2, 500_000)  # a new rate, a new period
    assert shown(await update(retention_days=3)) == (2, 500_000)  # sampling left alone
    assert shown(await update(sampling_period=seconds(60))) == (0, 60_000_000)
    # An explicit 0 Hz beside a period is a rate given: 10 Hz disagrees with it.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await update(sampling_rate=0, sampling_period=seconds(0.1))
    assert [v.field for v in violations_of(caught.value)] == ["sampling_period"]
    assert shown(await update(sampling_rate=0)) == (0, 0)
    fetched = await env.telemetry.GetStream(
        telemetry_pb2.GetStreamRequest(stream_id=slow), metadata=ann
    )
    assert shown(fetched) == (0, 0) and fetched.retention_days == 3


async def test_a_stream_from_before_sampling_periods_keeps_its_rate(env: Env) -> None:
    ann = await user(env)
    sensor = await device(env, ann)
    created = await env.telemetry.CreateStream(
        telemetry_pb2.CreateStreamRequest(
            device_id=sensor.device_id, metric_name="temp", sampling_rate=5
        ),
        metadata=ann,
    )
    await env.suite.stop("telemetry")
    # A row from before the column: the server default that filled it, only a rate.
    await env.backend.sql("telemetry", "UPDATE streams SET sampling_period_us = 0")
    address = env.suite.address("telemetry")
    restarted = await telemetry_wiring.build(
        env.suite.settings, address=address, schema=env.backend.schema("telemetry")
    )
    await restarted.built.start()
    env.suite.processes["telemetry"] = restarted
    shown = await env.telemetry.GetStream(
        telemetry_pb2.GetStreamRequest(stream_id=created.stream_id), metadata=ann
    )
    assert (shown.sampling_rate, shown.sampling_period.ToMicroseconds()) == (5, 200_000)
    changed = await env.telemetry.UpdateStream(
        telemetry_pb2.UpdateStreamRequest(stream_id=created.stream_id, sampling_period=seconds(2)),
        metadata=ann,
    )
    assert (changed.sampling_rate, changed.sampling_period.ToMicroseconds()) == (0, 2_000_000)


async def test_a_chart_asked_with_scores_is_answered_without_analytics(env: Env) -> None:
    # This suite runs no analytics: the scores cannot be had, the data can.
    ann = await user(env)
    sensor = await device(env, ann)
    timestamps, values = series(50)
    await stream(env, ann, [batch(1, sensor.device_id, timestamps, values)])
    listed = await env.telemetry.ListStreams(
        telemetry_pb2.ListStreamsRequest(device_id=sensor.device_id), metadata=ann
    )
    data = await env.telemetry.GetStreamData(
        telemetry_pb2.GetStreamDataRequest(
            stream_id=listed.streams[0].stream_id, include_scores=True
        ),
        metadata=ann,
    )
    assert [p.value for p in data.data] == values and data.stats.count == 50
    assert not data.scores_available
    assert not any(p.HasField("anomaly_score") for p in data.data)
