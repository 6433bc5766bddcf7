"""The chat API through the gateway, over real HTTP, on SQLite and PostgreSQL: sessions,
the agents' queue, and the events stream as Server-Sent Events with ids and resumption."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.serve import start_gateway, stop_gateway
from tests.conftest import Backend, Suite
from tests.support import PASSWORD, rest_login, rest_user


@pytest.fixture
async def client(suite: Suite) -> AsyncIterator[httpx.AsyncClient]:
    server, port, task = await start_gateway(suite.settings, "127.0.0.1", 0)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        yield http
    await stop_gateway(server, task)


async def admin(client: httpx.AsyncClient, backend: Backend) -> dict[str, str]:
    """A new admin's header: promoted in auth's own database, then logged in again."""
    login = await rest_login(client)
    email = login["user"]["email"]
    await backend.sql("auth", "UPDATE users SET role = 'admin' WHERE email = ?", (email,))
    again = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    return {"authorization": f"Bearer {again.json()['data']['access_token']}"}


async def read_events(
    client: httpx.AsyncClient,
    url: str,
    count: int,
    headers: dict[str, str] | None = None,
    ready: asyncio.Event | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """The first ``count`` events of a stream as (id, data)."""
    found: list[tuple[str, dict[str, Any]]] = []
    async with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        if ready:
            ready.set()
        event_id = ""
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                found.append((event_id, json.loads(line[6:])))
                event_id = ""
                if len(found) == count:
                    return found
    return found


async def test_a_person_is_asked_for_and_the_agents_reply_arrives_live(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    ann, agent = await rest_user(client), await admin(client, backend)
    created = await client.post("/v1/chat/sessions", headers=ann, json={})
    assert created.status_code == 201, created.text
    session = created.json()["data"]["session"]
    assert created.json()["data"]["session_token"] == ""
    assert set(session) >= {
        "session_id",
        "user_id",
        "started_at",
        "messages",
        "escalation_level",
    }
    sid = session["session_id"]
    unsure = await client.post(
        f"/v1/chat/sessions/{sid}/messages", headers=ann, json={"content": "what's the weather"}
    )
    assert unsure.status_code == 201, unsure.text
    data = unsure.json()["data"]
    # The real assistant answers: off-topic, so unsure, offering a person (level 1).
    assert data["reply"]["intent"] == "out_of_scope" and data["escalation_level"] == 1
    assert "person" in data["reply"]["content"]
    assert set(data["message"]) >= {"message_id", "content", "is_bot", "sent_at", "author"}

    # The user keeps the events stream open while asking for a person.
    ready = asyncio.Event()
    url = f"/v1/chat/sessions/{sid}/events"
    watcher = asyncio.create_task(read_events(client, url, 5, ann, ready))
    await asyncio.wait_for(ready.wait(), 10)
    asked = await client.post(
        f"/v1/chat/sessions/{sid}/messages", headers=ann, json={"content": "a human please"}
    )
    assert asked.json()["data"]["escalation_level"] == 2
    assert asked.json()["data"]["reply"]["intent"] == "human"
    assert "person" in asked.json()["data"]["reply"]["content"]

    refused = await client.get("/v1/chat/escalations", headers=ann)
    assert refused.status_code == 403
    queue = (await client.get("/v1/chat/escalations", headers=agent)).json()["data"]
    (waiting,) = [s for s in queue["sessions"] if s["session_id"] == sid]
    assert [m["author"] for m in waiting["messages"]] == ["user", "bot", "user", "bot"]
    assert queue["pagination"]["total"] >= 1

    sent = await client.post(
        f"/v1/chat/sessions/{sid}/agent-messages", headers=agent, json={"content": "Dana here."}
    )
    assert sent.status_code == 201, sent.text
    events = await asyncio.wait_for(watcher, 10)
    assert [e["kind"] for _, e in events] == [
        "message",
        "typing",
        "message",
        "escalation",
        "message",
    ]
    ids = [int(event_id) for event_id, _ in events]
    assert ids == sorted(ids) and [str(i) for i in ids] == [e["event_id"] for _, e in events]
    assert events[-1][1]["message"]["author"] == "agent"
    assert events[-1][1]["message"]["content"] == "Dana here."

    resolved = await client.post(f"/v1/chat/sessions/{sid}/resolve", headers=agent, json={})
    assert resolved.status_code == 200 and resolved.json()["data"]["escalation_level"] == 0
    again = await client.post(
        f"/v1/chat/sessions/{sid}/agent-messages", headers=agent, json={"content": "hi"}
    )
    assert again.status_code == 409
    assert again.json()["error"]["error_code"] == "NOT_ESCALATED"


async def test_the_agents_queue_is_watched_as_server_sent_events(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    ann, agent = await rest_user(client), await admin(client, backend)
    refused = await client.get("/v1/chat/escalations:watch", headers=ann)
    assert refused.status_code == 403
    assert refused.json()["error"]["error_code"] == "MISSING_SCOPE"

    ready = asyncio.Event()
    watcher = asyncio.create_task(
        read_events(client, "/v1/chat/escalations:watch", 3, agent, ready)
    )
    await asyncio.wait_for(ready.wait(), 10)
    created = await client.post("/v1/chat/sessions", headers=ann, json={})
    sid = created.json()["data"]["session"]["session_id"]
    for content in ("a human please", "hello?"):
        sent = await client.post(
            f"/v1/chat/sessions/{sid}/messages", headers=ann, json={"content": content}
        )
        assert sent.status_code == 201, sent.text
    resolved = await client.post(f"/v1/chat/sessions/{sid}/resolve", headers=agent, json={})
    assert resolved.status_code == 200, resolved.text
    events = await asyncio.wait_for(watcher, 10)
    assert [(e["kind"], e["session_id"], e["escalation_level"]) for _, e in events] == [
        ("joined", sid, 2),
        ("message", sid, 2),
        ("left", sid, 0),
    ]
    # Nothing is replayed, so the events carry no id.
    assert [event_id for event_id, _ in events] == ["", "", ""]
    assert all(e["occurred_at"] for _, e in events)


async def test_last_event_id_resumes_the_stream(client: httpx.AsyncClient) -> None:
    created = (await client.post("/v1/chat/sessions", json={})).json()["data"]
    sid, token = created["session"]["session_id"], created["session_token"]
    url = f"/v1/chat/sessions/{sid}/events?session_token={token}"
    ready = asyncio.Event()
    watcher = asyncio.create_task(read_events(client, url, 8, ready=ready))
    await asyncio.wait_for(ready.wait(), 10)
    # Two off-topic questions in a row: each unsure, so escalation rises twice.
    for text in ("what's the weather in paris", "write me a poem about the sea"):
        answer = await client.post(
            f"/v1/chat/sessions/{sid}/messages", json={"content": text, "session_token": token}
        )
        assert answer.status_code == 201, answer.text
    live = await asyncio.wait_for(watcher, 10)
    # Replays leave out the stale typing events.
    everything = [(event_id, event) for event_id, event in live if event["kind"] != "typing"]
    assert [e["kind"] for _, e in everything] == ["message", "message", "escalation"] * 2
    second = everything[1][0]
    resumed = await asyncio.wait_for(
        read_events(client, url, 4, headers={"last-event-id": second}), 10
    )
    assert [event_id for event_id, _ in resumed] == [event_id for event_id, _ in everything[2:]]
    # The header wins over a stale query value (a reconnecting browser keeps its URL).
    stale = f"{url}&last_event_id={everything[0][0]}"
    latest = everything[3][0]
    tail = await asyncio.wait_for(
        read_events(client, stale, 1, headers={"last-event-id": latest}), 10
    )
    assert tail[0][0] == everything[4][0]
    bad = await client.get(url, headers={"last-event-id": "yesterday"})
    assert bad.status_code == 400
    assert bad.json()["data"]["errors"][0]["field"] == "last_event_id"


async def test_anonymous_sessions_and_their_token(client: httpx.AsyncClient) -> None:
    created = await client.post("/v1/chat/sessions", json={})
    assert created.status_code == 201
    data = created.json()["data"]
    sid, token = data["session"]["session_id"], data["session_token"]
    assert data["session"]["user_id"] == "" and token
    mine = await client.get(f"/v1/chat/sessions/{sid}", params={"session_token": token})
    assert mine.status_code == 200 and mine.json()["data"]["messages"] == []
    for params in ({}, {"session_token": "guess"}):
        answer = await client.get(f"/v1/chat/sessions/{sid}", params=params)
        assert answer.status_code == 404
        assert answer.json()["error"]["error_code"] == "SESSION_NOT_FOUND"
    someone = await rest_user(client)
    assert (await client.get(f"/v1/chat/sessions/{sid}", headers=someone)).status_code == 404
    assert (await client.get("/v1/chat/sessions")).status_code == 401
    ended = await client.post(f"/v1/chat/sessions/{sid}/end", json={"session_token": token})
    assert ended.status_code == 200 and ended.json()["data"]["ended_at"]
    late = await client.post(
        f"/v1/chat/sessions/{sid}/messages", json={"content": "hi", "session_token": token}
    )
    assert late.status_code == 409
    assert late.json()["error"]["error_code"] == "SESSION_ENDED"


@pytest.mark.parametrize("content", ["", "   ", "x" * 4001])
async def test_bad_content_is_400_naming_content(client: httpx.AsyncClient, content: str) -> None:
    ann = await rest_user(client)
    sid = (await client.post("/v1/chat/sessions", headers=ann, json={})).json()["data"]["session"][
        "session_id"
    ]
    answer = await client.post(
        f"/v1/chat/sessions/{sid}/messages", headers=ann, json={"content": content}
    )
    assert answer.status_code == 400
    assert [e["field"] for e in answer.json()["data"]["errors"]] == ["content"]


async def test_another_users_session_is_404_and_lists_are_paginated(
    client: httpx.AsyncClient,
) -> None:
    ann, bob = await rest_user(client), await rest_user(client)
    for _ in range(3):
        await client.post("/v1/chat/sessions", headers=ann, json={})
    page = (await client.get("/v1/chat/sessions", headers=ann, params={"limit": 2})).json()
    assert page["data"]["pagination"] == {"page": 1, "limit": 2, "total": 3, "total_pages": 2}
    sid = page["data"]["sessions"][0]["session_id"]
    for method, path, body in (
        ("GET", "", None),
        ("POST", "/end", {}),
        ("POST", "/messages", {"content": "x"}),
    ):
        answer = await client.request(
            method, f"/v1/chat/sessions/{sid}{path}", headers=bob, json=body
        )
        assert answer.status_code == 404, (method, path)
    events = await client.get(f"/v1/chat/sessions/{sid}/events", headers=bob)
    assert events.status_code == 404


async def test_help_routes_answer_404_for_an_unknown_article(client: httpx.AsyncClient) -> None:
    listed = await client.get("/v1/chat/help")
    assert listed.status_code == 200
    slugs = [a["slug"] for a in listed.json()["data"]["articles"]]
    assert "two-factor-authentication" in slugs and len(slugs) >= 12
    article = await client.get("/v1/chat/help/two-factor-authentication")
    assert article.status_code == 200, article.text
    assert article.json()["data"]["markdown"].startswith("# ")
    missing = await client.get("/v1/chat/help/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"]["error_code"] == "ARTICLE_NOT_FOUND"
