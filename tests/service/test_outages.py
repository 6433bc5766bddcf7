"""A dependency that is down answers 503 with ``Retry-After``, never 500, the status
says exactly what is down, and everything recovers by itself when it returns.

Redis and PostgreSQL here are throwaway servers the tests start and stop
(``tests/throwaway.py``), never the machine's own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from iotkit.config import Settings
from tests.conftest import Backend, suite_with_gateway
from tests.support import PASSWORD, new_email
from tests.throwaway import throwaway_postgres, throwaway_redis


async def register(http: httpx.AsyncClient) -> str:
    email = new_email()
    answer = await http.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    return email


async def login(http: httpx.AsyncClient, email: str) -> httpx.Response:
    return await http.post("/v1/auth/login", json={"email": email, "password": PASSWORD})


def assert_unavailable(answer: httpx.Response) -> None:
    """A 503 in the envelope with a Retry-After, saying nothing of the cause."""
    assert answer.status_code == 503, answer.text
    body = answer.json()
    assert body["success"] is False
    assert body["error"]["error_code"] == "SERVICE_UNAVAILABLE"
    assert int(answer.headers["retry-after"]) >= 1
    assert "redis" not in answer.text.lower() and "psycopg" not in answer.text.lower()


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "did not happen in time"
        await asyncio.sleep(0.1)


async def status(http: httpx.AsyncClient) -> dict[str, Any]:
    answer = await http.get("/v1/system/status")
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


async def test_redis_down_answers_503_and_recovers(backend: Backend) -> None:
    with throwaway_redis() as redis:
        async with suite_with_gateway(backend, redis_url=redis.url) as (_, http):
            email = await register(http)
            first = await login(http, email)
            assert first.status_code == 200, first.text
            token = first.json()["data"]["access_token"]
            headers = {"authorization": f"Bearer {token}"}

            redis.stop()
            assert_unavailable(await login(http, email))
            # Only auth keeps state in Redis: the others serve on, and say so.
            data = await status(http)
            services = data["services"]
            assert services["cache"] == "down"
            assert services["auth"] == "degraded"
            for name in ("devices", "telemetry", "analytics", "chat", "database"):
                assert services[name] == "healthy", (name, data)
            assert data["status"] == "degraded"
            (auth_state,) = [s for s in data["service_states"] if s["service"] == "auth"]
            assert "cache down" in auth_state["message"]
            assert (await http.get("/v1/devices", headers=headers)).status_code == 200

            # Revocation still reaches the services, through auth while Redis is down.
            out = await http.post("/v1/auth/logout", headers=headers)
            assert out.status_code == 200, out.text

            async def refused() -> bool:
                answer = await http.get("/v1/devices", headers=headers)
                return answer.status_code == 401

            await eventually(refused, within=10)

            redis.start()
            # The first login after Redis returns works: no stale connection.
            again = await login(http, email)
            assert again.status_code == 200, again.text

            async def cache_back() -> bool:
                return (await status(http))["services"]["cache"] == "healthy"

            await eventually(cache_back)
            assert (await status(http))["status"] == "healthy"


async def test_postgres_down_answers_503_a_status_body_and_recovers(tmp_path: Path) -> None:
    with throwaway_postgres() as postgres:
        backend = Backend(
            "postgresql", Settings(data_dir=tmp_path, database_url=postgres.url), "tout"
        )
        services = ("auth", "devices")
        async with suite_with_gateway(backend, services) as (_, http):
            email = await register(http)
            first = await login(http, email)
            assert first.status_code == 200, first.text
            headers = {"authorization": f"Bearer {first.json()['data']['access_token']}"}
            assert (await http.get("/v1/devices", headers=headers)).status_code == 200

            postgres.stop()
            assert_unavailable(await login(http, email))
            assert_unavailable(await http.get("/v1/devices", headers=headers))
            data = await status(http)
            assert data["status"] == "down"
            assert data["services"]["database"] == "down"
            assert data["database"] is False
            for name in services:
                assert data["services"][name] == "down", (name, data)
            assert data["services"]["cache"] == "healthy"

            postgres.start()

            async def logs_in() -> bool:
                return (await login(http, email)).status_code == 200

            await eventually(logs_in)
            assert (await http.get("/v1/devices", headers=headers)).status_code == 200
            back = await status(http)
            assert back["services"]["database"] == "healthy"
