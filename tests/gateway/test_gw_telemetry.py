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
from services.devices.devices import service as devices_service
from services.telemetry.telemetry import ingest
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
    assert created.json()["data"]["sampling_period"] == "0.200s"
    # A period as the proto3 JSON duration string; the rate follows from it.
    slow = await client.post(
        f"/v1/devices/{device_id}/streams",
        headers=ann,
        json={"metric_name": "level", "sampling_period": "300s"},
    )
    assert slow.status_code == 201, slow.text
    assert (slow.json()["data"]["sampling_period"], slow.json()["data"]["sampling_rate"]) == (
        "300s",
        0,
    )
    faster = await client.patch(
        f"/v1/streams/{slow.json()['data']['stream_id']}",
        headers=ann,
        json={"sampling_period": "0.5s"},
    )
    assert faster.json()["data"]["sampling_rate"] == 2
    disagree = await client.patch(
        f"/v1/streams/{stream_id}", headers=ann, json={"sampling_rate": 5, "sampling_period": "1s"}
    )
    assert disagree.status_code == 400
    assert [e["field"] for e in disagree.json()["data"]["errors"]] == ["sampling_period"]
    # Half a microsecond is too short a period, not "irregular" (it used to become 0s).
    tiny = await client.patch(
        f"/v1/streams/{stream_id}", headers=ann, json={"sampling_period": "0.0000005s"}
    )
    assert tiny.status_code == 400
    assert [e["field"] for e in tiny.json()["data"]["errors"]] == ["sampling_period"]
    nan = await client.post(
        f"/v1/devices/{device_id}/readings",
        headers=ann,
        json={"metric_name": "pressure", "readings": [{"timestamp": iso(now), "value": "NaN"}]},
    )
    # Nothing stored is a failure, with the reason per field (not a 200 "Readings stored").
    assert nan.status_code == 400 and nan.json()["success"] is False
    assert nan.json()["data"]["errors"] == [
        {
            "field": "readings.value",
            "message": "1 of 1 readings: values must be finite numbers (NON_FINITE_VALUE)",
        }
    ]


def readings_json(values: list[object], start: datetime | None = None) -> list[dict[str, object]]:
    """Bulk-upload readings one second apart, from ten minutes ago unless ``start`` is given."""
    first = start or datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    return [
        {"timestamp": iso(first + timedelta(seconds=i)), "value": value}
        for i, value in enumerate(values)
    ]


async def test_rejected_writes_are_errors_and_partial_ones_say_so(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Devices' answers are cached for up to ACCESS_TTL_SECONDS; 0 makes a revocation immediate.
    monkeypatch.setattr(devices_service, "ACCESS_TTL_SECONDS", 0)
    ann, bob = await rest_user(client), await rest_user(client)
    device_id = await new_device(client, ann)
    url = f"/v1/devices/{device_id}/readings"

    # One start for every post: a resent upload must carry the very same timestamps,
    # however long the machine takes between two posts.
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)

    async def post(who: dict[str, str], values: list[object], **fields: object) -> httpx.Response:
        body = {"metric_name": "pressure", "readings": readings_json(values, start), **fields}
        return await client.post(url, headers=who, json=body)

    nan = await post(ann, ["NaN", "Infinity"])
    assert nan.status_code == 400, nan.text
    assert nan.json()["data"]["errors"] == [
        {
            "field": "readings.value",
            "message": "2 of 2 readings: values must be finite numbers (NON_FINITE_VALUE)",
        }
    ]
    limit = ingest.MAX_BATCH_READINGS
    monkeypatch.setattr(ingest, "MAX_BATCH_READINGS", 5)  # the real 100 000 is a 5 MB body
    large = await post(ann, [1.0] * 6)
    assert large.status_code == 400
    assert large.json()["data"]["errors"] == [
        {"field": "readings", "message": "an upload holds at most 5 readings; split it"}
    ]
    monkeypatch.setattr(ingest, "MAX_BATCH_READINGS", limit)
    foreign = await post(bob, [1.0])
    assert foreign.status_code == 404, foreign.text
    assert foreign.json()["error"]["error_code"] == "DEVICE_NOT_FOUND"
    listed = await client.get(f"/v1/devices/{device_id}/streams", headers=ann)
    assert listed.json()["data"]["streams"] == []  # no refused write made a stream

    values: list[object] = [float(i) for i in range(10)]
    values[2] = values[5] = "NaN"
    partial = await post(ann, values)
    assert partial.status_code == 200, partial.text
    body = partial.json()
    assert body["message"] == "Stored 8 of 10 readings; 2 rejected: 2 NON_FINITE_VALUE"
    assert (body["data"]["accepted"], body["data"]["rejected"], body["data"]["duplicates"]) == (
        8,
        2,
        0,
    )
    (stream,) = (await client.get(f"/v1/devices/{device_id}/streams", headers=ann)).json()["data"][
        "streams"
    ]
    assert body["data"]["stream_ids"] == [stream["stream_id"]]
    assert body["data"]["rejections"][0]["stream_id"] == stream["stream_id"] != device_id
    again = await post(ann, values)
    assert again.status_code == 200
    assert (again.json()["data"]["accepted"], again.json()["data"]["duplicates"]) == (0, 8)
    assert again.json()["message"] == (
        "Stored 0 of 10 readings; 8 already stored; 2 rejected: 2 NON_FINITE_VALUE"
    )

    issued = await client.post(f"/v1/devices/{device_id}/credentials", headers=ann, json={})
    device_token = {"authorization": f"Bearer {issued.json()['data']['token']}"}
    fresh = readings_json([1.0], start=datetime.now(UTC).replace(microsecond=0))
    stored = await client.post(
        url, headers=device_token, json={"metric_name": "pressure", "readings": fresh}
    )
    assert stored.status_code == 200 and stored.json()["message"] == "Stored 1 of 1 reading"
    await client.delete(f"/v1/devices/{device_id}/credentials", headers=ann)
    revoked = await client.post(
        url, headers=device_token, json={"metric_name": "pressure", "readings": fresh}
    )
    assert revoked.status_code == 403, revoked.text
    assert revoked.json()["error"]["error_code"] == "CREDENTIAL_REVOKED"
    await client.delete(f"/v1/devices/{device_id}", headers=ann)
    gone = await post(ann, [1.0])
    assert gone.status_code == 404 and gone.json()["error"]["error_code"] == "DEVICE_NOT_FOUND"


async def test_a_new_stream_has_no_latest_value_and_charts_use_the_point_budget(
    client: httpx.AsyncClient,
) -> None:
    ann = await rest_user(client)
    device_id = await new_device(client, ann)
    created = await client.post(
        f"/v1/devices/{device_id}/streams", headers=ann, json={"metric_name": "pressure"}
    )
    assert created.status_code == 201
    stream = created.json()["data"]
    assert "latest_value" not in stream  # absent, as documented; never 0.0 or null
    listed = await client.get(f"/v1/devices/{device_id}/streams", headers=ann)
    assert "latest_value" not in listed.json()["data"]["streams"][0]

    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    values = [float(i % 37) for i in range(600)]
    stored = await client.post(
        f"/v1/devices/{device_id}/readings",
        headers=ann,
        json={"metric_name": "pressure", "readings": readings_json(values, start=start)},
    )
    assert stored.json()["data"]["accepted"] == 600
    shown = await client.get(f"/v1/streams/{stream['stream_id']}", headers=ann)
    assert shown.json()["data"]["latest_value"] == values[-1]
    data = await client.get(
        f"/v1/streams/{stream['stream_id']}/data", headers=ann, params={"max_points": 500}
    )
    points = data.json()["data"]["data"]
    assert len(points) == 500 and data.json()["data"]["downsampling"] == "min_max"
    assert points[0]["timestamp"] == iso(start)
    assert points[-1]["timestamp"] == iso(start + timedelta(seconds=599))


async def test_a_new_metric_over_the_stream_limit_is_a_4xx_and_streams_are_paged(
    client: httpx.AsyncClient,
) -> None:
    ann = await rest_user(client)
    device_id = await new_device(client, ann)
    reading = [{"timestamp": iso(datetime.now(UTC) - timedelta(minutes=1)), "value": 1.0}]
    for n in range(100):  # IOT_MAX_STREAMS_PER_DEVICE's default
        created = await client.post(
            f"/v1/devices/{device_id}/readings",
            headers=ann,
            json={"metric_name": f"m{n:03}", "readings": reading},
        )
        assert created.status_code == 200, created.text
    refused = await client.post(
        f"/v1/devices/{device_id}/readings",
        headers=ann,
        json={"metric_name": "one_too_many", "readings": reading},
    )
    assert refused.status_code == 400, refused.text
    body = refused.json()
    assert body["success"] is False
    assert body["error"]["error_code"] == "TOO_MANY_STREAMS"
    assert "at most 100 streams" in body["message"]
    page = await client.get(
        f"/v1/devices/{device_id}/streams", headers=ann, params={"page": 2, "limit": 40}
    )
    assert page.status_code == 200, page.text
    data = page.json()["data"]
    assert [s["metric_name"] for s in data["streams"]] == [f"m{n:03}" for n in range(40, 80)]
    assert data["pagination"] == {"page": 2, "limit": 40, "total": 100, "total_pages": 3}
