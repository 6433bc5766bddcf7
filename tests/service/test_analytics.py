"""Analytics over real gRPC: analysis fed as telemetry feeds it, review, live watch,
correlations and exports, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import numpy as np
import pytest
from google.protobuf import timestamp_pb2

from iot.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from iot.auth.v1 import auth_pb2, auth_pb2_grpc
from iot.devices.v1 import devices_pb2, devices_pb2_grpc
from iot.telemetry.v1 import telemetry_pb2, telemetry_pb2_grpc
from iotkit.config import PLACEHOLDER_SECRET
from iotkit.errors import violations_of
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
async def env(backend: Backend) -> AsyncIterator[Env]:
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
    for process in suite.processes.values():
        await process.aclose(grace=0)


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
    rng = np.random.default_rng(5)
    values = np.round(21 + 0.5 * np.sin(np.arange(count) / 300) + rng.normal(0, 0.03, count), 2)
    if spike_at is not None:
        values[spike_at] += 9.0
    return [start + i * SECOND for i in range(count)], [float(v) for v in values]


def chunk(
    position: int, stream: str, owner: str, ts: list[int], vs: list[float]
) -> analytics_pb2.StreamChunk:
    return analytics_pb2.StreamChunk(
        position=position,
        stream_id=stream,
        device_id=stream,
        owner_id=owner,
        device_type="temperature",
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
    assert (
        after.threshold > before.threshold and after.dismissed == 1
    )  # less sensitive now, visibly

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


async def test_watch_delivers_new_anomalies_live(env: Env) -> None:
    owner, owner_id = await user(env)
    stream = str(uuid.uuid4())
    watch = env.analytics.WatchAnomalies(
        analytics_pb2.WatchAnomaliesRequest(stream_id=stream), metadata=owner
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


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"algorithm": "kendall"}, "algorithm"),
        ({"same": True}, "stream_b"),
        ({"stream_a": "x"}, "stream_a"),
        ({"days": 40}, "window_end"),
        ({"max_lag_seconds": -1}, "max_lag_seconds"),
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
