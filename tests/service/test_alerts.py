"""Alert rules over real gRPC, on SQLite and PostgreSQL: rule CRUD and field errors, an
anomaly reaching a real SMTP server and a signed webhook, retries and dead letters, refused
private targets, grouping, quiet hours, acknowledgement, silent devices and readings past a
value.

Readings reach analytics as telemetry forwards them (AnalyzeReadings with a service token),
so most tests run auth and analytics only; a rule naming streams or devices needs real ones
of its owner (analytics asks telemetry, which asks devices), so those tests run the four.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import numpy as np
import pytest

from iot.analytics.v1 import alerts_pb2, alerts_pb2_grpc, analytics_pb2, analytics_pb2_grpc
from iot.auth.v1 import auth_pb2, auth_pb2_grpc, profile_pb2, profile_pb2_grpc
from iot.devices.v1 import devices_pb2, devices_pb2_grpc
from iot.telemetry.v1 import telemetry_pb2, telemetry_pb2_grpc
from iotkit.config import PLACEHOLDER_SECRET
from iotkit.errors import reason_of, violations_of
from tests import leak_scan
from tests.alerts_support import Receiver, webhook_receiver
from tests.conftest import Backend, Suite, open_backend, start_suite
from tests.service.auth_support import ADMIN_EMAIL, ADMIN_PASSWORD, Mailbox
from tests.support import bearer, free_port, new_user

SECOND = 1_000_000
SPIKE_AT = 250
# Fast retries and ticks: the tests check behaviour, not the production pace.
FAST: dict[str, Any] = {
    "alerts_allow_private_webhooks": True,
    "alerts_retry_base_seconds": 0.05,
    "alerts_max_attempts": 3,
    "alerts_check_seconds": 0.1,
}


@dataclass
class Env:
    suite: Suite
    auth: auth_pb2_grpc.AuthServiceStub
    alerts: alerts_pb2_grpc.AlertServiceStub
    analytics: analytics_pb2_grpc.AnalyticsServiceStub
    positions: Iterator[int]
    auth_channel: grpc.aio.Channel
    backend: Backend
    devices: devices_pb2_grpc.DeviceServiceStub | None = None
    telemetry: telemetry_pb2_grpc.TelemetryServiceStub | None = None

    async def user(self) -> tuple[list[tuple[str, str]], str]:
        login = await new_user(self.auth)
        return bearer(login.access_token), login.user.uuid

    async def device(self, owner: list[tuple[str, str]]) -> str:
        """A new device of ``owner``'s (the devices service runs: ``fleet``)."""
        assert self.devices is not None, "a test naming devices takes the fleet fixture"
        device = await self.devices.RegisterDevice(
            devices_pb2.RegisterDeviceRequest(name="boiler", type="temperature"), metadata=owner
        )
        return device.device_id

    async def stream(self, owner: list[tuple[str, str]], device: str) -> str:
        """A new stream of ``owner``'s device (telemetry runs: ``fleet``)."""
        assert self.telemetry is not None, "a test naming streams takes the fleet fixture"
        stream = await self.telemetry.CreateStream(
            telemetry_pb2.CreateStreamRequest(
                device_id=device, metric_name="temperature", sampling_rate=1
            ),
            metadata=owner,
        )
        return stream.stream_id

    async def service_token(self) -> list[tuple[str, str]]:
        """Call metadata of telemetry's service token."""
        token = await self.auth.IssueServiceToken(
            auth_pb2.IssueServiceTokenRequest(service="telemetry", client_secret=PLACEHOLDER_SECRET)
        )
        return bearer(token.token)

    async def feed(self, chunks: list[analytics_pb2.StreamChunk]) -> None:
        """Forward ``chunks`` as telemetry does, one request each, in order."""
        metadata = await self.service_token()

        async def requests() -> AsyncIterator[analytics_pb2.AnalysisRequest]:
            for one in chunks:
                yield analytics_pb2.AnalysisRequest(chunks=[one])

        call = self.analytics.AnalyzeReadings(requests(), metadata=metadata)
        answers = [answer async for answer in call]
        assert len(answers) == len(chunks)

    def chunk(
        self, owner_id: str, *, stream: str, device: str, values: list[float], start_us: int
    ) -> analytics_pb2.StreamChunk:
        return analytics_pb2.StreamChunk(
            position=next(self.positions),
            stream_id=stream,
            device_id=device,
            owner_id=owner_id,
            device_type="temperature",
            metric_name="temperature",
            sampling_rate=1,
            timestamps=[start_us + i * SECOND for i in range(len(values))],
            values=values,
        )

    def spike(
        self, owner_id: str, *, stream: str = "", device: str = ""
    ) -> analytics_pb2.StreamChunk:
        """A new stream's first 300 readings of a steady 21 °C with one +9 °C spike after the
        detector's warm-up: one anomaly."""
        rng = np.random.default_rng(5)
        values = np.round(21 + rng.uniform(-0.05, 0.05, 300), 2)
        values[SPIKE_AT] += 9.0
        start = (int(time.time()) - 3600) * SECOND
        return self.chunk(
            owner_id,
            stream=stream or str(uuid.uuid4()),
            device=device or str(uuid.uuid4()),
            values=[float(v) for v in values],
            start_us=start,
        )


async def _env(
    backend: Backend, services: tuple[str, ...] = ("auth", "analytics"), **settings: Any
) -> AsyncIterator[Env]:
    suite = await start_suite(backend, services, **settings)
    try:
        async with (
            grpc.aio.insecure_channel(suite.address("auth")) as a,
            grpc.aio.insecure_channel(suite.address("analytics")) as n,
            grpc.aio.insecure_channel(suite.address("devices")) as d,
            grpc.aio.insecure_channel(suite.address("telemetry")) as t,
        ):
            yield Env(
                suite,
                auth_pb2_grpc.AuthServiceStub(a),
                alerts_pb2_grpc.AlertServiceStub(n),
                analytics_pb2_grpc.AnalyticsServiceStub(n),
                iter(range(1, 1_000_000)),
                a,
                backend,
                devices_pb2_grpc.DeviceServiceStub(d) if "devices" in services else None,
                telemetry_pb2_grpc.TelemetryServiceStub(t) if "telemetry" in services else None,
            )
    finally:
        await suite.aclose()


@pytest.fixture
async def env(backend: Backend, mailbox: Mailbox) -> AsyncIterator[Env]:
    """Auth and analytics, alert emails to the test's SMTP server, private webhooks allowed."""
    async for running in _env(backend, smtp_url=mailbox.url, **FAST):
        yield running


@pytest.fixture
async def fleet(backend: Backend, mailbox: Mailbox) -> AsyncIterator[Env]:
    """As ``env``, with devices and telemetry too (and the admin account): for rules that
    name streams and devices, which must be their owner's."""
    async for running in _env(
        backend,
        ("auth", "devices", "telemetry", "analytics"),
        smtp_url=mailbox.url,
        admin_email=ADMIN_EMAIL,
        admin_password=ADMIN_PASSWORD,
        **FAST,
    ):
        yield running


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as running:
        yield running


def spec(**fields: Any) -> alerts_pb2.AlertRuleSpec:
    """An anomaly rule with the live feed unless told otherwise."""
    return alerts_pb2.AlertRuleSpec(**{"name": "hot", "kind": "anomaly", "live": True, **fields})


async def create(env: Env, owner: list[tuple[str, str]], **fields: Any) -> tuple[str, str]:
    """A new rule's id and signing secret."""
    created = await env.alerts.CreateAlertRule(
        alerts_pb2.CreateAlertRuleRequest(spec=spec(**fields)), metadata=owner
    )
    leak_scan.register(leak_scan.CLIENT_SECRET, created.webhook_secret)
    return created.rule.rule_id, created.webhook_secret


async def deliveries(
    env: Env, owner: list[tuple[str, str]], rule_id: str, *, settled: int, within: float = 10.0
) -> list[alerts_pb2.Delivery]:
    """A rule's deliveries once ``settled`` of them are delivered or dead."""
    deadline = time.monotonic() + within
    while True:
        page = await env.alerts.ListDeliveries(
            alerts_pb2.ListDeliveriesRequest(rule_id=rule_id), metadata=owner
        )
        done = [d for d in page.deliveries if d.status != "pending"]
        if len(done) >= settled or time.monotonic() > deadline:
            return list(page.deliveries)
        await asyncio.sleep(0.05)


async def test_rules_are_created_listed_changed_and_deleted_by_their_owner_only(
    env: Env,
) -> None:
    owner, owner_id = await env.user()
    created = await env.alerts.CreateAlertRule(
        alerts_pb2.CreateAlertRuleRequest(
            spec=spec(
                name="  boiler  ",
                anomaly_types=["spike"],
                min_confidence=0.8,
                email_to="ops@example.com",
                period_seconds=300,
            )
        ),
        metadata=owner,
    )
    leak_scan.register(leak_scan.CLIENT_SECRET, created.webhook_secret)
    rule = created.rule
    assert created.webhook_secret.startswith("whsec_") and len(created.webhook_secret) > 40
    assert (rule.owner_id, rule.spec.name, rule.spec.min_confidence) == (owner_id, "boiler", 0.8)
    assert not rule.firing and rule.pending_events == 0

    got = await env.alerts.GetAlertRule(
        alerts_pb2.GetAlertRuleRequest(rule_id=rule.rule_id), metadata=owner
    )
    assert got.spec == rule.spec
    # The secret is shown once: no later answer carries it, and it is stored sealed.
    assert created.webhook_secret not in str(got)
    [(sealed,)] = await env.backend.sql(
        "analytics", "SELECT sealed_secret FROM alert_rules WHERE id = ?", (rule.rule_id,)
    )
    assert isinstance(sealed, bytes | memoryview) and created.webhook_secret.encode() not in bytes(
        sealed
    )

    changed = await env.alerts.UpdateAlertRule(
        alerts_pb2.UpdateAlertRuleRequest(
            rule_id=rule.rule_id, spec=alerts_pb2.AlertRuleSpec(paused=True), fields=["paused"]
        ),
        metadata=owner,
    )
    assert changed.spec.paused and changed.spec.name == "boiler"
    rotated = await env.alerts.RotateWebhookSecret(
        alerts_pb2.RotateWebhookSecretRequest(rule_id=rule.rule_id), metadata=owner
    )
    leak_scan.register(leak_scan.CLIENT_SECRET, rotated.webhook_secret)
    assert rotated.webhook_secret not in ("", created.webhook_secret)

    stranger, _ = await env.user()
    for call in (
        env.alerts.GetAlertRule(
            alerts_pb2.GetAlertRuleRequest(rule_id=rule.rule_id), metadata=stranger
        ),
        env.alerts.DeleteAlertRule(
            alerts_pb2.DeleteAlertRuleRequest(rule_id=rule.rule_id), metadata=stranger
        ),
        env.alerts.ListDeliveries(
            alerts_pb2.ListDeliveriesRequest(rule_id=rule.rule_id), metadata=stranger
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert reason_of(caught.value) == "RULE_NOT_FOUND"
    theirs = await env.alerts.ListAlertRules(alerts_pb2.ListAlertRulesRequest(), metadata=stranger)
    assert list(theirs.rules) == [] and theirs.pagination.total == 0
    mine = await env.alerts.ListAlertRules(alerts_pb2.ListAlertRulesRequest(), metadata=owner)
    assert [r.rule_id for r in mine.rules] == [rule.rule_id]

    await env.alerts.DeleteAlertRule(
        alerts_pb2.DeleteAlertRuleRequest(rule_id=rule.rule_id), metadata=owner
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.alerts.GetAlertRule(
            alerts_pb2.GetAlertRuleRequest(rule_id=rule.rule_id), metadata=owner
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_bad_rules_name_each_bad_field(env: Env) -> None:
    owner, _ = await env.user()
    bad = alerts_pb2.AlertRuleSpec(
        name=" ",
        kind="threshold",
        stream_ids=["not-a-uuid"],
        anomaly_types=["meteor"],
        min_confidence=1.5,
        direction="sideways",
        value=float("nan"),
        email_to="nobody",
        webhook_url="ftp://example.com/hook",
        period_seconds=-1,
        quiet_start="25:00",
        time_zone="Mars/Olympus",
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.alerts.CreateAlertRule(
            alerts_pb2.CreateAlertRuleRequest(spec=bad), metadata=owner
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = {v.field for v in violations_of(caught.value)}
    assert fields == {
        "spec.name",
        "spec.stream_ids",
        "spec.anomaly_types",
        "spec.min_confidence",
        "spec.direction",
        "spec.value",
        "spec.email_to",
        "spec.webhook_url",
        "spec.period_seconds",
        "spec.quiet_start",
        "spec.quiet_end",
        "spec.time_zone",
    }
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.alerts.CreateAlertRule(
            alerts_pb2.CreateAlertRuleRequest(
                spec=alerts_pb2.AlertRuleSpec(name="x", kind="silence")
            ),
            metadata=owner,
        )
    assert {v.field for v in violations_of(caught.value)} == {
        "spec.silence_seconds",
        "spec.webhook_url",  # no channel chosen
    }
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.alerts.GetAlertRule(
            alerts_pb2.GetAlertRuleRequest(rule_id="nope"), metadata=owner
        )
    assert [v.field for v in violations_of(caught.value)] == ["rule_id"]


async def test_a_rule_names_only_streams_and_devices_its_owner_may_read(fleet: Env) -> None:
    """Another user's stream or device, or an unknown one, is 404 naming the field, on create
    and on update (the rule stays as it was); the owner's are taken; an admin may name any."""
    env = fleet
    victim, _ = await env.user()
    device = await env.device(victim)
    stream = await env.stream(victim, device)
    mallory, _ = await env.user()

    async def refused(call: Any, reason: str, field: str) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND, caught.value.details()
        assert reason_of(caught.value) == reason
        assert field in (caught.value.details() or "")

    theirs: list[tuple[dict[str, Any], str]] = [
        ({"kind": "silence", "silence_seconds": 60, "device_ids": [device]}, "DEVICE_NOT_FOUND"),
        ({"device_ids": [str(uuid.uuid4())]}, "DEVICE_NOT_FOUND"),  # unknown alike
        ({"stream_ids": [stream]}, "STREAM_NOT_FOUND"),
        ({"stream_ids": [str(uuid.uuid4())]}, "STREAM_NOT_FOUND"),
    ]
    for fields, reason in theirs:
        field = "spec." + next(k for k in fields if k.endswith("_ids"))
        await refused(
            env.alerts.CreateAlertRule(
                alerts_pb2.CreateAlertRuleRequest(spec=spec(**fields)), metadata=mallory
            ),
            reason,
            field,
        )
    # Mallory's own device among the ids does not let the victim's through.
    own = await env.device(mallory)
    await refused(
        env.alerts.CreateAlertRule(
            alerts_pb2.CreateAlertRuleRequest(spec=spec(device_ids=[own, device])),
            metadata=mallory,
        ),
        "DEVICE_NOT_FOUND",
        "spec.device_ids",
    )
    listed = await env.alerts.ListAlertRules(alerts_pb2.ListAlertRulesRequest(), metadata=mallory)
    assert listed.pagination.total == 0

    rule_id, _ = await create(env, mallory, device_ids=[own])
    for fields, reason in theirs:
        ids = {k: v for k, v in fields.items() if k.endswith("_ids")}
        await refused(
            env.alerts.UpdateAlertRule(
                alerts_pb2.UpdateAlertRuleRequest(
                    rule_id=rule_id, spec=spec(**ids), fields=list(ids)
                ),
                metadata=mallory,
            ),
            reason,
            "spec." + next(iter(ids)),
        )
    kept = await env.alerts.GetAlertRule(
        alerts_pb2.GetAlertRuleRequest(rule_id=rule_id), metadata=mallory
    )
    assert (list(kept.spec.device_ids), list(kept.spec.stream_ids)) == ([own], [])
    # Changing another field asks nothing of the ids.
    paused = await env.alerts.UpdateAlertRule(
        alerts_pb2.UpdateAlertRuleRequest(
            rule_id=rule_id, spec=alerts_pb2.AlertRuleSpec(paused=True), fields=["paused"]
        ),
        metadata=mallory,
    )
    assert paused.spec.paused

    # The owner names their own; an administrator may name anyone's.
    await create(env, victim, device_ids=[device], stream_ids=[stream])
    admin = await env.auth.Login(auth_pb2.LoginRequest(email=ADMIN_EMAIL, password=ADMIN_PASSWORD))
    await create(env, bearer(admin.access_token), device_ids=[device], stream_ids=[stream])

    # Telemetry away: "try again", never "not found" for the caller's own device.
    await env.suite.stop("telemetry")
    with pytest.raises(grpc.aio.AioRpcError) as away:
        await create(env, victim, device_ids=[device])
    assert away.value.code() == grpc.StatusCode.UNAVAILABLE
    assert reason_of(away.value) == "SERVICE_UNAVAILABLE"
    await create(env, victim)  # a rule naming no ids asks nothing


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_webhooks_to_private_addresses_are_refused_without_the_admin_setting(
    backend: Backend,
) -> None:
    async for env in _env(backend):
        owner, _ = await env.user()
        for url in (
            "https://127.0.0.1/hook",
            "https://10.1.2.3/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/hook",
            "https://[::ffff:127.0.0.1]/hook",
            "https://localhost/hook",
            "http://93.184.215.14/hook",  # public, but plain http
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await env.alerts.CreateAlertRule(
                    alerts_pb2.CreateAlertRuleRequest(spec=spec(webhook_url=url)), metadata=owner
                )
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, url
            assert [v.field for v in violations_of(caught.value)] == ["spec.webhook_url"], url


async def test_watching_alerts_of_a_rule_id_that_is_no_uuid_is_400(env: Env) -> None:
    # It was a watch that matched nothing, forever, without saying why.
    owner, _ = await env.user()
    watch = env.alerts.WatchAlerts(alerts_pb2.WatchAlertsRequest(rule_id="nope"), metadata=owner)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(watch.read(), 5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in violations_of(caught.value)] == ["rule_id"]


async def test_a_spike_sends_an_email_and_a_signed_webhook(
    env: Env, mailbox: Mailbox, receiver: Receiver
) -> None:
    owner, owner_id = await env.user()
    rule_id, secret = await create(
        env, owner, webhook_url=receiver.url, email_to="oncall@example.com", min_confidence=0.5
    )
    watch = env.alerts.WatchAlerts(alerts_pb2.WatchAlertsRequest(), metadata=owner)
    await watch.initial_metadata()
    device = str(uuid.uuid4())
    spike = env.spike(owner_id, device=device)
    await env.feed([spike])

    [call] = await receiver.wait(1)
    assert call.verify(secret)
    assert not call.verify(secret + "x")
    body = call.json()
    assert (body["rule_id"], body["kind"], body["event_count"]) == (rule_id, "anomaly", 1)
    assert body["last_event"]["device_id"] == device
    assert body["last_event"]["value"] == pytest.approx(spike.values[SPIKE_AT])
    assert abs(int(call.headers["x-iot-timestamp"]) - time.time()) < 300

    email = await mailbox.wait("oncall@example.com", "hot")
    assert device in email.get_content() and "spike" in email.get_content()

    live = await asyncio.wait_for(watch.read(), 10)
    assert (live.rule_id, live.device_id, live.event_count) == (rule_id, device, 1)
    watch.cancel()

    done = await deliveries(env, owner, rule_id, settled=2)
    assert sorted((d.channel, d.status, d.attempts) for d in done) == [
        ("email", "delivered", 1),
        ("webhook", "delivered", 1),
    ]
    assert all([(a.outcome, a.error) for a in d.attempt_log] == [("delivered", "")] for d in done)
    # Another user's anomalies never reach this rule.
    _, other_id = await env.user()
    await env.feed([env.spike(other_id)])
    rule = await env.alerts.GetAlertRule(
        alerts_pb2.GetAlertRuleRequest(rule_id=rule_id), metadata=owner
    )
    assert rule.firing and rule.pending_events == 0
    assert len(receiver.calls) == 1


async def test_failing_webhooks_are_retried_then_dead_lettered(env: Env) -> None:
    owner, owner_id = await env.user()
    with webhook_receiver(statuses=[500] * 10) as failing:
        rule_id, _ = await create(env, owner, webhook_url=failing.url)
        await env.feed([env.spike(owner_id)])
        [dead] = await deliveries(env, owner, rule_id, settled=1)
        assert (dead.status, dead.attempts, dead.last_error) == ("dead", 3, "HTTP 500")
        assert len(failing.calls) == 3
        # Each attempt is kept, in order, with what it got.
        log = [(a.outcome, a.error) for a in dead.attempt_log]
        assert log == [("failed", "HTTP 500")] * 3
        times = [a.attempted_at.ToMicroseconds() for a in dead.attempt_log]
        assert times == sorted(times) and times[0] > 0
        # Every retry is the same delivery, signed again.
        assert len({c.headers["x-iot-delivery"] for c in failing.calls}) == 1
    rule = await env.alerts.GetAlertRule(
        alerts_pb2.GetAlertRuleRequest(rule_id=rule_id), metadata=owner
    )
    assert rule.dead_deliveries == 1


async def test_a_slow_receiver_holds_up_only_its_own_calls(fleet: Env, receiver: Receiver) -> None:
    env = fleet
    owner, owner_id = await env.user()
    slow_device, fast_device = await env.device(owner), await env.device(owner)
    answer = threading.Event()
    with webhook_receiver(hold=answer) as slow:
        slow_rule, _ = await create(env, owner, webhook_url=slow.url, device_ids=[slow_device])
        await create(env, owner, webhook_url=receiver.url, device_ids=[fast_device])
        await env.feed([env.spike(owner_id, device=slow_device)])
        await slow.wait(1, within=30)  # called, and not answered
        await env.feed([env.spike(owner_id, device=fast_device)])
        [call] = await receiver.wait(1, within=30)
        assert call.json()["last_event"]["device_id"] == fast_device
        # The slow call is still waiting for its answer: no attempt of it has ended.
        [held] = await deliveries(env, owner, slow_rule, settled=0, within=0)
        assert (held.status, held.attempts) == ("pending", 0)
        answer.set()
        [done] = await deliveries(env, owner, slow_rule, settled=1, within=30)
        assert (done.status, done.attempts) == ("delivered", 1)


async def test_events_within_a_period_are_grouped_into_one_message(
    env: Env, receiver: Receiver
) -> None:
    owner, owner_id = await env.user()
    rule_id, _ = await create(env, owner, webhook_url=receiver.url, period_seconds=2)
    await env.feed([env.spike(owner_id) for _ in range(4)])
    # The first anomaly goes out at once; those found within the period after it wait and go
    # out together (two messages, 1 and 3, unless the machine took a period to analyse them).
    counts: list[int] = []
    deadline = time.monotonic() + 10
    while sum(counts) < 4 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        counts = [call.json()["event_count"] for call in receiver.calls]
    assert sum(counts) == 4 and counts[0] == 1
    assert len(counts) < 4 and max(counts) >= 2
    assert {call.json()["rule_id"] for call in receiver.calls} == {rule_id}


async def test_anomalies_stored_together_are_evaluated_in_one_round(
    env: Env, receiver: Receiver
) -> None:
    """Anomalies that reach the rules together make one write and one message per rule,
    whatever the period: evaluation keeps up however many arrive at once."""
    owner, owner_id = await env.user()
    rule_id, _ = await create(env, owner, webhook_url=receiver.url)  # no period: no grouping
    metadata = await env.service_token()
    request = analytics_pb2.AnalysisRequest(chunks=[env.spike(owner_id) for _ in range(20)])
    answers = [
        answer async for answer in env.analytics.AnalyzeReadings(iter([request]), metadata=metadata)
    ]
    assert len(answers) == 1
    counts: list[int] = []
    deadline = time.monotonic() + 10
    while sum(counts) < 20 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        counts = [call.json()["event_count"] for call in receiver.calls]
    assert counts == [20]
    assert {call.json()["rule_id"] for call in receiver.calls} == {rule_id}


async def test_quiet_hours_hold_messages_until_they_end(env: Env, receiver: Receiver) -> None:
    owner, owner_id = await env.user()
    # The rule names no zone: the user's profile does (9 hours from UTC, so hours read in
    # UTC would not be quiet now).
    zone = "Asia/Tokyo"
    request = profile_pb2.UpdateProfileRequest()
    request.metadata.update({"timezone": zone})
    await profile_pb2_grpc.ProfileServiceStub(env.auth_channel).UpdateProfile(
        request, metadata=owner
    )
    local = datetime.now(UTC).astimezone(ZoneInfo(zone))
    quiet = {
        "quiet_start": (local - timedelta(hours=1)).strftime("%H:%M"),
        "quiet_end": (local + timedelta(hours=1)).strftime("%H:%M"),
    }
    rule_id, _ = await create(env, owner, webhook_url=receiver.url, **quiet)
    saved = await env.alerts.GetAlertRule(
        alerts_pb2.GetAlertRuleRequest(rule_id=rule_id), metadata=owner
    )
    assert saved.spec.time_zone == zone
    await env.feed([env.spike(owner_id), env.spike(owner_id)])
    rule = await wait_rule(env, owner, rule_id, lambda r: r.pending_events == 2)
    assert rule.firing and receiver.calls == []
    # The quiet hours end (here: are taken away): what was held goes out, counted.
    await env.alerts.UpdateAlertRule(
        alerts_pb2.UpdateAlertRuleRequest(
            rule_id=rule_id, spec=alerts_pb2.AlertRuleSpec(), fields=["quiet_start", "quiet_end"]
        ),
        metadata=owner,
    )
    [call] = await receiver.wait(1)
    assert call.json()["event_count"] == 2


async def test_an_acknowledged_alert_stops_repeating_until_a_new_one_begins(
    env: Env, receiver: Receiver
) -> None:
    owner, owner_id = await env.user()
    rule_id, _ = await create(env, owner, webhook_url=receiver.url)
    stream = str(uuid.uuid4())
    first = env.spike(owner_id, stream=stream)
    await env.feed([first])
    await receiver.wait(1)
    acked = await env.alerts.AcknowledgeAlert(
        alerts_pb2.AcknowledgeAlertRequest(rule_id=rule_id), metadata=owner
    )
    assert acked.firing and acked.acknowledged
    # The same stream again: a repeat of the acknowledged alert, not sent. Then another stream:
    # a new alert, sent.
    repeat = env.chunk(
        owner_id,
        stream=stream,
        device=first.device_id,
        values=[21.0] * 100 + [30.0] + [21.0] * 99,
        start_us=first.timestamps[-1] + SECOND,
    )
    other = str(uuid.uuid4())
    await env.feed([repeat, env.spike(owner_id, stream=other)])
    calls = await receiver.wait(2)
    found = await env.analytics.ListAnomalies(analytics_pb2.ListAnomaliesRequest(), metadata=owner)
    # The repeat was found (more than the first anomaly on its stream), just not sent.
    assert [a.stream_id for a in found.anomalies].count(stream) >= 2
    assert calls[1].json()["last_event"]["stream_id"] == other
    assert calls[1].json()["event_count"] == 1
    rule = await env.alerts.GetAlertRule(
        alerts_pb2.GetAlertRuleRequest(rule_id=rule_id), metadata=owner
    )
    assert not rule.acknowledged
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        quiet_rule, _ = await create(env, owner, webhook_url=receiver.url)
        await env.alerts.AcknowledgeAlert(
            alerts_pb2.AcknowledgeAlertRequest(rule_id=quiet_rule), metadata=owner
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_a_silent_device_and_a_reading_past_a_value_fire(
    fleet: Env, receiver: Receiver
) -> None:
    env = fleet
    owner, owner_id = await env.user()
    device = await env.device(owner)
    stream = await env.stream(owner, device)
    silence_id, _ = await create(
        env, owner, kind="silence", silence_seconds=1, device_ids=[device], webhook_url=receiver.url
    )
    threshold_id, _ = await create(
        env,
        owner,
        kind="threshold",
        direction="above",
        value=25.0,
        stream_ids=[stream],
        webhook_url=receiver.url,
    )
    # A decommissioned device is gone, not silent: its late chunk never makes it silent.
    gone = await env.device(owner)
    gone_id, _ = await create(
        env, owner, kind="silence", silence_seconds=1, device_ids=[gone], webhook_url=receiver.url
    )
    await env.analytics.ForgetDevice(
        analytics_pb2.ForgetDeviceRequest(device_id=gone), metadata=await env.service_token()
    )
    start = (int(time.time()) - 60) * SECOND
    await env.feed(
        [
            env.chunk(
                owner_id,
                stream=stream,
                device=device,
                values=[21.0, 26.5, 27.0, 22.0],
                start_us=start,
            ),
            env.chunk(
                owner_id, stream=str(uuid.uuid4()), device=gone, values=[21.0], start_us=start
            ),
        ]
    )
    calls = await receiver.wait(2)
    by_rule = {c.json()["rule_id"]: c.json() for c in calls}
    assert by_rule[threshold_id]["event_count"] == 2
    assert by_rule[threshold_id]["last_event"]["value"] == 27.0
    assert by_rule[silence_id]["kind"] == "silence"
    assert by_rule[silence_id]["last_event"]["device_id"] == device
    # The threshold alert closed with the last reading back below; the device is silent.
    silent = await wait_rule(env, owner, silence_id, lambda r: r.firing)
    assert silent.firing
    # The tick that found the device silent looked at the decommissioned one too.
    forgotten = await env.alerts.GetAlertRule(
        alerts_pb2.GetAlertRuleRequest(rule_id=gone_id), metadata=owner
    )
    assert not forgotten.firing and len(receiver.calls) == 2
    crossed = await env.alerts.GetAlertRule(
        alerts_pb2.GetAlertRuleRequest(rule_id=threshold_id), metadata=owner
    )
    assert not crossed.firing
    # The device reports again: the silence alert clears.
    await env.feed(
        [
            env.chunk(
                owner_id, stream=stream, device=device, values=[21.0], start_us=start + 10 * SECOND
            )
        ]
    )
    await wait_rule(env, owner, silence_id, lambda r: not r.firing)


async def wait_rule(
    env: Env, owner: list[tuple[str, str]], rule_id: str, test: Any, within: float = 10.0
) -> alerts_pb2.AlertRule:
    """The rule once ``test`` holds of it."""
    deadline = time.monotonic() + within
    while True:
        rule = await env.alerts.GetAlertRule(
            alerts_pb2.GetAlertRuleRequest(rule_id=rule_id), metadata=owner
        )
        if test(rule):
            return rule
        if time.monotonic() > deadline:
            raise AssertionError(f"rule never reached the state: {rule}")
        await asyncio.sleep(0.05)


async def test_a_live_message_reaches_the_watchers_of_every_analytics_replica(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    """Two analytics replicas on one PostgreSQL schema: the message one replica sends
    reaches the live feed of both, once each (PostgreSQL notices, ``iotkit.notices``)."""
    from services.analytics.wiring import build as build_analytics

    with open_backend("postgresql", tmp_path) as backend:
        async for env in _env(backend, smtp_url=mailbox.url, **FAST):
            second = await build_analytics(
                env.suite.settings,
                address=f"127.0.0.1:{free_port()}",
                schema=backend.schema("analytics"),
            )
            await second.built.start()
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{second.built.port}") as other:
                    owner, owner_id = await env.user()
                    rule_id, _ = await create(env, owner)
                    feeds = [
                        env.alerts.WatchAlerts(alerts_pb2.WatchAlertsRequest(), metadata=owner),
                        alerts_pb2_grpc.AlertServiceStub(other).WatchAlerts(
                            alerts_pb2.WatchAlertsRequest(), metadata=owner
                        ),
                    ]
                    for feed in feeds:
                        await feed.initial_metadata()
                    await _listening(backend, replicas=2)
                    device = str(uuid.uuid4())
                    await env.feed([env.spike(owner_id, device=device)])  # to the first only
                    for feed in feeds:
                        live = await asyncio.wait_for(feed.read(), 10)
                        assert (live.rule_id, live.device_id, live.event_count) == (
                            rule_id,
                            device,
                            1,
                        )
                    # Once each: the sender skips its own notice.
                    extra = [asyncio.ensure_future(feed.read()) for feed in feeds]
                    await asyncio.sleep(0.5)
                    assert not any(task.done() for task in extra)
                    for feed in feeds:
                        feed.cancel()
                    await asyncio.gather(*extra, return_exceptions=True)
                    stored = await backend.sql(
                        "analytics", "SELECT count(*) FROM alert_live_messages"
                    )
                    assert stored == [(1,)]
            finally:
                await second.aclose(grace=0)


async def _listening(backend: Backend, *, replicas: int) -> None:
    """Wait until ``replicas`` analytics replicas listen to the alerts channel (a notice
    sent before a replica listens is not heard by it)."""
    channel = f"iot_alerts_{backend.schema('analytics')}"[:63]
    deadline = time.monotonic() + 10
    while True:
        [(count,)] = await backend.sql(
            "analytics",
            "SELECT count(*) FROM pg_stat_activity WHERE query = ?",
            (f'LISTEN "{channel}"',),
        )
        if count == replicas or time.monotonic() > deadline:
            assert count == replicas
            return
        await asyncio.sleep(0.05)
