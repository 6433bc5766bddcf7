"""Several gateway processes on one port (``IOT_GATEWAY_WORKERS``), as ``python -m gateway`` runs.

uvicorn's supervisor binds the port once and runs the workers on it; each
serves its own ``/metrics`` at the first free of the metrics port + 10 * k.
Every request is answered by one of them and counted once, and SIGTERM stops
the supervisor and every worker.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gateway.__main__ import listening_socket
from gateway.settings import GatewaySettings
from iotkit.config import ConfigError
from tests.scrape import scrape, total
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2
REQUESTS = 60


def _metrics_base() -> int:
    """A free port whose +10 is free too (the second worker's)."""
    while True:
        port = free_port()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10))
            except OSError:
                continue
        return port


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(check, seconds: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


async def test_two_workers_share_the_port_count_every_request_and_stop_together(
    tmp_path: Path,
) -> None:
    port, metrics = free_port(), _metrics_base()
    env = {
        **os.environ,
        "IOT_GATEWAY_PORT": str(port),
        "IOT_GATEWAY_WORKERS": str(WORKERS),
        "IOT_GATEWAY_METRICS_ADDR": f"127.0.0.1:{metrics}",
        "IOT_DATA_DIR": str(tmp_path),
        "IOT_GATEWAY_RATE_PER_CLIENT": "0",
    }
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "gateway"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for(lambda: _answers(f"{base}/healthz"))
        endpoints = [f"http://127.0.0.1:{metrics + 10 * k}/metrics" for k in range(WORKERS)]
        _wait_for(lambda: all(_answers(url) for url in endpoints))
        workers = {pid for pid in _children(supervisor.pid) if _alive(pid)}
        for _ in range(REQUESTS):
            # A new connection each time: the kernel hands each to a worker.
            assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        counted = 0.0
        for k in range(WORKERS):
            samples = await scrape(metrics + 10 * k)
            counted += total(samples, "iot_http_requests_total", route="/healthz")
        # Each request once, whichever worker took it (the readiness probes too).
        assert counted >= REQUESTS
        assert counted < REQUESTS + 400
    finally:
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=30) == 0
    _wait_for(lambda: not any(_alive(pid) for pid in workers), seconds=10)


@pytest.mark.parametrize("workers", ["0", "11", "-1"])
def test_a_worker_count_out_of_range_is_refused(
    workers: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IOT_GATEWAY_WORKERS", workers)
    with pytest.raises(ConfigError, match="IOT_GATEWAY_WORKERS"):
        GatewaySettings.load()


def test_the_shared_port_is_tcp_so_connections_get_nodelay() -> None:
    """uvicorn's own bind leaves the protocol at 0, and asyncio then leaves Nagle's
    algorithm on for every accepted connection (uvicorn issue #3149)."""
    sock = listening_socket("127.0.0.1", 0)
    try:
        sock.listen()
        with socket.create_connection(sock.getsockname()[:2]):
            accepted, _ = sock.accept()
            with accepted:
                assert accepted.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
