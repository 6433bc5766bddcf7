"""Server-streaming RPCs reach browsers as Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import httpx
import pytest
from gw_support import Fakes, abort_with, rich_status


def parse_events(text: str) -> list[tuple[str, Any]]:
    """(event name, decoded data) for each event of an SSE body."""
    events = []
    for block in text.strip().split("\n\n"):
        name = "message"
        data = []
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data.append(line.removeprefix("data: "))
        assert len(data) == 1, "each event is one data line"
        events.append((name, json.loads(data[0])))
    return events


async def test_each_message_is_one_data_event(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/things:watch", params={"limit": "3"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    events = parse_events(response.text)
    assert [name for name, _ in events] == ["message"] * 3
    assert [data["thing_id"] for _, data in events] == ["t0", "t1", "t2"]
    assert events[2][1]["limit"] == 2


async def test_an_empty_stream_is_an_empty_event_stream(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/things:watch", params={"limit": "0"})
    assert response.status_code == 200
    assert response.text == ""


async def test_a_failure_mid_stream_is_an_error_event_with_the_envelope(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/v1/things:watch", params={"limit": "2", "flag": "true"})
    assert response.status_code == 200
    events = parse_events(response.text)
    assert [name for name, _ in events] == ["message", "message", "error"]
    envelope = events[-1][1]
    assert envelope["success"] is False
    assert envelope["http_status_code"] == 409
    assert envelope["error"]["error_code"] == "GONE"
    assert envelope["error"]["path"] == "/v1/things:watch"


async def test_a_refusal_before_the_first_message_is_an_ordinary_error(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    async def deny(request: Any, context: Any) -> Any:
        await abort_with(context, rich_status(grpc.StatusCode.UNAUTHENTICATED, "Token expired"))

    fakes.recorder.script("WatchThings", deny)
    response = await client.get("/v1/things:watch", params={"limit": "2"})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["message"] == "Token expired"


async def test_a_slow_refusal_is_still_an_ordinary_error(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    # On a loaded machine a refusal may come late; the stream was never opened, so the
    # answer is the refusal's own status, not a 200 with an error event.
    async def deny_late(request: Any, context: Any) -> Any:
        await asyncio.sleep(1.5)
        await abort_with(context, rich_status(grpc.StatusCode.UNAUTHENTICATED, "Token expired"))

    fakes.recorder.script("WatchThings", deny_late)
    response = await client.get("/v1/things:watch", params={"limit": "2"})
    assert response.status_code == 401
    assert response.json()["message"] == "Token expired"


async def test_closing_the_event_stream_cancels_the_grpc_call(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    async with client.stream("GET", "/v1/things:watch", params={"limit": "-1"}) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                assert json.loads(line.removeprefix("data: "))["thing_id"] == "live"
                break
    # The server side sees the cancellation once the browser has gone.
    await asyncio.wait_for(fakes.recorder.stream_cancelled.wait(), timeout=10)
    assert fakes.recorder.stream_cancelled.is_set()


async def test_leaving_a_quiet_stream_before_its_first_message_cancels_the_call(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    async def open_and_wait() -> None:
        async with client.stream("GET", "/v1/things:watch", params={"limit": "-2"}):
            pass

    # The browser gives up while no message (and so no header) has arrived yet.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(open_and_wait(), timeout=0.5)
    await asyncio.wait_for(fakes.recorder.stream_cancelled.wait(), timeout=10)
    assert fakes.recorder.stream_cancelled.is_set()
