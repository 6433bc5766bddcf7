"""A revoked session's access token is refused by every service within a second.

The five real services and the real gateway, on SQLite and on PostgreSQL,
with the revocations followed through auth (no Redis) and through the Redis
stream (``IOT_TEST_REDIS_URL``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import grpc
import httpx
import pytest
from grpc import aio

from iot.auth.v1 import auth_pb2, auth_pb2_grpc
from iot.devices.v1 import devices_pb2, devices_pb2_grpc
from iotkit.revocation import STREAM, Revocation, RevokedSessions
from iotkit.server import channel
from tests.conftest import Backend, Suite, start_suite, suite_with_gateway
from tests.support import bearer, rest_login

WITHIN = 1.0
"""Seconds a revocation may take to reach every service (the README's promise)."""

# One route of each service that verifies tokens locally; each answers 200 (or 404
# for the made-up id) while the token is good.
ROUTES = {
    "devices": "/v1/devices",
    "telemetry": f"/v1/devices/{uuid.uuid4()}/streams",
    "analytics": "/v1/anomalies",
    "chat": "/v1/chat/sessions",
}


@pytest.fixture(params=["auth", "redis"])
async def running(
    request: pytest.FixtureRequest, backend: Backend
) -> AsyncIterator[tuple[Suite, httpx.AsyncClient]]:
    """The suite and a gateway client, revocations followed through auth or through Redis."""
    changes = {}
    if request.param == "redis":
        changes["redis_url"] = request.getfixturevalue("redis_url")
    async with suite_with_gateway(backend, **changes) as running:
        yield running


async def statuses(http: httpx.AsyncClient, token: str) -> dict[str, int]:
    headers = {"authorization": f"Bearer {token}"}
    answers = await asyncio.gather(*(http.get(route, headers=headers) for route in ROUTES.values()))
    return {name: answer.status_code for name, answer in zip(ROUTES, answers, strict=True)}


async def refused_everywhere_within(http: httpx.AsyncClient, token: str) -> float:
    """Seconds until every service answers 401 to ``token``; fails after a generous bound."""
    started = time.monotonic()
    while True:
        seen = await statuses(http, token)
        if all(code == 401 for code in seen.values()):
            return time.monotonic() - started
        assert time.monotonic() - started < 10, f"still accepted: {seen}"
        await asyncio.sleep(0.05)


async def wait_until(check: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + 10
    while not await check():
        assert time.monotonic() < deadline, "never happened"
        await asyncio.sleep(0.05)


async def test_logout_reaches_every_service_within_a_second(
    running: tuple[Suite, httpx.AsyncClient],
) -> None:
    suite, http = running
    tokens = await rest_login(http)
    access = tokens["access_token"]
    before = await statuses(http, access)
    assert all(code in (200, 404) for code in before.values()), before
    other = (await rest_login(http))["access_token"]

    out = await http.post("/v1/auth/logout", headers={"authorization": f"Bearer {access}"})
    assert out.status_code == 200
    took = await refused_everywhere_within(http, access)
    # Generous for a loaded CI machine; the follow itself takes a quarter of a second.
    assert took < WITHIN * 3, took
    refused = await http.get("/v1/devices", headers={"authorization": f"Bearer {access}"})
    assert refused.json()["error"]["error_code"] == "UNAUTHENTICATED"
    assert refused.headers["www-authenticate"].lower().startswith("bearer")

    # Over gRPC too, and another user's session is untouched.
    async with channel(suite.address("devices")) as devices:
        stub = devices_pb2_grpc.DeviceServiceStub(devices)
        with pytest.raises(aio.AioRpcError) as failure:
            await stub.ListDevices(devices_pb2.ListDevicesRequest(), metadata=bearer(access))
        assert failure.value.code() is grpc.StatusCode.UNAUTHENTICATED
        await stub.ListDevices(devices_pb2.ListDevicesRequest(), metadata=bearer(other))
    assert all(code in (200, 404) for code in (await statuses(http, other)).values())

    if suite.settings.redis_url:
        from redis.asyncio import Redis

        sid = _claims(access)["sid"]
        client = Redis.from_url(suite.settings.redis_url)
        try:
            entries = await client.xrevrange(STREAM, count=200)
        finally:
            await client.aclose()
        assert any(fields.get(b"sid") == sid.encode() for _, fields in entries)


async def test_a_reused_refresh_token_revokes_the_session_everywhere(
    running: tuple[Suite, httpx.AsyncClient],
) -> None:
    _, http = running
    tokens = await rest_login(http)
    rotated = await http.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200
    fresh = rotated.json()["data"]["access_token"]
    assert all(code in (200, 404) for code in (await statuses(http, fresh)).values())

    reused = await http.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert reused.status_code == 401
    await refused_everywhere_within(http, fresh)
    await refused_everywhere_within(http, tokens["access_token"])


async def test_a_service_started_after_the_revocation_refuses_the_token(
    backend: Backend,
) -> None:
    suite = await start_suite(backend, ("auth",))
    try:
        access = await _logged_out(suite)
        await _devices_started_late_refuse(suite, backend, access)
    finally:
        await suite.aclose()


async def test_a_service_started_after_redis_lost_the_stream_refuses_the_token(
    backend: Backend, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis is not the record: a FLUSHDB (or a restart without persistence) loses the
    stream, and a service that starts afterwards must still refuse a revoked session (the
    fault run: devices SIGKILLed after a FLUSHDB answered a logged-out token 200)."""
    from redis.asyncio import Redis

    import iotkit.revocation

    # A stream of this test's own, deleted below as a FLUSHDB would (the shared Redis
    # is not flushed: other tests follow the real stream meanwhile).
    stream = f"iot:revocations:test-{uuid.uuid4().hex}"
    monkeypatch.setattr(iotkit.revocation, "STREAM", stream)
    suite = await start_suite(backend, ("auth",), redis_url=redis_url)
    client = Redis.from_url(redis_url)
    try:
        access = await _logged_out(suite)
        await wait_until(lambda: _in_stream(client, stream))
        await client.delete(stream)
        await _devices_started_late_refuse(suite, backend, access)
    finally:
        await client.delete(stream)
        await client.aclose()
        await suite.aclose()


async def _in_stream(client: Any, stream: str) -> bool:
    return bool(await client.xlen(stream))


async def _logged_out(suite: Suite) -> str:
    """The access token of a session of a new account, logged out at once."""
    async with channel(suite.address("auth")) as auth:
        stub = auth_pb2_grpc.AuthServiceStub(auth)
        email = f"late-{uuid.uuid4().hex[:8]}@example.com"
        await stub.Register(auth_pb2.RegisterRequest(email=email, password="Str0ng!pass"))
        login = await stub.Login(auth_pb2.LoginRequest(email=email, password="Str0ng!pass"))
        await stub.Logout(auth_pb2.LogoutRequest(), metadata=bearer(login.access_token))
    return login.access_token


async def _devices_started_late_refuse(suite: Suite, backend: Backend, access: str) -> None:
    """Start devices now, and check it refuses ``access`` (a revoked session's token)."""
    from services.devices.wiring import build as build_devices

    devices = await build_devices(
        suite.settings, address=suite.address("devices"), schema=backend.schema("devices")
    )
    await devices.built.start()
    suite.processes["devices"] = devices
    async with channel(suite.address("devices")) as devices_channel:
        stub = devices_pb2_grpc.DeviceServiceStub(devices_channel)
        with pytest.raises(aio.AioRpcError) as failure:
            await stub.ListDevices(devices_pb2.ListDevicesRequest(), metadata=bearer(access))
        assert failure.value.code() is grpc.StatusCode.UNAUTHENTICATED


def test_revocations_are_forgotten_once_their_tokens_have_expired() -> None:
    now = [1000.0]
    revoked = RevokedSessions(clock=lambda: now[0])
    revoked.add([Revocation("a", until=1010.0), Revocation("b", until=2000.0)])
    revoked.add([Revocation("old", until=999.0)])
    assert "a" in revoked and "b" in revoked and "old" not in revoked
    now[0] = 1011.0
    revoked.add([])
    assert "a" not in revoked and "b" in revoked
    assert len(revoked) == 1


async def test_auth_answers_revocations_since_a_cursor(auth_only: Suite) -> None:
    async with channel(auth_only.address("auth")) as auth:
        stub = auth_pb2_grpc.AuthServiceStub(auth)
        email = f"cursor-{uuid.uuid4().hex[:8]}@example.com"
        await stub.Register(auth_pb2.RegisterRequest(email=email, password="Str0ng!pass"))
        login = await stub.Login(auth_pb2.LoginRequest(email=email, password="Str0ng!pass"))
        service_token = (
            await stub.IssueServiceToken(
                auth_pb2.IssueServiceTokenRequest(
                    service="devices", client_secret=auth_only.settings.service_secret
                )
            )
        ).token
        # A user's token may not read the list.
        with pytest.raises(aio.AioRpcError) as failure:
            await stub.ListRevokedSessions(
                auth_pb2.ListRevokedSessionsRequest(), metadata=bearer(login.access_token)
            )
        assert failure.value.code() is grpc.StatusCode.UNAUTHENTICATED
        first = await stub.ListRevokedSessions(
            auth_pb2.ListRevokedSessionsRequest(), metadata=bearer(service_token)
        )
        sid = _claims(login.access_token)["sid"]
        assert sid not in {s.session_id for s in first.sessions}
        await stub.Logout(auth_pb2.LogoutRequest(), metadata=bearer(login.access_token))
        second = await stub.ListRevokedSessions(
            auth_pb2.ListRevokedSessionsRequest(since=first.cursor), metadata=bearer(service_token)
        )
        (revoked,) = [s for s in second.sessions if s.session_id == sid]
        until = revoked.until.ToDatetime(tzinfo=UTC)
        lifetime = (until - datetime.now(UTC)).total_seconds()
        assert 0 < lifetime <= auth_only.settings.access_token_ttl + 10
        assert second.cursor.ToDatetime(tzinfo=UTC) < datetime.now(UTC)


def _claims(token: str) -> dict[str, str]:
    import jwt

    claims: dict[str, str] = jwt.decode(token, options={"verify_signature": False})
    return claims
