"""The device registry through the gateway, over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.serve import start_gateway, stop_gateway
from tests.conftest import Suite
from tests.support import rest_user


@pytest.fixture
async def client(suite: Suite) -> AsyncIterator[httpx.AsyncClient]:
    server, port, task = await start_gateway(suite.settings, "127.0.0.1", 0)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        yield http
    await stop_gateway(server, task)


async def test_a_generic_device_measures_anything(client: httpx.AsyncClient) -> None:
    ann = await rest_user(client)
    answer = await client.post("/v1/devices", headers=ann, json={"name": "Tank", "type": "generic"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["data"]["type"] == "generic"
    stored = await client.post(
        f"/v1/devices/{answer.json()['data']['device_id']}/readings",
        headers=ann,
        json={
            "metric_name": "tank_level",
            "readings": [{"timestamp": "2026-11-29T10:00:00Z", "value": 73.5}],
        },
    )
    assert stored.status_code == 200, stored.text
    listed = await client.get("/v1/devices", headers=ann, params={"type": "generic"})
    assert [d["name"] for d in listed.json()["data"]["devices"]] == ["Tank"]


async def test_register_list_edit_decommission(client: httpx.AsyncClient) -> None:
    ann = await rest_user(client)
    created = []
    for kind in ("temperature", "pressure", "motion"):
        answer = await client.post(
            "/v1/devices",
            headers=ann,
            json={
                "name": f"{kind} one",
                "type": kind,
                "location": {"latitude": 45.5, "longitude": 9.2},
            },
        )
        assert answer.status_code == 201, answer.text
        body = answer.json()
        assert body["message"] == "Device registered"
        device = body["data"]
        assert set(device) >= {
            "device_id",
            "user_id",
            "name",
            "type",
            "registered_at",
            "location",
            "status",
        }
        assert device["location"] == {"latitude": 45.5, "longitude": 9.2}
        assert device["status"] == "active"
        created.append(device)

    page = await client.get(
        "/v1/devices", headers=ann, params={"limit": 2, "page": 1, "sort": "name"}
    )
    data = page.json()["data"]
    assert [d["name"] for d in data["devices"]] == ["motion one", "pressure one"]
    assert data["total_count"] == 3
    assert data["pagination"] == {"page": 1, "limit": 2, "total": 3, "total_pages": 2}
    filtered = await client.get(
        "/v1/devices", headers=ann, params={"type": "pressure", "search": "ONE"}
    )
    assert [d["type"] for d in filtered.json()["data"]["devices"]] == ["pressure"]
    empty = await client.get("/v1/devices", headers=ann, params={"page": 5})
    assert empty.status_code == 200 and empty.json()["data"]["devices"] == []

    target = created[0]["device_id"]
    patched = await client.patch(
        f"/v1/devices/{target}", headers=ann, json={"status": "maintenance", "name": "Kiln"}
    )
    assert patched.status_code == 200
    assert (patched.json()["data"]["name"], patched.json()["data"]["status"]) == (
        "Kiln",
        "maintenance",
    )
    fetched = await client.get(f"/v1/devices/{target}", headers=ann)
    assert fetched.json()["data"]["name"] == "Kiln"
    deleted = await client.delete(f"/v1/devices/{target}", headers=ann)
    assert deleted.status_code == 200 and deleted.json()["data"]["device_id"] == target
    assert (await client.get(f"/v1/devices/{target}", headers=ann)).status_code == 404


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"name": "", "type": "temperature"}, ["name"]),
        ({"name": "x" * 101, "type": "temperature"}, ["name"]),
        ({"name": "ok", "type": "sonar"}, ["type"]),
        (
            {"name": "ok", "type": "motion", "location": {"latitude": -91, "longitude": 0}},
            ["location.latitude"],
        ),
        (
            {"name": "ok", "type": "motion", "location": {"latitude": 0, "longitude": 180.5}},
            ["location.longitude"],
        ),
        (
            {"name": "ok", "type": "motion", "location": {"latitude": "north", "longitude": 0}},
            ["location.latitude"],
        ),
    ],
)
async def test_bad_device_input_is_400_with_the_field(
    client: httpx.AsyncClient, body: dict[str, object], fields: list[str]
) -> None:
    ann = await rest_user(client)
    answer = await client.post("/v1/devices", headers=ann, json=body)
    assert answer.status_code == 400, answer.text
    assert [e["field"] for e in answer.json()["data"]["errors"]] == fields


@pytest.mark.parametrize(
    ("params", "field"),
    [({"limit": "-1"}, "limit"), ({"limit": "abc"}, "limit"), ({"type": "x"}, "type")],
)
async def test_bad_list_parameters_are_400(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    ann = await rest_user(client)
    answer = await client.get("/v1/devices", headers=ann, params=params)
    assert answer.status_code == 400
    assert [e["field"] for e in answer.json()["data"]["errors"]] == [field]


async def test_malformed_and_foreign_ids(client: httpx.AsyncClient) -> None:
    ann, bob = await rest_user(client), await rest_user(client)
    bad = await client.get("/v1/devices/not-a-uuid", headers=ann)
    assert bad.status_code == 400 and bad.json()["data"]["errors"][0]["field"] == "device_id"
    device = (
        await client.post("/v1/devices", headers=ann, json={"name": "A", "type": "motion"})
    ).json()["data"]
    for method in ("GET", "DELETE"):
        answer = await client.request(method, f"/v1/devices/{device['device_id']}", headers=bob)
        assert answer.status_code == 404
    patched = await client.patch(
        f"/v1/devices/{device['device_id']}", headers=bob, json={"name": "mine"}
    )
    assert patched.status_code == 404
    assert (await client.get("/v1/devices", headers=bob)).json()["data"]["total_count"] == 0


async def test_credentials_and_import(client: httpx.AsyncClient) -> None:
    ann = await rest_user(client)
    device = (
        await client.post("/v1/devices", headers=ann, json={"name": "A", "type": "motion"})
    ).json()["data"]
    issued = await client.post(
        f"/v1/devices/{device['device_id']}/credentials", headers=ann, json={}
    )
    assert issued.status_code == 201
    credential = issued.json()["data"]
    assert credential["token"] and credential["scopes"] == ["telemetry:write"]
    shown = await client.get(f"/v1/devices/{device['device_id']}", headers=ann)
    assert shown.json()["data"]["has_credential"] is True
    assert credential["token"] not in shown.text
    # The device token does not manage devices.
    as_device = await client.get(
        "/v1/devices", headers={"authorization": f"Bearer {credential['token']}"}
    )
    assert as_device.status_code == 401
    revoked = await client.delete(f"/v1/devices/{device['device_id']}/credentials", headers=ann)
    assert revoked.json()["data"]["revoked"] == 1

    imported = await client.post(
        "/v1/devices:import",
        headers=ann,
        json={"format": "csv", "content": "name,type\nPump,pressure\nGhost,ghost\n"},
    )
    assert imported.status_code == 200, imported.text
    result = imported.json()["data"]
    assert (result["created"], result["rejected"]) == (1, 1)
    assert result["results"][1]["errors"][0]["field"] == "type"
    structured = await client.post(
        "/v1/devices:import", headers=ann, json={"devices": [{"name": "Fan", "type": "motion"}]}
    )
    assert structured.json()["data"]["created"] == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "JSON content is nested too deeply"),
        (
            "name,type\n" + "Pump,pressure\n" * 100_000,
            "Content must be at most 1,048,576 characters (1 MiB)",
        ),
        ("name,type\n" + "Pump,pressure\n" * 1001, "At most 1000 rows per import"),
    ],
    ids=["nested", "oversized", "rows"],
)
async def test_import_limits_answer_400_naming_content(
    client: httpx.AsyncClient, content: str, message: str
) -> None:
    ann = await rest_user(client)
    fmt = "json" if content.startswith("[") else "csv"
    answer = await client.post(
        "/v1/devices:import", headers=ann, json={"format": fmt, "content": content}
    )
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["error"]["error_code"] == "VALIDATION_FAILED"
    assert body["data"]["errors"] == [{"field": "content", "message": message}]


async def test_a_million_row_import_is_refused_before_it_reaches_devices(
    client: httpx.AsyncClient,
) -> None:
    ann = await rest_user(client)
    content = "name,type\n" + "Pump,pressure\n" * 1_000_000
    answer = await client.post(
        "/v1/devices:import", headers=ann, json={"format": "csv", "content": content}
    )
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["error_code"] == "PAYLOAD_TOO_LARGE"
