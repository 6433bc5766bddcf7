"""How soon an alert reaches its webhook: from an anomaly stored to the signed call received.

Auth and analytics run as their own processes (as ``iot up`` runs them, on
SQLite, with ``IOT_ALERTS_ALLOW_PRIVATE_WEBHOOKS=1`` so the receiver may
listen on 127.0.0.1). One user has one anomaly rule with a webhook to a
receiver in this process and no grouping period. This process then plays
telemetry: it forwards, at a steady pace, chunks of new streams that each
hold one spike, so each becomes one stored anomaly. The latency of each
anomaly named in a received call is the receiver's clock at the call minus
the anomaly's ``found_at`` (when analytics stored it); both clocks are this
machine's. A call whose message groups several anomalies (``event_count`` > 1,
when evaluation fell behind) is timed for the anomaly it names.

:func:`measure_under_load` (job ``alerts-load``) times the same while an
ingest load runs: devices and telemetry run too, and the device simulator
(``iot simulate``) streams into telemetry, which forwards every reading to
the same analytics, from a few seconds before the first spike to after the
last. Two loads, one after the other on a fresh suite each: the whole-suite
soak's configured fleet (§11: 200 devices at 10 Hz, a batch a second each)
and the telemetry memory soak's (§6: 100 devices at 1 kHz, a batch every
100 ms each), fifty times heavier.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import multiprocessing
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any

import grpc
import numpy as np

from bench import soak, suite_soak
from bench.report import Figure, JobResult
from bench.services import running
from iot.analytics.v1 import alerts_pb2, alerts_pb2_grpc, analytics_pb2, analytics_pb2_grpc
from iot.auth.v1 import auth_pb2, auth_pb2_grpc
from iotkit.config import PLACEHOLDER_SECRET
from tools.simulate import Options

LATENCY_TITLE = "19. Alerts: from an anomaly stored to its webhook received"
PASSWORD = "Str0ng!pass"
SECOND = 1_000_000
TARGET_P99_S = 2.0
LOAD_LEAD_S = 5.0
"""Seconds the ingest load runs before the first spike, and after the last."""


@dataclass
class _Calls:
    """Webhook calls received: (receive time, body), signatures checked; when each delivery
    was queued (its message taken from the rule), by delivery id."""

    secret: str = ""
    received: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    deliveries: dict[str, str] = field(default_factory=dict)  # message id -> delivery id
    queued: dict[str, float] = field(default_factory=dict)
    bad_signatures: int = 0


@contextlib.contextmanager
def _receiver(calls: _Calls) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            at = time.time()
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            signed = self.headers["X-Iot-Timestamp"].encode() + b"." + body
            expected = (
                "sha256=" + hmac.new(calls.secret.encode(), signed, hashlib.sha256).hexdigest()
            )
            if hmac.compare_digest(expected, self.headers["X-Iot-Signature"]):
                document = json.loads(body)
                calls.received.append((at, document))
                calls.deliveries[document["alert_id"]] = self.headers["X-Iot-Delivery"]
            else:
                calls.bad_signatures += 1
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def _spike_chunk(position: int, owner_id: str) -> analytics_pb2.StreamChunk:
    """A new stream's 300 readings at 1 Hz with one spike after the detector's warm-up."""
    rng = np.random.default_rng(position)
    values = np.round(21 + rng.uniform(-0.05, 0.05, 300), 2)
    values[250] += 9.0
    start = (int(time.time()) - 3600) * SECOND
    stream = str(uuid.uuid4())
    return analytics_pb2.StreamChunk(
        position=position,
        stream_id=stream,
        device_id=stream,
        owner_id=owner_id,
        device_type="temperature",
        metric_name="temperature",
        sampling_rate=1,
        timestamps=[start + i * SECOND for i in range(300)],
        values=[float(v) for v in values],
    )


@contextlib.contextmanager
def _private_webhooks() -> Iterator[None]:
    """Let the children's analytics call the receiver on 127.0.0.1."""
    os.environ["IOT_ALERTS_ALLOW_PRIVATE_WEBHOOKS"] = "1"
    try:
        yield
    finally:
        del os.environ["IOT_ALERTS_ALLOW_PRIVATE_WEBHOOKS"]


async def measure(count: int = 300, rate_hz: float = 20.0) -> JobResult:
    """Store ``count`` anomalies at ``rate_hz``; answers the latency figures."""
    job = JobResult(when="", options="")
    calls = _Calls()
    with _private_webhooks():
        async with running("sqlite", ("auth", "analytics")) as suite:
            with _receiver(calls) as url:
                async with (
                    grpc.aio.insecure_channel(suite.address("auth")) as auth_channel,
                    grpc.aio.insecure_channel(suite.address("analytics")) as channel,
                ):
                    found = await _run(auth_channel, channel, calls, url, count, rate_hz)
    job.sections[LATENCY_TITLE] = _figures(found, calls, rate_hz, load="", label="")
    return job


@dataclass(frozen=True, slots=True)
class Load:
    """A simulated fleet streaming into telemetry while the alerts are timed."""

    name: str
    devices: int
    rate_hz: float
    batch_ms: int


_SUITE_SOAK = suite_soak.SoakOptions()
LOADS = (
    Load(
        "the whole-suite soak's fleet",
        _SUITE_SOAK.devices,
        _SUITE_SOAK.rate_hz,
        _SUITE_SOAK.batch_ms,
    ),
    Load("the memory soak's fleet", soak.DEVICES, soak.RATE_HZ, soak.BATCH_MS),
)


async def measure_under_load(count: int = 300, rate_hz: float = 20.0) -> JobResult:
    """The same figures under each of :data:`LOADS` (see the module's docstring)."""
    job = JobResult(when="", options="")
    figures: list[Figure] = []
    for load in LOADS:
        figures += await _under(load, count, rate_hz)
    job.sections[LATENCY_TITLE] = figures
    return job


async def _under(load: Load, count: int, rate_hz: float) -> list[Figure]:
    calls = _Calls()
    seconds = count / rate_hz + 2 * LOAD_LEAD_S
    options = Options(
        devices=load.devices, rate_hz=load.rate_hz, seconds=seconds, batch_ms=load.batch_ms
    )
    before = os.getloadavg()[0]
    with _private_webhooks():
        async with running("sqlite", ("auth", "devices", "telemetry", "analytics")) as suite:
            context = multiprocessing.get_context("spawn")
            with (
                ProcessPoolExecutor(max_workers=1, mp_context=context) as pool,
                _receiver(calls) as url,
            ):
                simulated = asyncio.get_running_loop().run_in_executor(
                    pool, soak.run_simulator, suite.settings, options
                )
                await asyncio.sleep(LOAD_LEAD_S)
                async with (
                    grpc.aio.insecure_channel(suite.address("auth")) as auth_channel,
                    grpc.aio.insecure_channel(suite.address("analytics")) as channel,
                ):
                    found = await _run(auth_channel, channel, calls, url, count, rate_hz)
                outcome: soak.SimulatorOutcome = await simulated
    note = (
        f"; meanwhile {load.name}, {options.devices} simulated devices at "
        f"{options.rate_hz:,.0f} Hz (a batch every {options.batch_ms} ms each), into "
        f"telemetry and forwarded to the same analytics: {outcome.accepted:,} readings "
        f"accepted over {outcome.seconds:.0f} s "
        f"({outcome.accepted / max(outcome.seconds, 1e-9):,.0f}/s), {outcome.dropped:,} "
        f"dropped by the devices; load average {before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after, 2 cores"
    )
    label = f" under {load.name} ({options.devices * options.rate_hz:,.0f} readings/s)"
    return _figures(found, calls, rate_hz, load=note, label=label)


def _figures(
    found: dict[str, float], calls: _Calls, rate_hz: float, *, load: str, label: str
) -> list[Figure]:
    """p50 and p99 of the latency of each anomaly named in a received call."""
    latencies = np.array(
        [at - found[body["last_event"]["anomaly_id"]] for at, body in calls.received]
    )
    p50, p99 = np.quantile(latencies, [0.5, 0.99])
    grouped = sum(body["event_count"] for _, body in calls.received)
    # Where the time went: evaluation (stored to its message queued as a delivery) and
    # delivery (queued to received), p50/p99 of each.
    queued = [
        (calls.queued[delivery], at, found[body["last_event"]["anomaly_id"]])
        for at, body in calls.received
        if (delivery := calls.deliveries.get(body["alert_id"], "")) in calls.queued
    ]
    evaluation = np.quantile([q - f for q, _, f in queued] or [0.0], [0.5, 0.99])
    sending = np.quantile([a - q for q, a, _ in queued] or [0.0], [0.5, 0.99])
    note = (
        f"{len(found)} anomalies at {rate_hz:g}/s, {len(calls.received)} calls "
        f"({grouped} anomalies counted in them), {calls.bad_signatures} bad signatures; "
        f"stored to queued p50 {evaluation[0]:.2f} s, p99 {evaluation[1]:.2f} s, queued to "
        f"received p50 {sending[0]:.2f} s, p99 {sending[1]:.2f} s{load}"
    )
    return [
        Figure(
            f"anomaly stored to webhook received{label}, p50",
            "s",
            float(p50),
            "target p99",
            TARGET_P99_S,
            note,
            lower_is_better=True,
        ),
        Figure(
            f"anomaly stored to webhook received{label}, p99",
            "s",
            float(p99),
            "target p99",
            TARGET_P99_S,
            "the same run",
            lower_is_better=True,
            target=f"< {TARGET_P99_S:g} s",
            met=bool(p99 < TARGET_P99_S),
        ),
    ]


async def _run(
    auth_channel: grpc.aio.Channel,
    channel: grpc.aio.Channel,
    calls: _Calls,
    url: str,
    count: int,
    rate_hz: float,
) -> dict[str, float]:
    """Make the rule, store the anomalies, wait for their calls; answers each anomaly's
    ``found_at`` (Unix seconds) by id."""
    auth = auth_pb2_grpc.AuthServiceStub(auth_channel)
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    await auth.Register(auth_pb2.RegisterRequest(email=email, password=PASSWORD))
    login = await auth.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD))
    owner = [("authorization", f"Bearer {login.access_token}")]
    alerts = alerts_pb2_grpc.AlertServiceStub(channel)
    created = await alerts.CreateAlertRule(
        alerts_pb2.CreateAlertRuleRequest(
            spec=alerts_pb2.AlertRuleSpec(name="bench", kind="anomaly", webhook_url=url)
        ),
        metadata=owner,
    )
    calls.secret = created.webhook_secret
    service = await auth.IssueServiceToken(
        auth_pb2.IssueServiceTokenRequest(service="telemetry", client_secret=PLACEHOLDER_SECRET)
    )
    analytics = analytics_pb2_grpc.AnalyticsServiceStub(channel)

    async def requests() -> AsyncIterator[analytics_pb2.AnalysisRequest]:
        started = time.monotonic()
        for n in range(count):
            await asyncio.sleep(max(0.0, started + n / rate_hz - time.monotonic()))
            yield analytics_pb2.AnalysisRequest(chunks=[_spike_chunk(n + 1, login.user.uuid)])

    stream = analytics.AnalyzeReadings(
        requests(), metadata=[("authorization", f"Bearer {service.token}")]
    )
    stored = sum([answer.anomalies async for answer in stream])
    deadline = time.monotonic() + 30
    while sum(b["event_count"] for _, b in calls.received) < stored:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    page = 1
    while True:
        listed_deliveries = await alerts.ListDeliveries(
            alerts_pb2.ListDeliveriesRequest(rule_id=created.rule.rule_id, page=page, limit=100),
            metadata=owner,
        )
        calls.queued |= {
            d.delivery_id: d.created_at.ToMicroseconds() / SECOND
            for d in listed_deliveries.deliveries
        }
        if page >= listed_deliveries.pagination.total_pages:
            break
        page += 1
    found: dict[str, float] = {}
    page = 1
    while True:
        listed = await analytics.ListAnomalies(
            analytics_pb2.ListAnomaliesRequest(page=page, limit=100), metadata=owner
        )
        found |= {a.anomaly_id: a.found_at.ToMicroseconds() / SECOND for a in listed.anomalies}
        if page >= listed.pagination.total_pages:
            return found
        page += 1
