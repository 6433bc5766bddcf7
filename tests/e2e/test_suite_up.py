"""The whole suite as a new user runs it: ``iot up`` as separate processes, driven over HTTP.

Runs on the embedded SQLite defaults and again on a PostgreSQL database
created for the test.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from iotkit.config import GATEWAY, PROCESSES, SERVICES, metrics_variable
from tests.scrape import scrape, total
from tests.support import bearer, free_port

pytestmark = pytest.mark.e2e
READY_TIMEOUT = 90.0


@dataclass(frozen=True)
class Running:
    """The suite started by ``iot up``: the gateway URL and each service's address."""

    url: str
    addresses: dict[str, str]
    metrics_ports: dict[str, int]
    """Where each process (the gateway too) serves ``/metrics``."""
    data_dir: Path


@pytest.fixture
def running(tmp_path: Path, database_url: str | None) -> Iterator[Running]:
    """Start ``iot up`` in a child process; answer the gateway URL it prints and the addresses."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOT_")}
    env.update({f"IOT_{name.upper()}_ADDR": f"127.0.0.1:{free_port()}" for name in SERVICES})
    metrics_ports = {name: free_port() for name in PROCESSES}
    env.update({metrics_variable(n): f"127.0.0.1:{port}" for n, port in metrics_ports.items()})
    gateway_port = free_port()
    env.update({"IOT_DATA_DIR": str(tmp_path / "data"), "IOT_GATEWAY_PORT": str(gateway_port)})
    # The Mosquitto iot up starts when it is installed: a free port, not 1883.
    env["IOT_MQTT_PORT"] = str(free_port())
    if database_url:
        env["IOT_DATABASE_URL"] = database_url
    log = (tmp_path / "suite.log").open("w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "iotsuite.cli", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    url = f"http://127.0.0.1:{gateway_port}"
    assert process.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT
    banner = ""
    while url not in banner:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            log.seek(0)
            pytest.fail(f"iot up exited with {process.returncode}:\n{log.read()[-4000:]}")
        banner += line
        assert time.monotonic() < deadline, "the suite did not become ready in time"
    yield Running(
        url,
        {name: env[f"IOT_{name.upper()}_ADDR"] for name in SERVICES},
        metrics_ports,
        tmp_path / "data",
    )
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    log.seek(0)
    logged = log.read()
    assert "Traceback" not in logged
    # Each process ends by itself once it has stopped; none has to be killed.
    assert "did not stop" not in logged
    for port in [
        gateway_port,
        *(int(env[f"IOT_{n.upper()}_ADDR"].rsplit(":", 1)[1]) for n in SERVICES),
        *metrics_ports.values(),
        int(env["IOT_MQTT_PORT"]),  # its Mosquitto stopped with it
    ]:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)


def test_a_new_user_goes_through_the_auth_flow(running: Running) -> None:
    password = "Str0ng!pass"
    with httpx.Client(base_url=running.url, timeout=10) as client:
        registered = client.post(
            "/v1/auth/register",
            json={"email": "ann@example.com", "password": password, "display_name": "Ann"},
        )
        assert registered.status_code == 201, registered.text
        body = registered.json()
        assert body["success"] is True and body["http_status_code"] == 201
        # The password hash and everyone's data are the owner's alone: no other local user
        # may enter the data directory or read what is in it.
        assert stat.S_IMODE(running.data_dir.stat().st_mode) == 0o700
        shared = [
            str(path)
            for path in running.data_dir.rglob("*")
            if stat.S_IMODE(path.stat().st_mode) & 0o077
        ]
        assert shared == []
        assert body["data"]["user"]["email"] == "ann@example.com"

        bad = client.post("/v1/auth/register", json={"email": "nope", "password": "short"})
        assert bad.status_code == 400
        assert {e["field"] for e in bad.json()["data"]["errors"]} == {"email", "password"}

        login = client.post(
            "/v1/auth/login", json={"email": "ann@example.com", "password": password}
        )
        assert login.status_code == 200, login.text
        tokens = login.json()["data"]
        assert tokens["token_type"] == "bearer" and tokens["mfa_required"] is False
        auth = {"authorization": f"Bearer {tokens['access_token']}"}

        me = client.get("/v1/auth/me", headers=auth)
        assert me.status_code == 200
        assert me.json()["data"]["profile"]["display_name"] == "Ann"
        info = client.get("/v1/auth/token-info", headers=auth).json()["data"]
        assert "devices:read" in info["scopes"] and info["expires_at"] > info["created_at"]

        refreshed = client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert refreshed.status_code == 200
        new_auth = {"authorization": f"Bearer {refreshed.json()['data']['access_token']}"}

        assert client.post("/v1/auth/logout", headers=new_auth, json={}).status_code == 200
        after = client.get("/v1/auth/me", headers=new_auth)
        assert after.status_code == 401
        assert after.json()["error"]["error_code"] == "UNAUTHENTICATED"

        status = client.get("/v1/system/status").json()["data"]
        assert status["status"] == "healthy", status
        # Every service, chat included, serves an API of its own and is healthy.
        assert {name: status["services"][name] for name in SERVICES} == dict.fromkeys(
            SERVICES, "healthy"
        )
        assert status["metrics"]["total_requests"] > 0

        jwks = client.get("/.well-known/jwks.json").json()
        assert jwks["keys"][0]["kty"] == "OKP"
        assert "/v1/auth/register" in client.get("/openapi.json").json()["paths"]


def test_devices_stream_with_their_own_credential_and_charts_answer(running: Running) -> None:
    import asyncio

    import grpc

    from iot.telemetry.v1 import telemetry_pb2, telemetry_pb2_grpc

    with httpx.Client(base_url=running.url, timeout=10) as client:
        client.post(
            "/v1/auth/register", json={"email": "op@example.com", "password": "Str0ng!pass"}
        )
        login = client.post(
            "/v1/auth/login", json={"email": "op@example.com", "password": "Str0ng!pass"}
        )
        auth = {"authorization": f"Bearer {login.json()['data']['access_token']}"}
        devices = [
            client.post(
                "/v1/devices", headers=auth, json={"name": f"{kind} 1", "type": kind}
            ).json()["data"]
            for kind in ("temperature", "pressure", "motion")
        ]
        listed = client.get("/v1/devices", headers=auth, params={"type": "pressure"}).json()["data"]
        assert [d["device_id"] for d in listed["devices"]] == [devices[1]["device_id"]]
        token = client.post(
            f"/v1/devices/{devices[0]['device_id']}/credentials", headers=auth, json={}
        ).json()["data"]["token"]

        now_us = int(time.time() * 1_000_000)

        async def send(device_id: str) -> telemetry_pb2.BatchAck:
            entry = telemetry_pb2.StreamReadings(
                device_id=device_id,
                metric_name="temperature",
                timestamps=[now_us - 1_000_000 * i for i in range(100, 0, -1)],
                values=[20.0 + i / 100 for i in range(100)],
            )

            async def batches():  # type: ignore[no-untyped-def]
                yield telemetry_pb2.ReadingBatch(sequence=1, streams=[entry])

            async with grpc.aio.insecure_channel(running.addresses["telemetry"]) as channel:
                stub = telemetry_pb2_grpc.TelemetryServiceStub(channel)
                metadata = bearer(token)
                (ack,) = [a async for a in stub.StreamReadings(batches(), metadata=metadata)]
                return ack

        accepted = asyncio.run(send(devices[0]["device_id"]))
        refused = asyncio.run(send(devices[1]["device_id"]))
        assert accepted.accepted == 100
        assert (refused.accepted, refused.rejections[0].reason) == (0, "DEVICE_NOT_ALLOWED")

        chart = client.get(f"/v1/streams/{accepted.stream_ids[0]}/data", headers=auth).json()[
            "data"
        ]
        assert chart["stats"]["count"] == 100 and len(chart["data"]) == 100
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # activity reaches the device within seconds
            shown = client.get(f"/v1/devices/{devices[0]['device_id']}", headers=auth).json()[
                "data"
            ]
            if shown["readings_total"] == "100":
                break
            time.sleep(0.2)
        assert shown["readings_total"] == "100" and shown["last_seen_at"]

    # Every process, as separate processes, exports series the load above moved.
    samples = {name: asyncio.run(scrape(port)) for name, port in running.metrics_ports.items()}
    for name in SERVICES:
        assert total(samples[name], "iot_rpc_requests_total", code="OK") > 0, name
    assert total(samples["telemetry"], "iot_telemetry_readings_stored_total") >= 100
    assert total(samples[GATEWAY], "iot_http_requests_total", route="/v1/devices") > 0
