"""Dependency checks a process runs for its diagnostics.

Each check answers a ``DependencyStatus``: healthy, degraded (slow or
partly working) or down, with a detail that names the kind of failure but
never a connection string or a secret.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from iot.system.v1 import system_pb2
from iotkit.db import Database
from iotkit.redis_client import redis_client

DependencyCheck = Callable[[], Awaitable[system_pb2.DependencyStatus]]
"""A check of one dependency of one process."""

CHECK_TIMEOUT = 2.0
SLOW_MS = 500.0

HEALTHY, DEGRADED, DOWN = "healthy", "degraded", "down"


def _status(
    name: str, service: str, started: float, detail: str, ok: bool
) -> system_pb2.DependencyStatus:
    latency = (time.perf_counter() - started) * 1000
    state = DOWN if not ok else DEGRADED if latency > SLOW_MS else HEALTHY
    return system_pb2.DependencyStatus(
        name=name, service=service, status=state, detail=detail, latency_ms=round(latency, 3)
    )


async def run_check(
    check: Callable[[], Awaitable[str]], *, name: str, service: str
) -> system_pb2.DependencyStatus:
    """Run ``check`` (which answers a detail or raises) within the check timeout."""
    started = time.perf_counter()
    try:
        detail = await asyncio.wait_for(check(), CHECK_TIMEOUT)
    except TimeoutError:
        return _status(name, service, started, "timed out", ok=False)
    except Exception as exc:  # the class name tells what failed without leaking addresses
        return _status(name, service, started, type(exc).__name__, ok=False)
    return _status(name, service, started, detail, ok=True)


def database_check(database: Database, *, service: str) -> DependencyCheck:
    """Checks that the service's database answers a query."""

    async def probe() -> str:
        await database.ping()
        return database.kind

    return lambda: run_check(probe, name="database", service=service)


def redis_check(redis_url: str | None, *, service: str, optional: bool = False) -> DependencyCheck:
    """Checks the shared cache: Redis when configured, otherwise the in-process cache.

    ``optional`` says the process serves all it offers while Redis is down.
    """

    async def probe() -> str:
        if not redis_url:
            return "in-process"
        client = redis_client(redis_url, read_timeout=CHECK_TIMEOUT)
        try:
            await client.ping()
        finally:
            await client.aclose()
        return "redis"

    async def check() -> system_pb2.DependencyStatus:
        status = await run_check(probe, name="cache", service=service)
        status.optional = optional
        return status

    return check


def storage_check(directory: Path, *, service: str) -> DependencyCheck:
    """Checks that the local object-storage directory accepts a write."""

    def write_probe() -> str:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".probe-") as handle:
            handle.write(b"ok")
            handle.flush()
            os.fsync(handle.fileno())
        return "local-directory"

    async def probe() -> str:
        return await asyncio.to_thread(write_probe)

    return lambda: run_check(probe, name="storage", service=service)


def smtp_check(smtp_url: str | None, *, service: str) -> DependencyCheck:
    """Checks outgoing email: an SMTP server answering NOOP, or log-only when none is set."""

    def noop() -> str:
        import smtplib
        from urllib.parse import urlsplit

        assert smtp_url is not None
        parts = urlsplit(smtp_url)
        secure = parts.scheme == "smtps"
        client_class = smtplib.SMTP_SSL if secure else smtplib.SMTP
        with client_class(
            parts.hostname or "localhost",
            parts.port or (465 if secure else 25),
            timeout=CHECK_TIMEOUT,
        ) as client:
            code, _ = client.noop()
            if code != 250:
                raise ConnectionError(f"SMTP NOOP answered {code}")
        return "smtp"

    async def probe() -> str:
        if not smtp_url:
            return "log-only"
        return await asyncio.to_thread(noop)

    return lambda: run_check(probe, name="email", service=service)
