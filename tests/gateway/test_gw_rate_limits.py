"""Rate limits per client address and per bearer token, and the CORS allow-list.

A real gateway (uvicorn) with no RPC routes: an API path answers the envelope's
404, which is enough to count requests, since limits apply before routing.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import build_app
from gateway.rate_limits import RateLimitMiddleware, RateLimits
from gateway.serve import start_gateway, stop_gateway
from gateway.settings import GatewaySettings
from iotkit.config import ConfigError
from iotkit.limits import WindowCount
from tests.conftest import _required
from tests.support import free_port


@asynccontextmanager
async def gateway(tmp_path: Path, **changes: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway of ``changes`` (GatewaySettings fields) and a client of it."""
    settings = GatewaySettings(data_dir=tmp_path / "data", **changes)
    server, port, task = await start_gateway(
        settings, "127.0.0.1", 0, app=build_app(settings, methods=[])
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            yield client
    finally:
        await stop_gateway(server, task)


def bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {secrets.token_urlsafe(24)}"}


async def test_a_client_over_its_limit_is_refused_with_retry_after(tmp_path: Path) -> None:
    async with gateway(tmp_path, gateway_rate_per_client=3, gateway_rate_per_token=0) as client:
        for _ in range(3):
            assert (await client.get("/v1/devices")).status_code == 404
        refused = await client.get("/v1/devices")
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        body = refused.json()
        assert body["success"] is False
        assert body["error"]["error_code"] == "RATE_LIMITED"
        assert body["error"]["details"] == {"limit": "client"}
        assert body["error"]["path"] == "/v1/devices"
        # What is not the API is not counted: the console, the probe, the API document.
        for path in ("/", "/healthz", "/openapi.json"):
            assert (await client.get(path)).status_code == 200, path


async def test_each_token_has_its_own_limit(tmp_path: Path) -> None:
    async with gateway(tmp_path, gateway_rate_per_client=0, gateway_rate_per_token=2) as client:
        first, second = bearer(), bearer()
        assert [(await client.get("/v1/x", headers=first)).status_code for _ in range(3)] == [
            404,
            404,
            429,
        ]
        assert (await client.get("/v1/x", headers=second)).status_code == 404
        assert (await client.get("/v1/x")).status_code == 404  # no token, no token limit
        refused = await client.get("/v1/x", headers=first)
        assert refused.json()["error"]["details"] == {"limit": "token"}


async def test_replicas_share_the_windows_through_redis(tmp_path: Path) -> None:
    redis_url = _required("IOT_TEST_REDIS_URL")
    token = bearer()  # a new token: a key no other test or run has counted
    limits = {"gateway_rate_per_client": 0, "gateway_rate_per_token": 3, "redis_url": redis_url}
    async with gateway(tmp_path / "a", **limits) as one, gateway(tmp_path / "b", **limits) as two:
        assert (await one.get("/v1/x", headers=token)).status_code == 404
        assert (await one.get("/v1/x", headers=token)).status_code == 404
        assert (await two.get("/v1/x", headers=token)).status_code == 404
        assert (await two.get("/v1/x", headers=token)).status_code == 429
        assert (await one.get("/v1/x", headers=token)).status_code == 429


async def test_an_unreachable_redis_leaves_requests_served_uncounted(tmp_path: Path) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    async with gateway(tmp_path, gateway_rate_per_client=1, redis_url=nowhere) as client:
        statuses = {(await client.get("/v1/x")).status_code for _ in range(3)}
        assert statuses == {404}


class FlakyCounter:
    """A window counter whose store is unreachable while ``down`` is set."""

    def __init__(self) -> None:
        self.down = False
        self.asked = 0

    async def hit_many(self, keys: Sequence[str]) -> list[WindowCount]:
        self.asked += 1
        if self.down:
            raise ConnectionRefusedError(111, "Connection refused")
        return [WindowCount(1, 60.0) for _ in keys]


async def test_an_outage_of_the_limits_store_is_logged_at_its_start_and_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Not once per request (fifty lines in fifteen seconds with Redis down), and the store
    is asked again once a second, not by every request."""
    counter, now = FlakyCounter(), [100.0]

    async def api(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    limits = RateLimitMiddleware(
        api,
        limits=RateLimits(per_client=5, per_token=0),
        counter=counter,  # type: ignore[arg-type]
        clock=lambda: now[0],
    )

    async def request() -> int:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "path": "/v1/devices", "headers": [], "client": ("10.0.0.1", 1)}
        await limits(scope, None, send)  # type: ignore[arg-type]
        return int(sent[0]["status"])

    counter.down = True
    with caplog.at_level(logging.WARNING, logger="gateway.rate_limits"):
        for _ in range(50):
            assert await request() == 204  # served uncounted
            now[0] += 0.3
        counter.down = False
        now[0] += 1.0
        assert await request() == 204
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2, said
    assert said[0].startswith("rate limits not counted: their store is unreachable")
    assert said[1].startswith("rate limits counted again after 16.0 s") and "50 requests" in said[1]
    assert counter.asked < 20  # about once a second over 15 s, plus the one that worked


async def test_cors_answers_only_the_listed_origins(tmp_path: Path) -> None:
    allowed = "https://app.example.com"
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    async with gateway(
        tmp_path, gateway_cors_origins=f"{allowed}/, https://b.example.com"
    ) as client:
        ok = await client.options("/v1/devices", headers={"Origin": allowed, **preflight})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == allowed
        assert "authorization" in ok.headers["access-control-allow-headers"].lower()
        simple = await client.get("/v1/devices", headers={"Origin": allowed})
        assert simple.headers["access-control-allow-origin"] == allowed
        assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()
        other = await client.options(
            "/v1/devices", headers={"Origin": "https://evil.example.com", **preflight}
        )
        assert "access-control-allow-origin" not in other.headers
    async with gateway(tmp_path) as client:  # none listed: same origin only
        answer = await client.get("/v1/devices", headers={"Origin": allowed})
        assert "access-control-allow-origin" not in answer.headers


@pytest.mark.parametrize(
    ("changes", "variable"),
    [
        ({"gateway_rate_per_client": -1}, "IOT_GATEWAY_RATE_PER_CLIENT"),
        ({"gateway_rate_per_token": -5}, "IOT_GATEWAY_RATE_PER_TOKEN"),
        ({"gateway_cors_origins": "*"}, "IOT_GATEWAY_CORS_ORIGINS"),
        ({"gateway_cors_origins": "app.example.com"}, "IOT_GATEWAY_CORS_ORIGINS"),
    ],
)
def test_bad_settings_name_their_variable(changes: dict[str, Any], variable: str) -> None:
    environ = {f"IOT_{key.upper()}": str(value) for key, value in changes.items()}
    with pytest.raises(ConfigError, match=variable):
        GatewaySettings.load(environ)
