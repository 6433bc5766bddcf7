"""Seed 002's site flow end to end: over real HTTP through the gateway into the real auth,
devices and telemetry services, on SQLite and PostgreSQL.

An admin creates an account owned by a user and its sites; a site exchanges
its client secret for a token, runs a batch of CSV, JSON and XLSX files for
the owner's devices, follows its files and error log, and completes the
batch within the account's limit of active batches; the owner sees the
readings. A site touches nothing of another account, and a failure of
another service is a clear error, never a 500.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from openpyxl import Workbook

from gateway.serve import start_gateway, stop_gateway
from tests.conftest import Backend, Suite
from tests.service.auth_support import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, new_email, start_auth

Headers = dict[str, str]


@dataclass
class Env:
    """The gateway's client and the services behind it."""

    http: httpx.AsyncClient
    suite: Suite


@pytest.fixture
async def env(backend: Backend) -> AsyncIterator[Env]:
    async with start_auth(backend, services=("auth", "devices", "telemetry")) as auth:
        server, port, task = await start_gateway(auth.suite.settings, "127.0.0.1", 0)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                yield Env(http, auth.suite)
        finally:
            await stop_gateway(server, task)


def bearer(token: str) -> Headers:
    return {"authorization": f"Bearer {token}"}


def data(answer: httpx.Response, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json()["data"]


async def login(http: httpx.AsyncClient, email: str, password: str = PASSWORD) -> Headers:
    answer = await http.post("/v1/auth/login", json={"email": email, "password": password})
    return bearer(data(answer)["access_token"])


async def user(http: httpx.AsyncClient) -> tuple[str, Headers]:
    """A new user, logged in: their id and headers."""
    email = new_email()
    await http.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
    who = await login(http, email)
    return data(await http.get("/v1/auth/me", headers=who))["user"]["uuid"], who


async def device(http: httpx.AsyncClient, who: Headers) -> str:
    answer = await http.post(
        "/v1/devices", headers=who, json={"name": "Kiln", "type": "temperature"}
    )
    return str(data(answer, 201)["device_id"])


async def account(
    http: httpx.AsyncClient, admin: Headers, owner: str, max_batches: int
) -> dict[str, Any]:
    answer = await http.post(
        "/v1/admin/accounts",
        headers=admin,
        json={
            "email": new_email(),
            "name": "Plant Co",
            "owner_user_id": owner,
            "max_concurrent_batches": max_batches,
        },
    )
    return dict(data(answer, 201))


async def site_token(http: httpx.AsyncClient, admin: Headers, account_id: str) -> Headers:
    """A new site of the account, and the token its client secret is exchanged for."""
    created = data(
        await http.post(
            f"/v1/admin/accounts/{account_id}/sites",
            headers=admin,
            json={"domain": f"{uuid.uuid4().hex[:12]}.plants.example.com", "name": "Line 7"},
        ),
        201,
    )
    token = data(
        await http.post(
            "/v1/sites/token",
            json={"site_id": created["site"]["id"], "client_secret": created["client_secret"]},
        )
    )
    assert token["site_id"] == created["site"]["id"]
    return bearer(token["token"])


def day_ago(seconds: int) -> int:
    return int(time.time()) - 86_400 + seconds


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def put_file(
    http: httpx.AsyncClient, who: Headers, content: bytes, **fields: object
) -> dict[str, Any]:
    """Announce a file, send its content, and wait until its import ended."""
    announced = data(await http.post("/v1/uploads", headers=who, json=fields), 201)
    sent = await http.put(
        announced["upload_url"],
        headers={**who, "content-type": announced["fields"]["content-type"]},
        content=content,
    )
    assert sent.status_code == 200, sent.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        file = data(await http.get(f"/v1/uploads/{announced['file_id']}", headers=who))
        if file["status"] in ("COMPLETED", "FAILED"):
            return dict(file)
        await asyncio.sleep(0.05)
    raise AssertionError("the import never finished")


def workbook(rows: list[list[object]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    raw = io.BytesIO()
    book.save(raw)
    return raw.getvalue()


async def test_seed_002_site_flow_end_to_end(env: Env) -> None:
    http = env.http
    owner_id, owner = await user(http)
    kiln, dryer = await device(http, owner), await device(http, owner)
    bob_id, bob = await user(http)
    bobs_device = await device(http, bob)
    admin = await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)

    plant = await account(http, admin, owner_id, max_batches=2)
    assert (plant["owner_user_id"], plant["max_concurrent_batches"]) == (owner_id, 2)
    site, other_site = (
        await site_token(http, admin, plant["id"]),
        await site_token(http, admin, plant["id"]),
    )

    batch = data(await http.post("/v1/batches", headers=site, json={}), 201)
    assert batch["status"] == "ACTIVE" and batch["site_id"] != ""
    csv_file = await put_file(
        http,
        site,
        f"timestamp,value\n{day_ago(0)},1.5\n{day_ago(60)},warm\n".encode(),
        format="csv",
        batch_id=batch["id"],
        device_id=kiln,
        metric_name="temp",
    )
    # The rows name their device: the site's token is checked for each.
    json_file = await put_file(
        http,
        site,
        json.dumps(
            [{"timestamp": day_ago(120), "value": 40.0, "device_id": dryer, "metric_name": "hum"}]
        ).encode(),
        format="json",
        batch_id=batch["id"],
    )
    xlsx_file = await put_file(
        http,
        site,
        workbook([["timestamp", "value"], [day_ago(180), 2.5]]),
        filename="sheet.xlsx",
        batch_id=batch["id"],
        device_id=kiln,
        metric_name="temp",
    )
    for file, (imported, rejected) in (
        (csv_file, (1, 1)),
        (json_file, (1, 0)),
        (xlsx_file, (1, 0)),
    ):
        assert file["status"] == "COMPLETED", file["message"]
        progress = file["progress"]
        assert (progress["rows_imported"], progress["rows_rejected"]) == (imported, rejected)

    files = data(await http.get(f"/v1/batches/{batch['id']}/files", headers=site))["files"]
    assert [f["id"] for f in files] == [csv_file["id"], json_file["id"], xlsx_file["id"]]
    errors = data(await http.get(f"/v1/batches/{batch['id']}/errors", headers=site))
    assert errors["pagination"] == {"page": 1, "limit": 20, "total": 1, "total_pages": 1}
    (entry,) = errors["content"]
    assert (entry["severity"], entry["file_id"], entry["metadata"]["row"]) == (
        "ERROR",
        csv_file["id"],
        3,
    )
    file_errors = data(await http.get(f"/v1/uploads/{csv_file['id']}/errors", headers=site))
    assert [e["id"] for e in file_errors["content"]] == [entry["id"]]

    # The account's limit (2, below the suite's 5) counts the batches of all its sites.
    data(await http.post("/v1/batches", headers=other_site, json={}), 201)
    refused = await http.post("/v1/batches", headers=site, json={})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["error_code"] == "TOO_MANY_ACTIVE_BATCHES"
    assert refused.json()["error"]["details"] == {"max_active_batches": "2"}

    done = data(await http.post(f"/v1/batches/{batch['id']}/complete", headers=site, json={}))
    assert done["status"] == "COMPLETED" and done["uploaded_files_count"] == 3
    assert done["has_errors"] is True
    data(await http.post("/v1/batches", headers=site, json={}), 201)  # a slot is free again

    # The owner sees the readings as their own.
    streams = data(await http.get(f"/v1/devices/{kiln}/streams", headers=owner))["streams"]
    (temp,) = streams
    points = data(await http.get(f"/v1/streams/{temp['stream_id']}/data", headers=owner))["data"]
    assert [p["value"] for p in points] == [1.5, 2.5]
    (hum,) = data(await http.get(f"/v1/devices/{dryer}/streams", headers=owner))["streams"]
    assert hum["metric_name"] == "hum" and hum["readings_count"] == "1"
    # A site reads no readings, not even its owner's.
    site_reads = await http.get(f"/v1/streams/{temp['stream_id']}/data", headers=site)
    assert site_reads.status_code in (401, 403), site_reads.text

    # Another account's site sees nothing of this one, nor may it write its devices.
    elsewhere = await site_token(http, admin, (await account(http, admin, bob_id, 5))["id"])
    for path in (
        f"/v1/batches/{batch['id']}",
        f"/v1/batches/{batch['id']}/errors",
        f"/v1/batches/{batch['id']}/files",
        f"/v1/uploads/{csv_file['id']}",
    ):
        assert (await http.get(path, headers=elsewhere)).status_code == 404, path
    foreign = await http.post(
        "/v1/uploads", headers=elsewhere, json={"format": "csv", "device_id": kiln}
    )
    assert (
        foreign.status_code == 404 and foreign.json()["error"]["error_code"] == "DEVICE_NOT_FOUND"
    )
    # Nor may this account's site write bob's devices.
    assert (
        await http.post("/v1/batches", headers=site, json={"device_id": bobs_device})
    ).status_code == 404


async def test_a_site_writes_readings_of_its_accounts_devices_only(env: Env) -> None:
    http = env.http
    owner_id, owner = await user(http)
    kiln = await device(http, owner)
    _, bob = await user(http)
    bobs_device = await device(http, bob)
    admin = await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)
    site = await site_token(http, admin, (await account(http, admin, owner_id, 5))["id"])
    now = datetime.now(UTC).replace(microsecond=0)
    readings = [{"timestamp": iso(now - timedelta(seconds=10 - i)), "value": i} for i in range(3)]

    stored = await http.post(
        f"/v1/devices/{kiln}/readings",
        headers=site,
        json={"metric_name": "temp", "readings": readings},
    )
    assert data(stored)["accepted"] == 3
    stream_id = data(stored)["stream_ids"][0]
    shown = data(await http.get(f"/v1/streams/{stream_id}/data", headers=owner))
    assert [p["value"] for p in shown["data"]] == [0, 1, 2]

    foreign = await http.post(
        f"/v1/devices/{bobs_device}/readings",
        headers=site,
        json={"metric_name": "temp", "readings": readings},
    )
    assert foreign.status_code == 404, foreign.text
    assert foreign.json()["error"]["error_code"] == "DEVICE_NOT_FOUND"
    assert data(await http.get(f"/v1/devices/{bobs_device}/streams", headers=bob))["streams"] == []


async def test_a_site_of_an_account_without_owner_writes_no_device(env: Env) -> None:
    http = env.http
    owner_id, owner = await user(http)
    kiln = await device(http, owner)
    admin = await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)
    bare = data(
        await http.post(
            "/v1/admin/accounts", headers=admin, json={"email": new_email(), "name": "Bare"}
        ),
        201,
    )
    assert bare["owner_user_id"] == ""
    site = await site_token(http, admin, bare["id"])
    refused = await http.post(
        "/v1/uploads", headers=site, json={"format": "csv", "device_id": kiln}
    )
    assert refused.status_code == 404
    unknown = await http.post(
        "/v1/admin/accounts",
        headers=admin,
        json={"email": new_email(), "name": "Plant", "owner_user_id": str(uuid.uuid4())},
    )
    assert unknown.status_code == 400
    assert [e["field"] for e in unknown.json()["data"]["errors"]] == ["owner_user_id"]
    # An admin names the owner afterwards; tokens issued from then on write its devices.
    changed = data(
        await http.patch(
            f"/v1/admin/accounts/{bare['id']}", headers=admin, json={"owner_user_id": owner_id}
        )
    )
    assert changed["owner_user_id"] == owner_id
    site = await site_token(http, admin, bare["id"])
    allowed = await http.post(
        "/v1/uploads", headers=site, json={"format": "csv", "device_id": kiln}
    )
    assert allowed.status_code == 201, allowed.text
    # Another change leaves the owner; an empty one takes it away again.
    renamed = data(
        await http.patch(f"/v1/admin/accounts/{bare['id']}", headers=admin, json={"name": "B"})
    )
    assert renamed["owner_user_id"] == owner_id
    cleared = data(
        await http.patch(
            f"/v1/admin/accounts/{bare['id']}", headers=admin, json={"owner_user_id": ""}
        )
    )
    assert cleared["owner_user_id"] == ""
    site = await site_token(http, admin, bare["id"])
    refused = await http.post(
        "/v1/uploads", headers=site, json={"format": "csv", "device_id": kiln}
    )
    assert refused.status_code == 404


async def test_devices_out_of_reach_is_a_503_not_a_500(env: Env) -> None:
    http = env.http
    owner_id, owner = await user(http)
    kiln = await device(http, owner)
    admin = await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)
    site = await site_token(http, admin, (await account(http, admin, owner_id, 5))["id"])
    await env.suite.processes.pop("devices").aclose(grace=0)
    readings = [{"timestamp": iso(datetime.now(UTC) - timedelta(seconds=5)), "value": 1}]
    for who in (owner, site):
        answer = await http.post(
            f"/v1/devices/{kiln}/readings",
            headers=who,
            json={"metric_name": "temp", "readings": readings},
        )
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["error_code"] == "SERVICE_UNAVAILABLE"
