"""The services under test, each in its own process, on a database made for the run.

Benchmarks run auth, devices and telemetry (and, when asked, the other
services and the gateway) as ``python -m services.<name>`` and ``python -m
gateway`` children (exactly what ``iot up`` runs) on free ports, so the
telemetry process has a core to itself and its memory can be read from
/proc. The PostgreSQL variant gets a fresh database created for the run and
dropped afterwards; the SQLite one a temporary data directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from psycopg import sql

from iotkit.config import SERVICES, Settings

GATEWAY = "gateway"
"""The REST gateway's child name; every other child is a gRPC service."""

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("IOT_BENCH_DATABASE_URL", "postgresql://root@127.0.0.1:5432/test")
"""Where to create the run's PostgreSQL database (any database of the server will do)."""

READY_TIMEOUT = 60.0


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url(server_url: str, name: str) -> str:
    """``server_url`` with its database replaced by ``name``."""
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{name}"


@contextlib.contextmanager
def fresh_postgres_database(server_url: str = POSTGRES_URL) -> Iterator[str]:
    """A new, empty database for the run; dropped (with its connections) afterwards."""
    name = f"iot_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield database_url(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@dataclass
class RunningServices:
    """Service children of one benchmark and the settings to reach them."""

    settings: Settings
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    log_dir: Path | None = None

    def pid(self, service: str) -> int:
        """The process id of ``service``."""
        return self.children[service].pid

    def address(self, service: str) -> str:
        """Where ``service`` listens."""
        return self.settings.address(service)

    def environment(self) -> dict[str, str]:
        """The ``IOT_*`` variables the children were started with."""
        env = {
            "IOT_DATA_DIR": str(self.settings.data_dir),
            "IOT_LOG_LEVEL": "WARNING",
            # The benches load the gateway far past what one client may ask of it.
            "IOT_GATEWAY_RATE_PER_CLIENT": "0",
            "IOT_GATEWAY_RATE_PER_TOKEN": "0",
            # Set-up and queries outlast the default 15 minutes in a long run.
            "IOT_ACCESS_TOKEN_TTL": "7200",
        }
        if self.settings.database_url:
            env["IOT_DATABASE_URL"] = self.settings.database_url
        if self.settings.redis_url:
            env["IOT_REDIS_URL"] = self.settings.redis_url
        if self.settings.mqtt_url:
            env["IOT_MQTT_URL"] = self.settings.mqtt_url
        env["IOT_GATEWAY_PORT"] = str(self.settings.gateway_port)
        for name in SERVICES:
            env[f"IOT_{name.upper()}_ADDR"] = self.settings.address(name)
        return env

    async def start(
        self,
        services: Sequence[str],
        *,
        profile: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Start ``services`` in order, each once the previous one serves.

        ``profile`` runs telemetry under cProfile and writes its statistics there
        when it stops; ``env`` adds variables for these children only.
        """
        for name in services:
            await self.start_child(name, name, profile=profile, env=env)

    async def start_replica(self, service: str, replica: int, address: str) -> str:
        """Start replica ``replica`` (from 2) of ``service``, listening on ``address`` and
        sharing its database; answers its child name."""
        name = f"{service}-{replica}"
        await self.start_child(name, service, env={"IOT_LISTEN_ADDR": address}, at=address)
        return name

    async def start_child(
        self,
        name: str,
        service: str,
        *,
        profile: Path | None = None,
        env: Mapping[str, str] | None = None,
        at: str | None = None,
    ) -> None:
        """Start the child ``name`` running ``service`` and wait until it serves (at its
        service's address, or ``at``)."""
        env = {**os.environ, **self.environment(), **(env or {})}
        assert self.log_dir is not None
        argv = [sys.executable, "-m", GATEWAY if service == GATEWAY else f"services.{service}"]
        if profile is not None and name == "telemetry":
            argv = [
                sys.executable,
                "-m",
                "cProfile",
                "-o",
                str(profile),
                "-m",
                "services.telemetry",
            ]
        # Appending: a restarted child's log follows its predecessor's.
        log = (self.log_dir / f"{name}.log").open("ab")
        self.children[name] = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        await self._wait_ready(name, at or self._target(service))

    def _target(self, service: str) -> str:
        # The gateway answers plain HTTP on /healthz; services the gRPC health service.
        if service == GATEWAY:
            return f"127.0.0.1:{self.settings.gateway_port}"
        return self.address(service)

    async def _wait_ready(self, name: str, target: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        async with (
            aio.insecure_channel(target) as channel,
            httpx.AsyncClient(base_url=f"http://{target}", timeout=1.0) as http,
        ):
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.children[name].poll() is not None:
                    assert self.log_dir is not None
                    tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"{name} exited at start:\n{tail}")
                with contextlib.suppress(aio.AioRpcError, httpx.HTTPError):
                    if name == GATEWAY:
                        if (await http.get("/healthz")).status_code == 200:
                            return
                    else:
                        reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                        if reply.status == health_pb2.HealthCheckResponse.SERVING:
                            return
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{name} did not become ready in {READY_TIMEOUT:.0f} s")

    def kill(self, service: str) -> None:
        """SIGKILL ``service``, as a crash would end it; :meth:`start` brings it back."""
        child = self.children.pop(service)
        child.kill()
        child.wait()

    async def stop(self, service: str | None = None) -> None:
        """Stop one service (or all, newest first) with SIGTERM, as ``iot up`` does."""
        names = [service] if service else list(reversed(self.children))
        for name in names:
            child = self.children.pop(name)
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
            for _ in range(150):
                if child.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            else:
                child.kill()
                child.wait()


@contextlib.asynccontextmanager
async def running(
    kind: str,
    services: Sequence[str] = ("auth", "devices", "telemetry"),
    *,
    profile: Path | None = None,
    postgres_url: str = POSTGRES_URL,
    redis_url: str | None = None,
    mqtt_url: str | None = None,
) -> AsyncIterator[RunningServices]:
    """``services`` running on ``kind`` ("sqlite" or "postgresql") until the block ends.

    ``services`` may include ``"gateway"``; ``redis_url``, when given, is every child's
    ``IOT_REDIS_URL`` (lockouts, rate limits, revocations); ``mqtt_url`` their
    ``IOT_MQTT_URL`` (a broker the caller started).
    """
    with tempfile.TemporaryDirectory(prefix="iot-bench-") as tmp:
        settings = Settings(
            data_dir=Path(tmp) / "data",
            addresses={name: f"127.0.0.1:{free_port()}" for name in SERVICES},
            gateway_port=free_port(),
            redis_url=redis_url,
            mqtt_url=mqtt_url,
        )
        with contextlib.ExitStack() as stack:
            if kind == "postgresql":
                url = stack.enter_context(fresh_postgres_database(postgres_url))
                settings = settings.model_copy(update={"database_url": url})
            suite = RunningServices(settings, log_dir=Path(tmp))
            try:
                await suite.start(services, profile=profile)
                yield suite
            finally:
                await suite.stop()


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # utime and stime are fields 14 and 15 of stat(5); the split starts at field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident memory of a process now, from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0
