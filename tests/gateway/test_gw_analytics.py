"""Anomalies end to end: readings streamed to telemetry reach analytics, and browsers
list, review and watch them live through the gateway (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
import httpx
import numpy as np
import pytest
from gw_support import first_sse_event

from gateway.serve import start_gateway, stop_gateway
from iot.telemetry.v1 import telemetry_pb2, telemetry_pb2_grpc
from services.analytics.analytics.detectors import BatchResult, Float64s, Int64s, StreamDetector
from tests.conftest import Suite
from tests.support import bearer, rest_user

SECOND = 1_000_000


@pytest.fixture
async def client(suite: Suite) -> AsyncIterator[httpx.AsyncClient]:
    server, port, task = await start_gateway(suite.settings, "127.0.0.1", 0)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as http:
        yield http
    await stop_gateway(server, task)


def readings(
    count: int, start_us: int, *, spike_at: int | None = None, stuck_from: int | None = None
) -> tuple[list[int], list[float]]:
    """A healthy temperature sensor at 1 Hz, 21 °C within ±0.05 at its 0.01 resolution, with
    a spike of +8 °C at ``spike_at`` or stuck from ``stuck_from`` (after the warm-up of 150).

    The warm-up sees every value the sensor takes, so the spike or the stuck run is the one
    anomaly: a drifting level would leave the warm-up's range and be scored as new."""
    rng = np.random.default_rng(11)
    values = np.round(21 + rng.uniform(-0.05, 0.05, count), 2)
    if spike_at is not None:
        values[spike_at] += 8.0
    if stuck_from is not None:
        values[stuck_from:] = values[stuck_from]
    return [start_us + i * SECOND for i in range(count)], [float(v) for v in values]


def within_the_last_hour() -> int:
    """A start (µs) a minute into the previous UTC hour: readings of up to 59 minutes from
    there stay inside that hour. The detector's daily profile learns each UTC hour anew,
    and a stream's first step into an hour it has not seen yet can raise a weak finding
    of its own (a test once failed at 11:10 UTC, its readings crossing 11:00)."""
    return ((int(time.time()) // 3600 - 1) * 3600 + 60) * SECOND


async def stream(
    suite: Suite, token: str, device_id: str, timestamps: list[int], values: list[float]
) -> str:
    async def batches() -> AsyncIterator[telemetry_pb2.ReadingBatch]:
        for n, at in enumerate(range(0, len(values), 200)):
            yield telemetry_pb2.ReadingBatch(
                sequence=n,
                streams=[
                    telemetry_pb2.StreamReadings(
                        device_id=device_id,
                        metric_name="temperature",
                        timestamps=timestamps[at : at + 200],
                        values=values[at : at + 200],
                    )
                ],
            )

    async with grpc.aio.insecure_channel(suite.address("telemetry")) as channel:
        stub = telemetry_pb2_grpc.TelemetryServiceStub(channel)
        acks = [a async for a in stub.StreamReadings(batches(), metadata=bearer(token))]
    assert sum(a.accepted for a in acks) == len(values)
    return acks[0].stream_ids[0]


async def device_with_token(client: httpx.AsyncClient, who: dict[str, str]) -> tuple[str, str]:
    device = (
        await client.post("/v1/devices", headers=who, json={"name": "Kiln", "type": "temperature"})
    ).json()["data"]
    issued = await client.post(
        f"/v1/devices/{device['device_id']}/credentials", headers=who, json={}
    )
    return device["device_id"], issued.json()["data"]["token"]


async def test_a_spike_arrives_live_and_is_reviewed(
    suite: Suite, client: httpx.AsyncClient
) -> None:
    owner = await rest_user(client)
    device_id, token = await device_with_token(client, owner)
    ready = asyncio.Event()
    watcher = asyncio.create_task(first_sse_event(client, "/v1/anomalies:watch", owner, ready))
    await asyncio.wait_for(ready.wait(), 10)
    start = within_the_last_hour()
    timestamps, values = readings(800, start, spike_at=700)
    sent = time.monotonic()
    stream_id = await stream(suite, token, device_id, timestamps, values)
    event = await asyncio.wait_for(watcher, 10)
    assert time.monotonic() - sent < 10
    assert (event["anomaly_type"], event["stream_id"], event["status"]) == (
        "spike",
        stream_id,
        "pending",
    )

    listed = (
        await client.get("/v1/anomalies", headers=owner, params={"stream_id": stream_id})
    ).json()["data"]
    assert [a["anomaly_type"] for a in listed["anomalies"]] == ["spike"]
    anomaly = listed["anomalies"][0]
    assert set(anomaly) >= {
        "anomaly_id",
        "stream_id",
        "detected_at",
        "anomaly_type",
        "raw_value",
        "confidence_score",
        "status",
        "known_at",
        "found_at",
    }
    # A spike is known with the reading after it (which shows the value went back, not a
    # level that moved), 1 s later at 1 Hz; the event watched says the same.
    assert anomaly["detected_at"] == datetime.fromtimestamp(timestamps[700] / 1e6, UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert (
        anomaly["known_at"]
        == event["known_at"]
        == datetime.fromtimestamp(timestamps[701] / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    confirmed = await client.patch(
        f"/v1/anomalies/{anomaly['anomaly_id']}", headers=owner, json={"status": "confirmed"}
    )
    assert confirmed.status_code == 200 and confirmed.json()["data"]["status"] == "confirmed"
    bad = await client.patch(
        f"/v1/anomalies/{anomaly['anomaly_id']}", headers=owner, json={"status": "maybe"}
    )
    assert bad.status_code == 400 and bad.json()["data"]["errors"][0]["field"] == "status"
    detector = (await client.get(f"/v1/streams/{stream_id}/detector", headers=owner)).json()["data"]
    assert detector["confirmed"] == 1 and detector["device_type"] == "temperature"

    export = await client.get("/v1/anomalies/export", headers=owner, params={"format": "csv"})
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    header = export.text.splitlines()[0]
    assert header.startswith("anomaly_id,stream_id,device_id,detected_at,anomaly_type")
    assert header.endswith(",known_at")
    assert anomaly["anomaly_id"] in export.text
    # The export takes the list's filters: what the console shows is what it saves.
    for params, kept in (
        ({"anomaly_type": anomaly["anomaly_type"], "device_id": device_id}, True),
        ({"anomaly_type": "gap" if anomaly["anomaly_type"] != "gap" else "spike"}, False),
        ({"device_id": str(uuid.uuid4())}, False),
    ):
        filtered = await client.get(
            "/v1/anomalies/export", headers=owner, params={"format": "json", **params}
        )
        assert filtered.status_code == 200, filtered.text
        assert (anomaly["anomaly_id"] in filtered.text) is kept, params
    refused = await client.get(
        "/v1/anomalies/export", headers=owner, params={"anomaly_type": "wobble", "status": "x"}
    )
    assert refused.status_code == 400
    assert {e["field"] for e in refused.json()["data"]["errors"]} == {"anomaly_type", "status"}

    stranger = await rest_user(client)
    assert (
        await client.get(f"/v1/anomalies/{anomaly['anomaly_id']}", headers=stranger)
    ).status_code == 404


async def test_stopping_analytics_loses_no_analysis(
    suite: Suite, client: httpx.AsyncClient, backend
) -> None:  # type: ignore[no-untyped-def]
    owner = await rest_user(client)
    device_id, token = await device_with_token(client, owner)
    await suite.stop("analytics")
    start = within_the_last_hour()
    timestamps, values = readings(1200, start, stuck_from=900)
    stream_id = await stream(
        suite, token, device_id, timestamps, values
    )  # ingest goes on without analytics
    from services.analytics.wiring import build

    restarted = await build(
        suite.settings, address=suite.address("analytics"), schema=backend.schema("analytics")
    )
    await restarted.built.start()
    suite.processes["analytics"] = restarted
    deadline = time.monotonic() + 20
    found: list[dict[str, object]] = []
    while time.monotonic() < deadline and not found:
        await asyncio.sleep(0.3)
        answer = await client.get(
            "/v1/anomalies",
            headers=owner,
            params={"stream_id": stream_id, "anomaly_type": "flatline"},
        )
        found = answer.json()["data"]["anomalies"]
    assert len(found) == 1
    # Dated at the run's start, not where it became known 20 readings later.
    detected = datetime.fromisoformat(str(found[0]["detected_at"]).replace("Z", "+00:00"))
    assert round(detected.timestamp() * SECOND) == timestamps[900]
    detector = (await client.get(f"/v1/streams/{stream_id}/detector", headers=owner)).json()["data"]
    assert detector["readings"] == "1200"  # every reading analysed, once


async def test_detector_bounds_through_rest(suite: Suite, client: httpx.AsyncClient) -> None:
    """Bounds as proto JSON spells them: "NaN" and the wrong infinity are 400 naming the field,
    a bound sent alone may not cross the stored other, and "-Infinity" / "Infinity" (the
    console's emptied field) mean no bound."""
    owner = await rest_user(client)
    device_id, token = await device_with_token(client, owner)
    timestamps, values = readings(200, within_the_last_hour())
    stream_id = await stream(suite, token, device_id, timestamps, values)
    path = f"/v1/streams/{stream_id}/detector"
    deadline = time.monotonic() + 20
    while (shown := await client.get(path, headers=owner)).status_code == 404:
        assert time.monotonic() < deadline, shown.text
        await asyncio.sleep(0.1)
    detector = shown.json()["data"]
    assert (detector["min_value"], detector["max_value"]) == (-40, 85)
    for body, field in (
        ({"min_value": 200}, "min_value"),  # above the stored 85
        ({"max_value": -500}, "max_value"),  # below the stored -40
        ({"min_value": "Infinity"}, "min_value"),
        ({"max_value": "-Infinity"}, "max_value"),
        ({"min_value": "NaN"}, "min_value"),
        ({"max_value": "NaN"}, "max_value"),
        ({"min_value": 10, "max_value": 10}, "max_value"),
    ):
        answer = await client.patch(path, headers=owner, json=body)
        assert answer.status_code == 400, (body, answer.text)
        assert [e["field"] for e in answer.json()["data"]["errors"]] == [field], body
    detector = (await client.get(path, headers=owner)).json()["data"]
    assert (detector["min_value"], detector["max_value"]) == (-40, 85)

    cleared = await client.patch(
        path,
        headers=owner,
        json={"min_value": "-Infinity", "max_value": "Infinity", "threshold": 0.5},
    )
    assert cleared.status_code == 200, cleared.text
    detector = cleared.json()["data"]
    assert (detector["min_value"], detector["max_value"]) == ("-Infinity", "Infinity")
    lowered = await client.patch(path, headers=owner, json={"max_value": -500})
    assert lowered.status_code == 200, lowered.text
    assert lowered.json()["data"]["min_value"] == "-Infinity"


async def test_correlation_through_the_gateway(suite: Suite, client: httpx.AsyncClient) -> None:
    owner = await rest_user(client)
    start = int(time.time()) * SECOND - 1200 * SECOND
    ids = []
    for _ in range(2):
        device_id, token = await device_with_token(client, owner)
        timestamps, values = readings(600, start)
        ids.append(await stream(suite, token, device_id, timestamps, values))
    window = {
        "window_start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start / 1e6)),
        "window_end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start / 1e6 + 600)),
    }
    answer = await client.post(
        "/v1/correlations",
        headers=owner,
        json={"stream_a": ids[0], "stream_b": ids[1], "algorithm": "pearson", **window},
    )
    assert answer.status_code == 201, answer.text
    result = answer.json()["data"]
    assert result["coefficient"] > 0.99 and result["sample_count"] == 600
    assert set(result) >= {
        "correlation_id",
        "stream_a",
        "stream_b",
        "coefficient",
        "window_start",
        "window_end",
        "algorithm",
    }
    same = await client.post(
        "/v1/correlations",
        headers=owner,
        json={"stream_a": ids[0], "stream_b": ids[0], "algorithm": "pearson", **window},
    )
    assert same.status_code == 400
    exported = await client.get("/v1/correlations/export", headers=owner, params={"format": "json"})
    assert [r["correlation_id"] for r in exported.json()] == [result["correlation_id"]]


async def test_correlation_says_how_far_to_trust_it(
    suite: Suite, client: httpx.AsyncClient
) -> None:
    owner = await rest_user(client)
    start = int(time.time()) * SECOND - 1200 * SECOND
    rng = np.random.default_rng(31)
    ids = []
    for _ in range(2):  # two independent noisy streams
        device_id, token = await device_with_token(client, owner)
        values = [round(float(v), 2) for v in rng.normal(20, 1, 600)]
        ids.append(await stream(suite, token, device_id, readings(600, start)[0], values))
    window = {
        "window_start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start / 1e6)),
        "window_end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start / 1e6 + 600)),
    }
    body = {"stream_a": ids[0], "stream_b": ids[1], "algorithm": "cross_correlation", **window}
    answer = await client.post("/v1/correlations", headers=owner, json=body)
    assert answer.status_code == 201, answer.text
    result = answer.json()["data"]
    assert result["p_value"] >= 0.05 and result["ci_low"] <= 0 <= result["ci_high"]
    assert result["lags_tried"] == 121 and result["sample_count"] <= 600

    # Nine readings each: too few pairs at any lag, a 400 that names what to change.
    few_start = start + 700 * SECOND
    few = []
    for _ in range(2):
        device_id, token = await device_with_token(client, owner)
        timestamps = [few_start + i * 10 * SECOND for i in range(9)]
        few.append(
            await stream(suite, token, device_id, timestamps, [20.0 + i % 2 for i in range(9)])
        )
    window = {
        "window_start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(few_start / 1e6)),
        "window_end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(few_start / 1e6 + 300)),
    }
    body = {"stream_a": few[0], "stream_b": few[1], "algorithm": "cross_correlation", **window}
    refused = await client.post("/v1/correlations", headers=owner, json=body)
    assert refused.status_code == 400, refused.text
    envelope = refused.json()
    assert envelope["success"] is False and envelope["error"]["error_code"] == "EMPTY_WINDOW"
    [error] = envelope["data"]["errors"]
    assert error["field"] == "window_start" and "at least 10" in error["message"]
    too_far = await client.post(
        "/v1/correlations", headers=owner, json={**body, "max_lag_seconds": 200}
    )
    assert too_far.status_code == 400
    assert [e["field"] for e in too_far.json()["data"]["errors"]] == ["max_lag_seconds"]


async def test_scores_through_rest_and_on_the_chart(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A detector whose scores say which reading they belong to: the value over 100.
    def process(
        self: StreamDetector, timestamps: Int64s, values: Float64s, *, sampling_period_us: float
    ) -> BatchResult:
        return BatchResult([], timestamps, values / 100)

    monkeypatch.setattr(StreamDetector, "process", process)
    owner = await rest_user(client)
    device = (
        await client.post("/v1/devices", headers=owner, json={"name": "Tank", "type": "generic"})
    ).json()["data"]
    start = int(time.time()) - 600
    readings = [
        {"timestamp": f"{datetime.fromtimestamp(start + i, UTC):%Y-%m-%dT%H:%M:%SZ}", "value": i}
        for i in range(100)
    ]
    stored = await client.post(
        f"/v1/devices/{device['device_id']}/readings",
        headers=owner,
        json={"metric_name": "level", "readings": readings},
    )
    stream_id = stored.json()["data"]["stream_ids"][0]
    scores: dict[str, object] = {}
    for _ in range(100):  # analysed in the background
        answer = await client.get(f"/v1/streams/{stream_id}/scores", headers=owner)
        if answer.status_code == 200 and len(answer.json()["data"]["scores"]) == 100:
            scores = answer.json()["data"]
            break
        await asyncio.sleep(0.1)
    assert scores["timestamps_us"] == [str((start + i) * SECOND) for i in range(100)]
    assert scores["scores"] == pytest.approx([i / 100 for i in range(100)], abs=1e-4)
    assert "next_start" not in scores
    page = (
        await client.get(
            f"/v1/streams/{stream_id}/scores",
            headers=owner,
            params={"start": readings[10]["timestamp"], "limit": 5},
        )
    ).json()["data"]
    assert page["timestamps_us"] == [str((start + i) * SECOND) for i in range(10, 15)]
    assert page["next_start"] == readings[15]["timestamp"]

    chart = (
        await client.get(
            f"/v1/streams/{stream_id}/data",
            headers=owner,
            params={"start": readings[0]["timestamp"], "include_scores": "true", "max_points": 10},
        )
    ).json()["data"]
    assert chart["scores_available"] is True and chart["downsampling"] == "min_max"
    assert max(p["anomaly_score"] for p in chart["data"]) == pytest.approx(0.99, abs=1e-4)
    plain = (await client.get(f"/v1/streams/{stream_id}/data", headers=owner)).json()["data"]
    assert plain["scores_available"] is False
    assert all("anomaly_score" not in p for p in plain["data"])

    stranger = await rest_user(client)
    refused = await client.get(f"/v1/streams/{stream_id}/scores", headers=stranger)
    assert refused.status_code == 404
    assert refused.json()["error"]["error_code"] == "STREAM_NOT_FOUND"
