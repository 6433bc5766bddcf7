"""A stream's live readings through the gateway as Server-Sent Events, over real HTTP, on
SQLite and PostgreSQL: each event's ``id:`` is its position, and a reconnecting client's
``Last-Event-ID`` resumes right after it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx

from tests.gateway.test_gw_chat import read_events
from tests.gateway.test_gw_telemetry import client, new_device, readings_json
from tests.support import rest_user

__all__ = ["client"]  # the fixture, shared with the telemetry routes' tests

WAIT = 10.0


async def test_live_readings_carry_ids_and_resume_after_last_event_id(
    client: httpx.AsyncClient,
) -> None:
    ann = await rest_user(client)
    device_id = await new_device(client, ann)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)

    async def upload(first: int, count: int) -> str:
        moment = start + timedelta(seconds=first)
        body = {
            "metric_name": "temperature",
            "readings": readings_json([float(first + i) for i in range(count)], moment),
        }
        answer = await client.post(f"/v1/devices/{device_id}/readings", headers=ann, json=body)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["data"]["stream_ids"][0])

    def micros(second: int) -> int:
        return int((start + timedelta(seconds=second)).timestamp() * 1_000_000)

    stream_id = await upload(0, 5)
    url = f"/v1/streams/{stream_id}/readings:watch"
    ready = asyncio.Event()
    watcher = asyncio.create_task(read_events(client, url, 1, headers=ann, ready=ready))
    await asyncio.wait_for(ready.wait(), WAIT)
    await upload(5, 5)
    ((first_id, first),) = await asyncio.wait_for(watcher, WAIT)
    # Only what was stored after the watch began; int64 fields are JSON strings.
    assert [int(t) for t in first["timestamps"]] == [micros(s) for s in range(5, 10)]
    assert first["values"] == [5.0, 6.0, 7.0, 8.0, 9.0]
    assert first_id == first["event_id"] == str(micros(9))

    # Stored while the browser was away: a reconnect with its last id gets exactly that.
    await upload(10, 3)
    resumed = await asyncio.wait_for(
        read_events(client, url, 1, headers={**ann, "last-event-id": first_id}), WAIT
    )
    assert [int(t) for t in resumed[0][1]["timestamps"]] == [micros(s) for s in range(10, 13)]
    assert resumed[0][0] == str(micros(12))

    bad = await client.get(url, headers={**ann, "last-event-id": "yesterday"})
    assert bad.status_code == 400
    assert bad.json()["data"]["errors"][0]["field"] == "last_event_id"
    stranger = await rest_user(client)
    foreign = await client.get(url, headers=stranger)
    assert foreign.status_code == 404
    assert foreign.json()["error"]["error_code"] == "STREAM_NOT_FOUND"
