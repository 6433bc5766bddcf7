"""Telemetry's REST routes through the gateway, over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import httpx
import pytest

from gateway.serve import start_gateway, stop_gateway
from iot.telemetry.v1 import telemetry_pb2, telemetry_pb2_grpc
from tests.conftest import Suite
from tests.support import bearer, rest_user


@pytest.fixture
async def client(suite: Suite) -> AsyncIterator[httpx.AsyncClient]:
    server, port, task = await start_gateway(suite.settings, "127.0.0.1", 0)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        yield http
    await stop_gateway(server, task)


async def new_device(client: httpx.AsyncClient, who: dict[str, str]) -> str:
    answer = await client.post(
        "/v1/devices", headers=who, json={"name": "Boiler", "type": "temperature"}
    )
    return str(answer.json()["data"]["device_id"])


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def test_device_credential_streams_and_the_browser_charts(
    suite: Suite, client: httpx.AsyncClient
) -> None:
    ann = await rest_user(client)
    device_id = await new_device(client, ann)
    issued = await client.post(f"/v1/devices/{device_id}/credentials", headers=ann, json={})
    token = issued.json()["data"]["token"]
    start_us = int(time.time() * 1_000_000) - 600_000_000
    timestamps = [start_us + i * 100_000 for i in range(5000)]
    values = [round(20 + (i % 100) / 100, 2) for i in range(5000)]

    async def batches() -> AsyncIterator[telemetry_pb2.ReadingBatch]:
        for n in range(5):
            part = slice(n * 1000, (n + 1) * 1000)
            yield telemetry_pb2.ReadingBatch(
                sequence=n,
                streams=[
                    telemetry_pb2.StreamReadings(
                        device_id=device_id,
                        metric_name="temperature",
                        timestamps=timestamps[part],
                        values=values[part],
                    )
                ],
            )

    async with grpc.aio.insecure_channel(suite.address("telemetry")) as channel:
        stub = telemetry_pb2_grpc.TelemetryServiceStub(channel)
        acks = [a async for a in stub.StreamReadings(batches(), metadata=bearer(token))]
    assert sum(a.accepted for a in acks) == 5000
    stream_id = acks[0].stream_ids[0]

    listed = await client.get(f"/v1/devices/{device_id}/streams", headers=ann)
    assert listed.status_code == 200
    assert [s["stream_id"] for s in listed.json()["data"]["streams"]] == [stream_id]
    data = await client.get(
        f"/v1/streams/{stream_id}/data", headers=ann, params={"max_points": 100}
    )
    assert data.status_code == 200, data.text
    body = data.json()["data"]
    assert set(body) >= {"stream", "data", "time_range", "stats"}
    assert body["stats"]["count"] == 5000 and body["downsampled"] is True
    assert len(body["data"]) <= 100
    assert set(body["data"][0]) >= {"timestamp", "value"}
    assert body["stream"]["metric_name"] == "temperature"

    window_start = datetime.fromtimestamp(timestamps[1000] / 1e6, UTC)
    window = await client.get(
        f"/v1/streams/{stream_id}/data",
        headers=ann,
        params={
            "start": iso(window_start),
            "end": iso(window_start + timedelta(seconds=10)),
            "normalization": "min_max",
        },
    )
    points = window.json()["data"]["data"]
    assert len(points) == 100 and all("normalized_value" in p for p in points)

    bob = await rest_user(client)
    assert (await client.get(f"/v1/streams/{stream_id}/data", headers=bob)).status_code == 404
    bad = await client.get(
        f"/v1/streams/{stream_id}/data", headers=ann, params={"normalization": "log"}
    )
    assert bad.status_code == 400 and bad.json()["data"]["errors"][0]["field"] == "normalization"
    wrong = await client.get(
        f"/v1/streams/{stream_id}/data", headers=ann, params={"start": "yesterday"}
    )
    assert wrong.status_code == 400 and wrong.json()["data"]["errors"][0]["field"] == "start"


async def test_bulk_readings_and_stream_settings(client: httpx.AsyncClient) -> None:
    ann = await rest_user(client)
    device_id = await new_device(client, ann)
    now = datetime.now(UTC).replace(microsecond=0)
    readings = [
        {"timestamp": iso(now - timedelta(seconds=60 - i)), "value": 1000 + i} for i in range(60)
    ]
    stored = await client.post(
        f"/v1/devices/{device_id}/readings",
        headers=ann,
        json={"metric_name": "pressure", "readings": readings},
    )
    assert stored.status_code == 200, stored.text
    assert stored.json()["data"]["accepted"] == 60
    stream_id = stored.json()["data"]["stream_ids"][0]
    changed = await client.patch(
        f"/v1/streams/{stream_id}", headers=ann, json={"retention_days": 30, "sampling_rate": 1}
    )
    assert (changed.json()["data"]["retention_days"], changed.json()["data"]["sampling_rate"]) == (
        30,
        1,
    )
    shown = await client.get(f"/v1/streams/{stream_id}", headers=ann)
    assert shown.json()["data"]["readings_count"] == "60"  # uint64 is a string in proto JSON
    created = await client.post(
        f"/v1/devices/{device_id}/streams",
        headers=ann,
        json={"metric_name": "humidity", "sampling_rate": 5},
    )
    assert created.status_code == 201
    nan = await client.post(
        f"/v1/devices/{device_id}/readings",
        headers=ann,
        json={"metric_name": "pressure", "readings": [{"timestamp": iso(now), "value": "NaN"}]},
    )
    assert nan.status_code == 200
    assert nan.json()["data"]["rejections"][0]["reason"] == "NON_FINITE_VALUE"
