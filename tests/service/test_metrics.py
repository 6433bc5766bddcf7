"""Every process's ``/metrics`` under a small load: the series exist and move.

The five services and the gateway run with their real wiring and metrics on
free ports; a user registers, streams readings from a device, queries them
and opens a chat; then each process is scraped and its counters must have
grown from a scrape taken before, its histograms counted calls, and its
gauges exist. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import httpx

from gateway.app import build_app
from gateway.serve import start_gateway, stop_gateway
from iot.telemetry.v1 import telemetry_pb2, telemetry_pb2_grpc
from iotkit.config import GATEWAY, PROCESSES, SERVICES
from tests.conftest import Backend, start_suite
from tests.e2e.processes import batch
from tests.scrape import Samples, exposition, families, label_values, names, scrape, total
from tests.support import bearer, rest_user
from tests.test_observability_files import dashboard_series

READINGS = 3000
STEP_US = 100_000
ANALYSED_WITHIN = 60.0  # seconds for analytics to report the chunks telemetry forwarded


async def _stream_readings(address: str, device_id: str, token: str) -> int:
    """Stream :data:`READINGS` readings in three batches from a device; answers how many
    telemetry accepted."""
    size = READINGS // 3
    start_us = int(time.time() * 1_000_000) - READINGS * STEP_US

    async def batches() -> AsyncIterator[telemetry_pb2.ReadingBatch]:
        for n in range(3):
            yield batch(n, device_id, start_us, size=size, step_us=STEP_US)

    async with grpc.aio.insecure_channel(address) as channel:
        stub = telemetry_pb2_grpc.TelemetryServiceStub(channel)
        acks = [a async for a in stub.StreamReadings(batches(), metadata=bearer(token))]
    return sum(a.accepted for a in acks)


async def _load(http: httpx.AsyncClient, telemetry: str) -> None:
    """Register, add a device, stream readings from it, query them and its anomalies, open
    a chat."""
    ann = await rest_user(http)
    created = await http.post(
        "/v1/devices", headers=ann, json={"name": "Boiler", "type": "temperature"}
    )
    assert created.status_code == 201, created.text
    device_id = created.json()["data"]["device_id"]
    issued = await http.post(f"/v1/devices/{device_id}/credentials", headers=ann, json={})
    assert await _stream_readings(telemetry, device_id, issued.json()["data"]["token"]) == READINGS
    streams = await http.get(f"/v1/devices/{device_id}/streams", headers=ann)
    stream_id = streams.json()["data"]["streams"][0]["stream_id"]
    data = await http.get(f"/v1/streams/{stream_id}/data", headers=ann, params={"max_points": 50})
    assert data.status_code == 200, data.text
    anomalies = await http.get("/v1/anomalies", headers=ann, params={"device_id": device_id})
    assert anomalies.status_code == 200, anomalies.text
    chat = await http.post("/v1/chat/sessions", headers=ann, json={})
    assert chat.status_code in (200, 201), chat.text


async def _until_analysed(port: int, before: float) -> Samples:
    """Analytics' samples once it counts more analysed chunks than ``before``."""
    deadline = time.monotonic() + ANALYSED_WITHIN
    while True:
        samples = await scrape(port)
        if total(samples, "iot_analytics_chunks_analyzed_total") > before:
            return samples
        assert time.monotonic() < deadline, "analytics reported no analysed chunk"
        await asyncio.sleep(0.2)


async def test_every_process_exports_series_that_move_under_load(backend: Backend) -> None:
    suite = await start_suite(
        backend, metrics_addresses={name: "127.0.0.1:0" for name in PROCESSES}
    )
    app = build_app(suite.settings)
    server, port, task = await start_gateway(suite.settings, "127.0.0.1", 0, app=app)
    try:
        ports = {name: suite.processes[name].metrics.port for name in SERVICES}  # type: ignore[union-attr]
        ports[GATEWAY] = app.state.metrics.port
        assert all(ports.values()), ports
        before = {name: await scrape(p) for name, p in ports.items()}

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=15) as http:
            await _load(http, suite.address("telemetry"))
        # Analysis comes after forwarding, which runs on its own: once analytics counts a
        # chunk, telemetry has counted it forwarded; the others are scraped after that.
        analytics = await _until_analysed(
            ports["analytics"], total(before["analytics"], "iot_analytics_chunks_analyzed_total")
        )
        after = {name: await scrape(p) for name, p in ports.items() if name != "analytics"}
        after["analytics"] = analytics

        def grew(process: str, name: str, **labels: str) -> bool:
            return total(after[process], name, **labels) > total(before[process], name, **labels)

        for service in SERVICES:
            assert grew(service, "iot_rpc_requests_total", code="OK"), service
            assert grew(service, "iot_rpc_duration_seconds_count"), service
            assert "iot_db_pool_checked_out" in names(after[service]), service
        assert grew("auth", "iot_rpc_requests_total", method="/iot.auth.v1.AuthService/Login")
        assert grew(
            "devices",
            "iot_rpc_requests_total",
            method="/iot.devices.v1.DeviceService/RegisterDevice",
        )
        assert "iot_auth_outbox_pending" in names(after["auth"])
        assert "iot_chat_escalations_waiting" in names(after["chat"])

        telemetry = after["telemetry"]
        assert (
            total(telemetry, "iot_telemetry_readings_stored_total")
            - total(before["telemetry"], "iot_telemetry_readings_stored_total")
            == READINGS
        )
        assert grew("telemetry", "iot_telemetry_chunks_forwarded_total")
        assert {"iot_telemetry_forward_lag_chunks", "iot_telemetry_writer_queue_depth"} <= names(
            telemetry
        )
        assert "iot_analytics_lag_seconds" in names(after["analytics"])

        routes = label_values(after[GATEWAY], "iot_http_requests_total", "route")
        assert {"/v1/devices", "/v1/streams/{stream_id}/data"} <= routes
        assert grew(GATEWAY, "iot_http_request_duration_seconds_count", route="/v1/devices")

        # Every series the Grafana dashboard queries is one some process exports.
        exported = set().union(*[families(await exposition(p)) for p in ports.values()])
        assert dashboard_series() - exported == set()
    finally:
        await stop_gateway(server, task)
        await suite.aclose()
