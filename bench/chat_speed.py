"""How fast the chat assistant answers through the gateway.

The suite's five services run as their own processes (as ``iot up`` runs
them, on SQLite) and the gateway in this process; one client sends
``POST /v1/chat/sessions/{id}/messages`` with "how many devices do I have",
a reply that needs one gRPC call to devices (and one to auth for the time
zone), back to back. The baseline is the gateway's own ``/healthz`` in the
same run: what any HTTP request through the same stack costs.
"""

from __future__ import annotations

import time

import httpx
import numpy as np

from bench.report import Figure, JobResult
from bench.services import running
from gateway.serve import start_gateway, stop_gateway
from iotkit.config import SERVICES

SPEED_TITLE = "14. Chat: a reply through the gateway"
PASSWORD = "Str0ng!pass"
QUESTION = "how many devices do I have"
TARGET_P50_MS = 50.0


async def _latencies(call, count: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Milliseconds of ``count`` calls of ``call`` made one after another (after 5 warm-ups)."""
    for _ in range(5):
        await call()
    found = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        found.append((time.perf_counter() - started) * 1000)
    return np.array(found)


async def measure(count: int = 200) -> JobResult:
    """Start the suite, ask the question ``count`` times; answers the figures."""
    job = JobResult(when="", options="")
    async with running("sqlite", SERVICES) as suite:
        server, port, task = await start_gateway(suite.settings, "127.0.0.1", 0)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
                await http.post(
                    "/v1/auth/register", json={"email": "c@example.com", "password": PASSWORD}
                )
                login = await http.post(
                    "/v1/auth/login", json={"email": "c@example.com", "password": PASSWORD}
                )
                who = {"authorization": f"Bearer {login.json()['data']['access_token']}"}
                for name in ("Greenhouse", "Cellar", "Attic"):
                    await http.post(
                        "/v1/devices", headers=who, json={"name": name, "type": "temperature"}
                    )
                created = await http.post("/v1/chat/sessions", headers=who, json={})
                sid = created.json()["data"]["session"]["session_id"]

                async def ask() -> None:
                    answer = await http.post(
                        f"/v1/chat/sessions/{sid}/messages",
                        headers=who,
                        json={"content": QUESTION},
                    )
                    assert "3 devices" in answer.json()["data"]["reply"]["content"], answer.text

                async def healthz() -> None:
                    assert (await http.get("/healthz")).status_code == 200

                baseline = await _latencies(healthz, count)
                replies = await _latencies(ask, count)
        finally:
            await stop_gateway(server, task)
    p50, p99 = np.quantile(replies, [0.5, 0.99])
    b50, b99 = np.quantile(baseline, [0.5, 0.99])
    job.sections[SPEED_TITLE] = [
        Figure(
            f'reply to "{QUESTION}", p50',
            "ms",
            float(p50),
            "GET /healthz through the gateway, p50",
            float(b50),
            f"{count} messages, one after another; stored, understood, answered from devices",
            lower_is_better=True,
            target=f"< {TARGET_P50_MS:g} ms",
            met=bool(p50 < TARGET_P50_MS),
        ),
        Figure(
            f'reply to "{QUESTION}", p99',
            "ms",
            float(p99),
            "GET /healthz through the gateway, p99",
            float(b99),
            "the same run",
            lower_is_better=True,
        ),
    ]
    return job
