"""Alerts end to end through the gateway (SQLite and PostgreSQL): a rule made over REST, a
spike uploaded over REST, and the alert reaching a real SMTP server, a signed webhook and the
console's live feed (Server-Sent Events) within seconds."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest
from gw_support import first_sse_event

from tests import leak_scan
from tests.alerts_support import webhook_receiver
from tests.conftest import Backend, suite_with_gateway
from tests.service.auth_support import Mailbox, smtp_server
from tests.support import rest_user

FAST = {
    "alerts_allow_private_webhooks": True,
    "alerts_retry_base_seconds": 0.05,
    "alerts_max_attempts": 3,
    "alerts_check_seconds": 0.1,
}
SERVICES = ("auth", "devices", "telemetry", "analytics")


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with smtp_server() as box:
        yield box


@pytest.fixture
async def http(backend: Backend, mailbox: Mailbox) -> AsyncIterator[httpx.AsyncClient]:
    async with suite_with_gateway(backend, SERVICES, smtp_url=mailbox.url, **FAST) as (_, client):
        yield client


def spiked_readings(count: int = 300, spike_at: int = 250) -> list[dict[str, Any]]:
    """A minute-old run of a steady 21 °C sensor at 1 Hz with one +9 °C spike, inside one
    UTC hour (the detector learns each hour anew)."""
    rng = np.random.default_rng(5)
    values = np.round(21 + rng.uniform(-0.05, 0.05, count), 2)
    values[spike_at] += 9.0
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    return [
        {"timestamp": (hour + timedelta(seconds=60 + i)).isoformat(), "value": float(v)}
        for i, v in enumerate(values)
    ]


async def test_a_spike_reaches_email_webhook_and_live_feed(
    http: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    who = await rest_user(http)
    device = (
        await http.post("/v1/devices", headers=who, json={"name": "Kiln", "type": "temperature"})
    ).json()["data"]["device_id"]
    with webhook_receiver() as receiver:
        created = await http.post(
            "/v1/alert-rules",
            headers=who,
            json={
                "spec": {
                    "name": "kiln spikes",
                    "kind": "anomaly",
                    "device_ids": [device],
                    "min_confidence": 0.5,
                    "email_to": "oncall@example.com",
                    "webhook_url": receiver.url,
                    "live": True,
                }
            },
        )
        assert created.status_code == 201, created.text
        data = created.json()["data"]
        secret, rule_id = data["webhook_secret"], data["rule"]["rule_id"]
        leak_scan.register(leak_scan.CLIENT_SECRET, secret)
        assert data["rule"]["spec"]["device_ids"] == [device]

        ready = asyncio.Event()
        watcher = asyncio.create_task(first_sse_event(http, "/v1/alerts:watch", who, ready))
        await asyncio.wait_for(ready.wait(), 10)
        uploaded = await http.post(
            f"/v1/devices/{device}/readings",
            headers=who,
            json={"metric_name": "temperature", "readings": spiked_readings()},
        )
        assert uploaded.status_code in (200, 201), uploaded.text

        [call] = await receiver.wait(1, within=20)
        assert call.verify(secret)
        assert call.json()["rule_id"] == rule_id and call.json()["event_count"] == 1
        live = await asyncio.wait_for(watcher, 20)
        assert (live["rule_id"], live["device_id"], live["kind"]) == (rule_id, device, "anomaly")
        email = await mailbox.wait("oncall@example.com", "kiln spikes")
        assert device in email.get_content()

        listed = (await http.get(f"/v1/alert-rules/{rule_id}", headers=who)).json()["data"]
        assert listed["firing"] is True and secret not in json.dumps(listed)
        page = (await http.get(f"/v1/alert-rules/{rule_id}/deliveries", headers=who)).json()
        channels = {d["channel"] for d in page["data"]["deliveries"]}
        assert channels == {"email", "webhook"} and page["data"]["pagination"]["total"] == 2

        acked = await http.post(f"/v1/alert-rules/{rule_id}:acknowledge", headers=who, json={})
        assert acked.status_code == 200 and acked.json()["data"]["acknowledged"] is True


async def test_bad_rules_answer_field_errors_and_others_rules_are_not_found(
    http: httpx.AsyncClient,
) -> None:
    who = await rest_user(http)
    bad = await http.post(
        "/v1/alert-rules",
        headers=who,
        json={"spec": {"name": "x", "kind": "threshold", "webhook_url": "ftp://x/y"}},
    )
    assert bad.status_code == 400
    body = bad.json()
    assert body["error"]["error_code"] == "VALIDATION_FAILED"
    assert {e["field"] for e in body["data"]["errors"]} == {
        "spec.direction",
        "spec.webhook_url",
    }
    created = await http.post(
        "/v1/alert-rules",
        headers=who,
        json={"spec": {"name": "x", "kind": "anomaly", "live": True}},
    )
    leak_scan.register(leak_scan.CLIENT_SECRET, created.json()["data"]["webhook_secret"])
    rule_id = created.json()["data"]["rule"]["rule_id"]
    stranger = await rest_user(http)
    answer = await http.delete(f"/v1/alert-rules/{rule_id}", headers=stranger)
    assert answer.status_code == 404 and answer.json()["error"]["error_code"] == "RULE_NOT_FOUND"
    mine = await http.delete(f"/v1/alert-rules/{rule_id}", headers=who)
    assert mine.status_code == 200 and mine.json()["data"]["rule_id"] == rule_id
