"""Helpers every kind of test shares: free ports, call metadata, new users.

Service tests make users over gRPC (:func:`new_user`), gateway tests over
REST (:func:`rest_login`); both with the same password and fresh addresses.
"""

from __future__ import annotations

import os
import random
import socket
import uuid
from collections import deque
from typing import Any

import httpx

from iot.auth.v1 import auth_pb2, auth_pb2_grpc
from iotkit.sqltypes import utcnow
from services.telemetry.telemetry.values import Stream
from tests import leak_scan

PASSWORD = "Str0ng!pass"
leak_scan.register(leak_scan.PASSWORD, PASSWORD)  # the password most tests sign up with

_HANDED_OUT: deque[int] = deque(maxlen=4000)


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1.

    Taken below Linux's ephemeral range (32768 and up), so that no outgoing
    connection of this or another process can be handed the same port before
    the test binds it.
    """
    ports = _worker_ports()
    while True:
        port = random.choice(ports)
        if port in _HANDED_OUT:  # not yet bound by whoever got it: never hand it out twice
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            _HANDED_OUT.append(port)
            return port


def _worker_ports() -> range:
    """This process's share of 20000-31999: pytest-xdist's workers (gw0, gw1, ...) each
    draw from their own, so two never hand out the same port."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    count = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    index = int(worker.removeprefix("gw") or 0) % count
    width = 12_000 // count
    return range(20_000 + index * width, 20_000 + (index + 1) * width)


def telemetry_stream(*, retention_days: int = 0) -> Stream:
    """A new stream of a new device, as telemetry's store takes it."""
    return Stream(
        id=str(uuid.uuid4()),
        device_id=str(uuid.uuid4()),
        owner_id=str(uuid.uuid4()),
        metric_name="temp",
        device_type="temperature",
        sampling_rate=1,
        sampling_period_us=1_000_000,
        retention_days=retention_days,
        created_at=utcnow(),
    )


def new_email() -> str:
    """A fresh address."""
    return f"user-{uuid.uuid4().hex[:10]}@example.com"


def client(*, ip: str = "", agent: str = "") -> list[tuple[str, str]]:
    """The metadata the gateway forwards about the HTTP client."""
    metadata = []
    if ip:
        metadata.append(("x-forwarded-for", ip))
    if agent:
        metadata.append(("x-forwarded-user-agent", agent))
    return metadata


def bearer(token: str, *, ip: str = "", agent: str = "") -> list[tuple[str, str]]:
    """Call metadata with a token and, optionally, the client the gateway would forward."""
    metadata = [("authorization", f"Bearer {token}")]
    return metadata + client(ip=ip, agent=agent)


async def new_user(
    auth: auth_pb2_grpc.AuthServiceStub, email: str | None = None, **fields: Any
) -> auth_pb2.LoginResponse:
    """Register an account (``fields`` go into the request) and log it in."""
    email = email or new_email()
    await auth.Register(auth_pb2.RegisterRequest(email=email, password=PASSWORD, **fields))
    return await auth.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD))


async def rest_login(http: httpx.AsyncClient, email: str | None = None) -> dict[str, Any]:
    """Register an account and log it in through the gateway; answers the login's ``data``."""
    email = email or new_email()
    registered = await http.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert registered.status_code == 201, registered.text
    answer = await http.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


async def rest_user(http: httpx.AsyncClient) -> dict[str, str]:
    """The ``authorization`` header of a new user, made through the gateway."""
    return {"authorization": f"Bearer {(await rest_login(http))['access_token']}"}
