"""Analytics over real gRPC: analysis fed as telemetry feeds it, review, live watch,
correlations and exports, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import math
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc
import numpy as np
import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from iot.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from iot.auth.v1 import auth_pb2, auth_pb2_grpc
from iot.devices.v1 import devices_pb2, devices_pb2_grpc
from iot.telemetry.v1 import telemetry_pb2, telemetry_pb2_grpc
from iotkit.codec import encode
from iotkit.config import PLACEHOLDER_SECRET
from iotkit.errors import reason_of, violations_of
from services.analytics.analytics.detectors import (
    BatchResult,
    Finding,
    Float64s,
    Int64s,
    StreamDetector,
)
from services.telemetry import wiring as telemetry_wiring
from tests.conftest import Backend, Suite, start_suite
from tests.support import bearer, new_user

SECOND = 1_000_000
START = int(time.time()) * SECOND - 3 * 3600 * SECOND


@dataclass
class Env:
    auth: auth_pb2_grpc.AuthServiceStub
    devices: devices_pb2_grpc.DeviceServiceStub
    telemetry: telemetry_pb2_grpc.TelemetryServiceStub
    analytics: analytics_pb2_grpc.AnalyticsServiceStub
    suite: Suite
    backend: Backend


@pytest.fixture
async def env(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    # Telemetry follows the devices event log (and tells analytics of decommissions) this often.
    monkeypatch.setattr(telemetry_wiring, "EVENTS_PERIOD", 0.1)
    suite = await start_suite(backend)
    async with (
        grpc.aio.insecure_channel(suite.address("auth")) as a,
        grpc.aio.insecure_channel(suite.address("devices")) as d,
        grpc.aio.insecure_channel(suite.address("telemetry")) as t,
        grpc.aio.insecure_channel(suite.address("analytics")) as n,
    ):
        yield Env(
            auth_pb2_grpc.AuthServiceStub(a),
            devices_pb2_grpc.DeviceServiceStub(d),
            telemetry_pb2_grpc.TelemetryServiceStub(t),
            analytics_pb2_grpc.AnalyticsServiceStub(n),
            suite,
            backend,
        )
    await suite.aclose()


async def user(env: Env) -> tuple[list[tuple[str, str]], str]:
    login = await new_user(env.auth)
    return bearer(login.access_token), login.user.uuid


async def as_telemetry(env: Env) -> list[tuple[str, str]]:
    answer = await env.auth.IssueServiceToken(
        auth_pb2.IssueServiceTokenRequest(service="telemetry", client_secret=PLACEHOLDER_SECRET)
    )
    return bearer(answer.token)


def signal(
    count: int, start: int = START, spike_at: int | None = None
) -> tuple[list[int], list[float]]:
    """A healthy temperature sensor at 1 Hz, 21 °C within ±0.05 at its 0.01 resolution, with
    a spike of +9 °C at ``spike_at`` (at least 150 readings in: after the warm-up).

    The warm-up sees every value the sensor takes, so the spike is the one anomaly: a
    drifting level would leave the warm-up's range and be scored as new, and a finding
    hides any other for the 50 readings after it."""
    rng = np.random.default_rng(5)
    values = np.round(21 + rng.uniform(-0.05, 0.05, count), 2)
    if spike_at is not None:
        assert spike_at >= 150, "a spike in the warm-up is not judged"
        values[spike_at] += 9.0
    return [start + i * SECOND for i in range(count)], [float(v) for v in values]


def chunk(
    position: int,
    stream: str,
    owner: str,
    ts: list[int],
    vs: list[float],
    device_type: str = "temperature",
) -> analytics_pb2.StreamChunk:
    return analytics_pb2.StreamChunk(
        position=position,
        stream_id=stream,
        device_id=stream,
        owner_id=owner,
        device_type=device_type,
        metric_name="temperature",
        sampling_rate=1,
        timestamps=ts,
        values=vs,
    )


async def analyze(
    env: Env, requests: list[analytics_pb2.AnalysisRequest]
) -> list[analytics_pb2.AnalysisResponse]:
    async def feed() -> AsyncIterator[analytics_pb2.AnalysisRequest]:
        for request in requests:
            yield request

    call = env.analytics.AnalyzeReadings(feed(), metadata=await as_telemetry(env))
    return [answer async for answer in call]


async def test_chunks_are_analysed_once_and_anomalies_reviewed(env: Env) -> None:
    owner, owner_id = await user(env)
    stream = str(uuid.uuid4())
    ts, vs = signal(600, spike_at=450)
    requests = [
        analytics_pb2.AnalysisRequest(chunks=[chunk(1, stream, owner_id, ts[:300], vs[:300])]),
        analytics_pb2.AnalysisRequest(chunks=[chunk(2, stream, owner_id, ts[300:], vs[300:])]),
    ]
    answers = await analyze(env, requests)
    assert [(a.watermark, a.anomalies) for a in answers] == [(1, 0), (2, 1)]
    # Telemetry resends after a restart: already analysed, nothing new.
    again = await analyze(env, requests)
    assert [a.anomalies for a in again] == [0, 0] and again[-1].watermark == 2

    listed = await env.analytics.ListAnomalies(analytics_pb2.ListAnomaliesRequest(), metadata=owner)
    assert len(listed.anomalies) == 1 and listed.pagination.total == 1
    spike = listed.anomalies[0]
    assert (spike.anomaly_type, spike.status, spike.stream_id) == ("spike", "pending", stream)
    assert spike.detected_at.ToMicroseconds() == ts[450]
    assert spike.raw_value == vs[450] and 0.5 <= spike.confidence_score <= 1.0

    before = await env.analytics.GetDetector(
        analytics_pb2.GetDetectorRequest(stream_id=stream), metadata=owner
    )
    reviewed = await env.analytics.ReviewAnomaly(
        analytics_pb2.ReviewAnomalyRequest(
            anomaly_id=spike.anomaly_id, status="dismissed", note="door opened"
        ),
        metadata=owner,
    )
    assert (reviewed.status, reviewed.reviewed_by, reviewed.review_note) == (
        "dismissed",
        owner_id,
        "door opened",
    )
    assert reviewed.HasField("reviewed_at")
    after = await env.analytics.GetDetector(
        analytics_pb2.GetDetectorRequest(stream_id=stream), metadata=owner
    )
    # Less sensitive now, visibly: the score a finding needs is 10% higher.
    assert (before.threshold, before.base_threshold) == (0.5, 0.5)
    assert after.threshold == pytest.approx(0.55) and after.base_threshold == 0.5
    assert after.dismissed == 1

    stranger, _ = await user(env)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.analytics.GetAnomaly(
            analytics_pb2.GetAnomalyRequest(anomaly_id=spike.anomaly_id), metadata=stranger
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    mine = await env.analytics.ListAnomalies(
        analytics_pb2.ListAnomaliesRequest(), metadata=stranger
    )
    assert list(mine.anomalies) == []


async def test_chunks_forwarded_as_stored_are_analysed_as_their_columns(env: Env) -> None:
    # Telemetry forwards its stored chunks encoded (StreamChunk.data); the same readings
    # as columns find the same anomaly.
    owner, owner_id = await user(env)
    ts, vs = signal(600, spike_at=450)
    found = {}
    for way in ("columns", "data"):
        stream = str(uuid.uuid4())
        sent = chunk(1, stream, owner_id, ts, vs)
        if way == "data":
            sent.data = encode(np.array(ts, dtype=np.int64), np.array(vs))
            del sent.timestamps[:], sent.values[:]
        [answer] = await analyze(env, [analytics_pb2.AnalysisRequest(chunks=[sent])])
        assert answer.anomalies == 1
        listed = await env.analytics.ListAnomalies(
            analytics_pb2.ListAnomaliesRequest(stream_id=stream), metadata=owner
        )
        found[way] = [
            (a.anomaly_type, a.detected_at.ToMicroseconds(), a.raw_value, a.confidence_score)
            for a in listed.anomalies
        ]
    assert found["data"] == found["columns"] and found["data"][0][:2] == ("spike", ts[450])


@pytest.mark.parametrize(
    "data, columns, message",
    [
        (b"\x01", False, "is not an encoded chunk"),  # shorter than a header
        (b"\x01\x01\x00\x00\x05\x00\x00\x00garbage", False, "is not an encoded chunk"),
        # A header claiming 2**31 readings over a small body: refused, not inflated.
        (
            b"\x01\x01\x00\x00\x00\x00\x00\x80" + zlib.compress(b"\x00" * 1000),
            False,
            "is not an encoded chunk",
        ),
        (None, True, "must come without timestamps and values"),
    ],
)
async def test_a_forwarded_chunk_that_cannot_be_read_is_400(
    env: Env, data: bytes | None, columns: bool, message: str
) -> None:
    _, owner_id = await user(env)
    ts, vs = signal(10)
    sent = chunk(1, str(uuid.uuid4()), owner_id, ts if columns else [], vs if columns else [])
    sent.data = data if data is not None else encode(np.array(ts, dtype=np.int64), np.array(vs))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await analyze(env, [analytics_pb2.AnalysisRequest(chunks=[sent])])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    [violation] = violations_of(caught.value)
    assert violation.field == "chunks[0].data" and message in violation.message


async def test_a_chunk_position_past_a_signed_64_bit_integer_is_400(env: Env) -> None:
    # The position is a uint64 on the wire but a signed 64-bit column where it is kept:
    # 2**64 - 1 failed the store's insert and answered INTERNAL.
    _, owner_id = await user(env)
    ts, vs = signal(10)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await analyze(
            env,
            [
                analytics_pb2.AnalysisRequest(
                    chunks=[chunk(2**64 - 1, str(uuid.uuid4()), owner_id, ts, vs)]
                )
            ],
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    [violation] = violations_of(caught.value)
    assert violation.field == "chunks[0].position"
    # The largest a column holds is taken.
    [answer] = await analyze(
        env,
        [
            analytics_pb2.AnalysisRequest(
                chunks=[chunk(2**63 - 1, str(uuid.uuid4()), owner_id, ts, vs)]
            )
        ],
    )
    assert answer.watermark == 2**63 - 1


async def test_a_detector_is_found_by_its_stream_id_in_capitals(env: Env) -> None:
    # GetDetector, GetScores and UpdateDetector looked the stream up as written: in
    # capitals (which the anomaly listing takes) the stream was not found.
    owner, owner_id = await user(env)
    stream = str(uuid.uuid4())
    ts, vs = signal(200)
    await analyze(env, [analytics_pb2.AnalysisRequest(chunks=[chunk(1, stream, owner_id, ts, vs)])])
    spelled = stream.upper()
    shown = await env.analytics.GetDetector(
        analytics_pb2.GetDetectorRequest(stream_id=spelled), metadata=owner
    )
    assert shown.stream_id == stream
    scores = await env.analytics.GetScores(
        analytics_pb2.GetScoresRequest(stream_id=spelled), metadata=owner
    )
    assert len(scores.timestamps_us) > 0 and scores.stream_id == stream
    changed = await env.analytics.UpdateDetector(
        analytics_pb2.UpdateDetectorRequest(stream_id=spelled, threshold=0.5), metadata=owner
    )
    assert changed.stream_id == stream


async def test_detector_state_survives_an_analytics_restart(env: Env) -> None:
    owner, owner_id = await user(env)
    stream = str(uuid.uuid4())
    ts, vs = signal(900, spike_at=700)
    await analyze(
        env,
        [analytics_pb2.AnalysisRequest(chunks=[chunk(10, stream, owner_id, ts[:600], vs[:600])])],
    )
    await env.suite.stop("analytics")
    from services.analytics.wiring import build

    address = env.suite.address("analytics")
    restarted = await build(
        env.suite.settings, address=address, schema=env.backend.schema("analytics")
    )
    await restarted.built.start()
    env.suite.processes["analytics"] = restarted
    answers = await analyze(
        env,
        [analytics_pb2.AnalysisRequest(chunks=[chunk(11, stream, owner_id, ts[600:], vs[600:])])],
    )
    # The restarted detector remembers the stream: no warm-up, the spike is found at once.
    assert answers[0].anomalies == 1
    detector = await env.analytics.GetDetector(
        analytics_pb2.GetDetectorRequest(stream_id=stream), metadata=owner
    )
    assert detector.readings == 900


async def test_late_readings_are_counted_and_shown(env: Env) -> None:
    owner, owner_id = await user(env)
    stream = str(uuid.uuid4())
    ts, vs = signal(400, spike_at=350)
    # The second chunk starts with three readings the first already went past, and a repeat
    # beyond the bounds: late, so checked against the bounds only.
    late_ts = [ts[100], ts[200], ts[299], ts[299]]
    late_vs = [21.0, 21.0, 21.0, 99.0]
    answers = await analyze(
        env,
        [
            analytics_pb2.AnalysisRequest(chunks=[chunk(40, stream, owner_id, ts[:300], vs[:300])]),
            analytics_pb2.AnalysisRequest(
                chunks=[chunk(41, stream, owner_id, late_ts + ts[300:], late_vs + vs[300:])]
            ),
        ],
    )
    assert [(a.watermark, a.anomalies) for a in answers] == [(40, 0), (41, 2)]
    detector = await env.analytics.GetDetector(
        analytics_pb2.GetDetectorRequest(stream_id=stream), metadata=owner
    )
    assert (detector.readings, detector.late_readings) == (400, 4)
    listed = await env.analytics.ListAnomalies(analytics_pb2.ListAnomaliesRequest(), metadata=owner)
    assert {(a.anomaly_type, a.detected_at.ToMicroseconds()) for a in listed.anomalies} == {
        ("out_of_range", ts[299]),
        ("spike", ts[350]),
    }


async def test_a_stream_that_never_moved_then_leaps_is_stored_and_analysed_on(env: Env) -> None:
    # A spread of zero, then 1e10 on a stream without bounds: the detector's state must stay
    # storable (PostgreSQL's JSON has no Infinity), or no chunk after it could be acknowledged.
    owner, owner_id = await user(env)
    stream = str(uuid.uuid4())
    ts = [START + i * SECOND for i in range(700)]
    vs = [0.0] * 300 + [1e10] * 400
    first, second = (
        chunk(50, stream, owner_id, ts[:400], vs[:400], device_type="generic"),
        chunk(51, stream, owner_id, ts[400:], vs[400:], device_type="generic"),
    )
    answers = await analyze(
        env,
        [
            analytics_pb2.AnalysisRequest(chunks=[first]),
            analytics_pb2.AnalysisRequest(chunks=[second]),
        ],
    )
    assert [a.watermark for a in answers] == [50, 51]
    detector = await env.analytics.GetDetector(
        analytics_pb2.GetDetectorRequest(stream_id=stream), metadata=owner
    )
    assert detector.readings == 700
    listed = await env.analytics.ListAnomalies(analytics_pb2.ListAnomaliesRequest(), metadata=owner)
    # A leap that stays is a level shift, typed with the reading after it.
    assert [(a.anomaly_type, a.detected_at.ToMicroseconds()) for a in listed.anomalies] == [
        ("rate_of_change", ts[300])
    ]


# A stream id in capitals (which the listing takes) is the same stream: the watch matched
# it as given and watched nothing.
@pytest.mark.parametrize("spelling", [str.lower, str.upper])
async def test_watch_delivers_new_anomalies_live(env: Env, spelling: Callable[[str], str]) -> None:
    owner, owner_id = await user(env)
    stream = str(uuid.uuid4())
    watch = env.analytics.WatchAnomalies(
        analytics_pb2.WatchAnomaliesRequest(stream_id=spelling(stream)), metadata=owner
    )
    first = asyncio.create_task(watch.read())
    await asyncio.sleep(0.2)
    ts, vs = signal(400, spike_at=350)
    await analyze(
        env, [analytics_pb2.AnalysisRequest(chunks=[chunk(20, stream, owner_id, ts, vs)])]
    )
    anomaly = await asyncio.wait_for(first, 5)
    assert anomaly.stream_id == stream and anomaly.anomaly_type == "spike"
    watch.cancel()


async def test_watch_filters_that_are_no_uuids_are_400(env: Env) -> None:
    # "nope" was a watch that matched nothing, forever, without saying why.
    owner, _ = await user(env)
    for fields, field in (({"stream_id": "nope"}, "stream_id"), ({"device_id": "x"}, "device_id")):
        refused = env.analytics.WatchAnomalies(
            analytics_pb2.WatchAnomaliesRequest(**fields), metadata=owner
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(refused.read(), 5)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in violations_of(caught.value)] == [field]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"limit": 1000}, "limit"),
        ({"anomaly_type": "wobble"}, "anomaly_type"),
        ({"status": "maybe"}, "status"),
        ({"min_confidence": 1.5}, "min_confidence"),
        ({"stream_id": "nope"}, "stream_id"),
    ],
)
async def test_bad_listing_filters_are_400(env: Env, fields: dict[str, object], field: str) -> None:
    owner, _ = await user(env)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.analytics.ListAnomalies(
            analytics_pb2.ListAnomaliesRequest(**fields), metadata=owner
        )  # type: ignore[arg-type]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in violations_of(caught.value)] == [field]


async def store_readings(
    env: Env, who: list[tuple[str, str]], values: list[float], step: int
) -> str:
    device = await env.devices.RegisterDevice(
        devices_pb2.RegisterDeviceRequest(name="d", type="temperature"), metadata=who
    )

    async def batches() -> AsyncIterator[telemetry_pb2.ReadingBatch]:
        yield telemetry_pb2.ReadingBatch(
            sequence=1,
            streams=[
                telemetry_pb2.StreamReadings(
                    device_id=device.device_id,
                    metric_name="temperature",
                    timestamps=[START + i * step for i in range(len(values))],
                    values=values,
                )
            ],
        )

    acks = [a async for a in env.telemetry.StreamReadings(batches(), metadata=who)]
    return acks[0].stream_ids[0]


def window(seconds: int) -> tuple[timestamp_pb2.Timestamp, timestamp_pb2.Timestamp]:
    start, end = timestamp_pb2.Timestamp(), timestamp_pb2.Timestamp()
    start.FromMicroseconds(START)
    end.FromMicroseconds(START + seconds * SECOND)
    return start, end


async def test_correlations_of_streams_at_different_rates(env: Env) -> None:
    owner, _ = await user(env)
    base = np.sin(np.arange(1200) / 60.0)
    fast = await store_readings(env, owner, [round(float(v), 3) for v in base], SECOND)
    slow = await store_readings(
        env, owner, [round(float(2 * v + 5), 3) for v in base[::5]], 5 * SECOND
    )
    start, end = window(1200)
    for algorithm in ("pearson", "spearman", "cross_correlation"):
        result = await env.analytics.CreateCorrelation(
            analytics_pb2.CreateCorrelationRequest(
                stream_a=fast,
                stream_b=slow,
                window_start=start,
                window_end=end,
                algorithm=algorithm,
            ),
            metadata=owner,
        )
        assert result.coefficient > 0.95, algorithm
        assert result.sample_count >= 200 and result.grid_seconds == 5.0
    listed = await env.analytics.ListCorrelations(
        analytics_pb2.ListCorrelationsRequest(), metadata=owner
    )
    assert len(listed.correlations) == 3
    fetched = await env.analytics.GetCorrelation(
        analytics_pb2.GetCorrelationRequest(correlation_id=listed.correlations[0].correlation_id),
        metadata=owner,
    )
    assert fetched.algorithm == listed.correlations[0].algorithm

    stranger, _ = await user(env)
    with pytest.raises(grpc.aio.AioRpcError) as foreign:
        await env.analytics.CreateCorrelation(
            analytics_pb2.CreateCorrelationRequest(
                stream_a=fast,
                stream_b=slow,
                window_start=start,
                window_end=end,
                algorithm="pearson",
            ),
            metadata=stranger,
        )
    assert foreign.value.code() == grpc.StatusCode.NOT_FOUND

    later, much_later = window(1_000_000)
    later.FromMicroseconds(START + 10_000 * SECOND)
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await env.analytics.CreateCorrelation(
            analytics_pb2.CreateCorrelationRequest(
                stream_a=fast,
                stream_b=slow,
                window_start=later,
                window_end=much_later,
                algorithm="pearson",
            ),
            metadata=owner,
        )
    assert empty.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_a_correlation_while_telemetry_is_down_is_unavailable_not_unknown(env: Env) -> None:
    # The streams exist and are the caller's: with telemetry away the answer is "try again",
    # never "Stream not found", which would send the user hunting for a stream that is there.
    owner, _ = await user(env)
    base = [round(float(v), 3) for v in np.sin(np.arange(120) / 10.0)]
    a = await store_readings(env, owner, base, SECOND)
    b = await store_readings(env, owner, base, SECOND)
    await env.suite.stop("telemetry")
    start, end = window(120)
    with pytest.raises(grpc.aio.AioRpcError) as away:
        await env.analytics.CreateCorrelation(
            analytics_pb2.CreateCorrelationRequest(
                stream_a=a, stream_b=b, window_start=start, window_end=end, algorithm="pearson"
            ),
            metadata=owner,
        )
    assert away.value.code() == grpc.StatusCode.UNAVAILABLE
    assert reason_of(away.value) == "SERVICE_UNAVAILABLE"


async def correlate_streams(
    env: Env, who: list[tuple[str, str]], a: str, b: str, seconds: int, **fields: object
) -> analytics_pb2.Correlation:
    start, end = window(seconds)
    return await env.analytics.CreateCorrelation(
        analytics_pb2.CreateCorrelationRequest(
            stream_a=a,
            stream_b=b,
            window_start=start,
            window_end=end,
            **fields,  # type: ignore[arg-type]
        ),
        metadata=who,
    )


async def test_independent_streams_are_not_significant_at_any_lag(env: Env) -> None:
    owner, _ = await user(env)
    rng = np.random.default_rng(21)
    walks = [np.round(20 + np.cumsum(rng.normal(0, 0.2, 900)), 3) for _ in range(2)]
    noise = [np.round(rng.normal(20, 1, 900), 3) for _ in range(2)]
    for a_values, b_values in (walks, noise):
        a = await store_readings(env, owner, [float(v) for v in a_values], SECOND)
        b = await store_readings(env, owner, [float(v) for v in b_values], SECOND)
        for algorithm in ("pearson", "spearman", "cross_correlation"):
            result = await correlate_streams(env, owner, a, b, 900, algorithm=algorithm)
            assert result.p_value >= 0.05, (algorithm, result)
            assert result.ci_low <= 0.0 <= result.ci_high, (algorithm, result)
            assert 0 < result.effective_sample_count <= result.sample_count
            # The pairs actually used at the reported lag, not the window's 900 buckets.
            lag_steps = abs(round(result.best_lag_seconds / result.grid_seconds))
            assert result.sample_count == 900 - lag_steps
            assert result.lags_tried == (121 if algorithm == "cross_correlation" else 1)


async def test_a_lagged_noisy_copy_is_found_with_a_tiny_p_value(env: Env) -> None:
    owner, _ = await user(env)
    rng = np.random.default_rng(22)
    base = np.zeros(920)
    for i in range(1, base.size):  # a smooth, autocorrelated signal
        base[i] = 0.9 * base[i - 1] + rng.normal()
    leader = base[20:]
    follower = base[:900] + rng.normal(0, 1, 900)  # the same signal 20 s later, noisy
    a = await store_readings(env, owner, [round(float(v), 3) for v in leader], SECOND)
    b = await store_readings(env, owner, [round(float(v), 3) for v in follower], SECOND)
    result = await correlate_streams(env, owner, a, b, 900, algorithm="cross_correlation")
    assert result.best_lag_seconds == 20.0 and result.sample_count == 880
    assert result.p_value < 1e-9 and 0 < result.ci_low < result.coefficient < result.ci_high
    stored = await env.analytics.GetCorrelation(
        analytics_pb2.GetCorrelationRequest(correlation_id=result.correlation_id), metadata=owner
    )
    assert (stored.p_value, stored.ci_low, stored.lags_tried) == (
        result.p_value,
        result.ci_low,
        121,
    )


async def test_too_little_overlap_is_a_400_naming_the_window(env: Env) -> None:
    owner, _ = await user(env)
    a = await store_readings(env, owner, [20.0 + i % 3 for i in range(9)], 10 * SECOND)
    b = await store_readings(env, owner, [5.0 - i % 4 for i in range(9)], 10 * SECOND)
    for algorithm in ("pearson", "spearman", "cross_correlation"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await correlate_streams(env, owner, a, b, 600, algorithm=algorithm)
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        [violation] = violations_of(caught.value)
        assert violation.field == "window_start"
        assert "9 samples" in violation.message and "at least 10" in violation.message


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"algorithm": "kendall"}, "algorithm"),
        ({"same": True}, "stream_b"),
        ({"stream_a": "x"}, "stream_a"),
        ({"days": 40}, "window_end"),
        ({"max_lag_seconds": -1}, "max_lag_seconds"),
        ({"algorithm": "cross_correlation", "max_lag_seconds": 301}, "max_lag_seconds"),
    ],
)
async def test_bad_correlation_requests(env: Env, change: dict[str, object], field: str) -> None:
    owner, _ = await user(env)
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    start, end = window(600)
    if "days" in change:
        end.FromMicroseconds(START + int(change["days"]) * 86_400 * SECOND)  # type: ignore[call-overload]
    request = analytics_pb2.CreateCorrelationRequest(
        stream_a=str(change.get("stream_a", a)),
        stream_b=a if change.get("same") else b,
        window_start=start,
        window_end=end,
        algorithm=str(change.get("algorithm", "pearson")),
        max_lag_seconds=float(change.get("max_lag_seconds", 0)),  # type: ignore[arg-type]
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.analytics.CreateCorrelation(request, metadata=owner)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [v.field for v in violations_of(caught.value)]


async def test_exports_stream_csv_and_json_with_the_seed_columns(env: Env) -> None:
    owner, owner_id = await user(env)
    stream = str(uuid.uuid4())
    ts, vs = signal(600, spike_at=500)
    await analyze(
        env, [analytics_pb2.AnalysisRequest(chunks=[chunk(30, stream, owner_id, ts, vs)])]
    )
    parts = [
        p
        async for p in env.analytics.ExportAnomalies(
            analytics_pb2.ExportRequest(format="csv"), metadata=owner
        )
    ]
    text = b"".join(p.data for p in parts).decode()
    header, row = text.strip().split("\r\n")[:2]
    assert header.split(",")[:8] == [
        "anomaly_id",
        "stream_id",
        "device_id",
        "detected_at",
        "anomaly_type",
        "raw_value",
        "confidence_score",
        "status",
    ]
    assert parts[0].content_type.startswith("text/csv") and ",spike," in row
    import json

    parts = [
        p
        async for p in env.analytics.ExportAnomalies(
            analytics_pb2.ExportRequest(format="json"), metadata=owner
        )
    ]
    records = json.loads(b"".join(p.data for p in parts))
    assert [r["anomaly_type"] for r in records] == ["spike"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in env.analytics.ExportAnomalies(
            analytics_pb2.ExportRequest(format="xml"), metadata=owner
        ):
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_csv_exports_quote_text_a_spreadsheet_would_run(env: Env) -> None:
    """A review note that a spreadsheet would run as a formula (CSV injection) is exported
    behind an apostrophe, as the personal data export does; JSON keeps it as it is."""
    owner, owner_id = await user(env)
    stream = str(uuid.uuid4())
    ts, vs = signal(600, spike_at=500)
    await analyze(
        env, [analytics_pb2.AnalysisRequest(chunks=[chunk(30, stream, owner_id, ts, vs)])]
    )
    [spike] = (
        await env.analytics.ListAnomalies(
            analytics_pb2.ListAnomaliesRequest(stream_id=stream), metadata=owner
        )
    ).anomalies
    note = "=cmd|' /C calc'!A0"
    await env.analytics.ReviewAnomaly(
        analytics_pb2.ReviewAnomalyRequest(
            anomaly_id=spike.anomaly_id, status="confirmed", note=note
        ),
        metadata=owner,
    )

    async def export(fmt: str) -> bytes:
        request = analytics_pb2.ExportRequest(format=fmt, stream_id=stream)
        return b"".join(
            [p.data async for p in env.analytics.ExportAnomalies(request, metadata=owner)]
        )

    [row] = list(csv.DictReader(io.StringIO((await export("csv")).decode())))
    assert row["review_note"] == "'" + note
    assert (row["anomaly_id"], row["status"], row["reviewed_by"]) == (
        spike.anomaly_id,
        "confirmed",
        owner_id,
    )
    assert float(row["raw_value"]) == spike.raw_value  # a number, not quoted
    [record] = json.loads(await export("json"))
    assert record["review_note"] == note


async def device_with_spike(env: Env, who: list[tuple[str, str]], spike_at: int) -> str:
    """A device whose readings, stored through telemetry, hold one spike."""
    device = await env.devices.RegisterDevice(
        devices_pb2.RegisterDeviceRequest(name="d", type="temperature"), metadata=who
    )
    ts, vs = signal(600, spike_at=spike_at)

    async def batches() -> AsyncIterator[telemetry_pb2.ReadingBatch]:
        yield telemetry_pb2.ReadingBatch(
            sequence=1,
            streams=[
                telemetry_pb2.StreamReadings(
                    device_id=device.device_id, metric_name="temperature", timestamps=ts, values=vs
                )
            ],
        )

    acks = [a async for a in env.telemetry.StreamReadings(batches(), metadata=who)]
    assert acks[0].accepted == 600
    return device.device_id


async def anomalies_of(env: Env, who: list[tuple[str, str]]) -> list[analytics_pb2.Anomaly]:
    listed = await env.analytics.ListAnomalies(
        analytics_pb2.ListAnomaliesRequest(limit=100), metadata=who
    )
    return list(listed.anomalies)


async def test_a_decommissioned_devices_anomalies_are_gone(env: Env) -> None:
    owner, owner_id = await user(env)
    gone = await device_with_spike(env, owner, spike_at=400)
    kept = await device_with_spike(env, owner, spike_at=450)
    shown: list[analytics_pb2.Anomaly] = []
    for _ in range(100):  # telemetry forwards stored readings to analytics in the background
        shown = await anomalies_of(env, owner)
        if {a.device_id for a in shown} == {gone, kept}:
            break
        await asyncio.sleep(0.1)
    assert {a.device_id for a in shown} == {gone, kept}
    old = next(a for a in shown if a.device_id == gone)

    await env.devices.DecommissionDevice(
        devices_pb2.DecommissionDeviceRequest(device_id=gone), metadata=owner
    )
    for _ in range(100):  # telemetry follows the event log, purges, then tells analytics
        shown = await anomalies_of(env, owner)
        if gone not in {a.device_id for a in shown}:
            break
        await asyncio.sleep(0.1)
    assert {a.device_id for a in shown} == {kept}
    listed = await env.analytics.ListAnomalies(
        analytics_pb2.ListAnomaliesRequest(device_id=gone), metadata=owner
    )
    assert list(listed.anomalies) == [] and listed.pagination.total == 0
    exported = [
        p
        async for p in env.analytics.ExportAnomalies(
            analytics_pb2.ExportRequest(format="json"), metadata=owner
        )
    ]
    records = json.loads(b"".join(p.data for p in exported))
    assert {r["device_id"] for r in records} == {kept}
    for call, request in (
        (env.analytics.GetAnomaly, analytics_pb2.GetAnomalyRequest(anomaly_id=old.anomaly_id)),
        (env.analytics.GetDetector, analytics_pb2.GetDetectorRequest(stream_id=old.stream_id)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(request, metadata=owner)  # type: ignore[operator]
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND

    # A chunk of the device still in flight when it was purged brings nothing back, live or
    # listed.
    async def watch_one() -> analytics_pb2.Anomaly:
        async for anomaly in env.analytics.WatchAnomalies(
            analytics_pb2.WatchAnomaliesRequest(), metadata=owner
        ):
            return anomaly
        raise AssertionError("the watch ended")

    watcher = asyncio.create_task(watch_one())
    await asyncio.sleep(0.3)
    ts, vs = signal(600, spike_at=500)
    late = chunk(10**9, old.stream_id, owner_id, ts, vs)
    late.device_id = gone
    answers = await analyze(env, [analytics_pb2.AnalysisRequest(chunks=[late])])
    assert [(a.watermark, a.anomalies) for a in answers] == [(10**9, 0)]
    await asyncio.sleep(0.3)
    assert not watcher.done()
    watcher.cancel()
    assert {a.device_id for a in await anomalies_of(env, owner)} == {kept}


async def test_the_detector_is_given_each_streams_expected_interval(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    periods: list[float] = []
    process = StreamDetector.process

    def spy(
        self: StreamDetector, timestamps: Int64s, values: Float64s, *, sampling_period_us: float
    ) -> BatchResult:
        periods.append(sampling_period_us)
        return process(self, timestamps, values, sampling_period_us=sampling_period_us)

    monkeypatch.setattr(StreamDetector, "process", spy)
    owner, owner_id = await user(env)
    ts, vs = signal(100)
    only_rate = chunk(1, str(uuid.uuid4()), owner_id, ts, vs)
    only_rate.sampling_rate = 4  # a sender from before sampling_period_us
    only_period = chunk(2, str(uuid.uuid4()), owner_id, ts, vs)
    only_period.sampling_rate, only_period.sampling_period_us = 0, 300_000_000
    await analyze(env, [analytics_pb2.AnalysisRequest(chunks=[only_rate, only_period])])
    assert periods == [250_000.0, 300_000_000.0]

    # End to end: the period a stream is created with reaches its detector through telemetry.
    device = await env.devices.RegisterDevice(
        devices_pb2.RegisterDeviceRequest(name="tank", type="generic"), metadata=owner
    )
    created = await env.telemetry.CreateStream(
        telemetry_pb2.CreateStreamRequest(
            device_id=device.device_id,
            metric_name="level",
            sampling_period=duration_pb2.Duration(seconds=90),
        ),
        metadata=owner,
    )
    assert created.sampling_rate == 0
    await env.telemetry.UploadReadings(
        telemetry_pb2.UploadReadingsRequest(
            device_id=device.device_id,
            metric_name="level",
            readings=[
                telemetry_pb2.Reading(
                    timestamp=timestamp_pb2.Timestamp(seconds=t // SECOND), value=v
                )
                for t, v in zip(ts[:10], vs[:10], strict=True)
            ],
        ),
        metadata=owner,
    )
    for _ in range(100):
        if 90_000_000.0 in periods:
            break
        await asyncio.sleep(0.1)
    assert periods[2:] == [90_000_000.0]
    # A generic device's stream has no physical bounds.
    detector = await env.analytics.GetDetector(
        analytics_pb2.GetDetectorRequest(stream_id=created.stream_id), metadata=owner
    )
    assert detector.device_type == "generic"
    assert (detector.min_value, detector.max_value) == (-math.inf, math.inf)


def fake_detector(
    monkeypatch: pytest.MonkeyPatch,
    findings: Callable[[Int64s], list[Finding]],
    scores: Callable[[Int64s, Float64s], Float64s] | None = None,
) -> None:
    """Analysis runs a detector that answers ``findings`` and ``scores`` of each batch."""

    def process(
        self: StreamDetector, timestamps: Int64s, values: Float64s, *, sampling_period_us: float
    ) -> BatchResult:
        scored = scores(timestamps, values) if scores else np.zeros(timestamps.size)
        return BatchResult(findings(timestamps), timestamps, scored)

    monkeypatch.setattr(StreamDetector, "process", process)


async def test_an_anomaly_says_when_it_could_be_known(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, owner_id = await user(env)
    stream = str(uuid.uuid4())
    ts, vs = signal(100)
    # A run stuck from reading 10, known to be one at reading 40; a spike known at once.
    fake_detector(
        monkeypatch,
        lambda t: [
            Finding("flatline", int(t[10]), 21.0, 0.9, 21.0, found_us=int(t[40])),
            Finding("spike", int(t[60]), 30.0, 0.8, 21.0),
        ],
    )
    watch = env.analytics.WatchAnomalies(
        analytics_pb2.WatchAnomaliesRequest(stream_id=stream), metadata=owner
    )
    first = asyncio.create_task(watch.read())
    await asyncio.sleep(0.2)
    await analyze(env, [analytics_pb2.AnalysisRequest(chunks=[chunk(1, stream, owner_id, ts, vs)])])
    watched = await asyncio.wait_for(first, 5)
    watch.cancel()
    assert (watched.detected_at.ToMicroseconds(), watched.known_at.ToMicroseconds()) == (
        ts[10],
        ts[40],
    )

    listed = await env.analytics.ListAnomalies(
        analytics_pb2.ListAnomaliesRequest(stream_id=stream), metadata=owner
    )
    known = {
        a.anomaly_type: (a.detected_at.ToMicroseconds(), a.known_at.ToMicroseconds())
        for a in listed.anomalies
    }
    assert known == {"flatline": (ts[10], ts[40]), "spike": (ts[60], ts[60])}
    flatline = next(a for a in listed.anomalies if a.anomaly_type == "flatline")
    got = await env.analytics.GetAnomaly(
        analytics_pb2.GetAnomalyRequest(anomaly_id=flatline.anomaly_id), metadata=owner
    )
    assert got.known_at.ToMicroseconds() == ts[40]
    assert got.found_at.ToMicroseconds() > got.known_at.ToMicroseconds()

    def iso(micros: int) -> str:
        return timestamp_pb2.Timestamp(seconds=micros // SECOND).ToJsonString()

    for fmt in ("csv", "json"):
        body = b"".join(
            [
                p.data
                async for p in env.analytics.ExportAnomalies(
                    analytics_pb2.ExportRequest(format=fmt, stream_id=stream), metadata=owner
                )
            ]
        ).decode()
        records = list(csv.DictReader(io.StringIO(body))) if fmt == "csv" else json.loads(body)
        exported = {r["anomaly_type"]: (r["detected_at"], r["known_at"]) for r in records}
        assert exported == {
            "flatline": (iso(ts[10]), iso(ts[40])),
            "spike": (iso(ts[60]), iso(ts[60])),
        }, fmt


async def test_anomalies_stored_before_known_at_show_their_detected_at(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, owner_id = await user(env)
    stream = str(uuid.uuid4())
    ts, vs = signal(600, spike_at=500)
    await analyze(env, [analytics_pb2.AnalysisRequest(chunks=[chunk(1, stream, owner_id, ts, vs)])])
    await env.suite.stop("analytics")
    # A row from before the column: NULL there, as the column came empty.
    await env.backend.sql("analytics", "UPDATE anomalies SET known_us = NULL")
    from services.analytics.wiring import build

    restarted = await build(
        env.suite.settings,
        address=env.suite.address("analytics"),
        schema=env.backend.schema("analytics"),
    )
    await restarted.built.start()
    env.suite.processes["analytics"] = restarted
    (spike,) = await anomalies_of(env, owner)
    assert spike.known_at == spike.detected_at and spike.detected_at.ToMicroseconds() == ts[500]
    # New anomalies are stored with theirs.
    fake_detector(
        monkeypatch,
        lambda t: [Finding("gap", int(t[0]), 21.0, 0.9, 0.0, found_us=int(t[1]))],
    )
    later, later_vs = signal(10, start=ts[-1] + SECOND)
    await analyze(
        env,
        [analytics_pb2.AnalysisRequest(chunks=[chunk(2, stream, owner_id, later, later_vs)])],
    )
    gap = next(a for a in await anomalies_of(env, owner) if a.anomaly_type == "gap")
    assert (gap.detected_at.ToMicroseconds(), gap.known_at.ToMicroseconds()) == (later[0], later[1])


def score_of_value(timestamps: Int64s, values: Float64s) -> Float64s:
    """A detector's score that tells readings apart: |value - 21| / 10, at most 1."""
    return np.minimum(np.abs(values - 21.0) / 10.0, 1.0)


def fake_scoring(monkeypatch: pytest.MonkeyPatch) -> None:
    """Analysis scores each reading ``score_of_value`` and finds nothing."""

    def process(
        self: StreamDetector, timestamps: Int64s, values: Float64s, *, sampling_period_us: float
    ) -> BatchResult:
        return BatchResult([], timestamps, score_of_value(timestamps, values))

    monkeypatch.setattr(StreamDetector, "process", process)


async def test_scores_are_stored_and_shown_to_the_streams_owner(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_scoring(monkeypatch)
    owner, owner_id = await user(env)
    stream = str(uuid.uuid4())
    ts, vs = signal(600, spike_at=300)
    await analyze(
        env,
        [
            analytics_pb2.AnalysisRequest(chunks=[chunk(1, stream, owner_id, ts[:400], vs[:400])]),
            analytics_pb2.AnalysisRequest(chunks=[chunk(2, stream, owner_id, ts[400:], vs[400:])]),
        ],
    )
    expected = score_of_value(np.array(ts), np.array(vs))
    assert expected.max() > 0.8  # the spike

    got = await env.analytics.GetScores(
        analytics_pb2.GetScoresRequest(stream_id=stream, limit=600), metadata=owner
    )
    assert list(got.timestamps_us) == ts and not got.HasField("next_start")
    assert np.abs(np.array(got.scores) - expected).max() <= 0.5 / 65535

    page = await env.analytics.GetScores(
        analytics_pb2.GetScoresRequest(
            stream_id=stream,
            start=timestamp_pb2.Timestamp(seconds=ts[100] // SECOND),
            end=timestamp_pb2.Timestamp(seconds=ts[500] // SECOND),
            limit=150,
        ),
        metadata=owner,
    )
    assert list(page.timestamps_us) == ts[100:250]
    assert page.next_start.ToMicroseconds() == ts[250]

    stranger, _ = await user(env)
    for who, asked in ((stranger, stream), (owner, str(uuid.uuid4()))):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await env.analytics.GetScores(
                analytics_pb2.GetScoresRequest(stream_id=asked), metadata=who
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert reason_of(caught.value) == "STREAM_NOT_FOUND"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.analytics.GetScores(
            analytics_pb2.GetScoresRequest(stream_id=stream, limit=2_000_000), metadata=owner
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in violations_of(caught.value)] == ["limit"]

    # Telemetry tells analytics of a decommissioned device: its scores go.
    forgotten = await env.analytics.ForgetDevice(
        analytics_pb2.ForgetDeviceRequest(device_id=stream), metadata=await as_telemetry(env)
    )
    assert forgotten.anomalies_removed == 0
    assert await env.backend.sql("analytics", "SELECT count(*) FROM scores") == [(0,)]


async def test_charts_carry_each_points_peak_score(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_scoring(monkeypatch)
    owner, _ = await user(env)
    device_id = await device_with_spike(env, owner, spike_at=300)
    listed = await env.telemetry.ListStreams(
        telemetry_pb2.ListStreamsRequest(device_id=device_id), metadata=owner
    )
    stream_id = listed.streams[0].stream_id
    ts, vs = signal(600, spike_at=300)
    expected = score_of_value(np.array(ts), np.array(vs))
    for _ in range(100):  # telemetry forwards stored readings to analytics in the background
        with contextlib.suppress(grpc.aio.AioRpcError):
            got = await env.analytics.GetScores(
                analytics_pb2.GetScoresRequest(stream_id=stream_id), metadata=owner
            )
            if len(got.timestamps_us) == 600:
                break
        await asyncio.sleep(0.1)

    async def chart(**asked: object) -> telemetry_pb2.SensorDataResponse:
        return await env.telemetry.GetStreamData(
            telemetry_pb2.GetStreamDataRequest(
                stream_id=stream_id,
                start=timestamp_pb2.Timestamp(seconds=ts[0] // SECOND),
                **asked,
            ),
            metadata=owner,
        )

    raw = await chart(include_scores=True)
    assert raw.scores_available and raw.downsampling == "raw" and len(raw.data) == 600
    shown = np.array([p.anomaly_score for p in raw.data])
    assert all(p.HasField("anomaly_score") for p in raw.data)
    assert np.abs(shown - expected).max() <= 0.5 / 65535

    # Zoomed out, a point carries the highest score of its bucket: the spike's stays.
    zoomed = await chart(include_scores=True, max_points=20)
    assert zoomed.downsampled and zoomed.scores_available
    peaks = [p.anomaly_score for p in zoomed.data]
    assert max(peaks) == pytest.approx(expected.max(), abs=1e-4)
    spike_at = ts[300]
    bucket = [p for p in zoomed.data if p.value == vs[300]]
    assert bucket and bucket[0].timestamp.ToMicroseconds() == spike_at

    plain = await chart()
    assert not plain.scores_available
    assert not any(p.HasField("anomaly_score") for p in plain.data)

    # Analytics away: the chart is answered all the same, without scores, and says so.
    await env.suite.stop("analytics")
    away = await chart(include_scores=True)
    assert not away.scores_available and len(away.data) == 600
    assert not any(p.HasField("anomaly_score") for p in away.data)
