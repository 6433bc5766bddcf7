"""The alert rules' pure parts: quiet hours, signatures, webhook targets, the alert state."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from services.analytics.alerts.delivery import (
    TargetRefused,
    check_url_form,
    resolve_target,
    sign,
)
from services.analytics.alerts.engine import Hit, in_quiet_hours, record, threshold_hits
from services.analytics.alerts.store import AlertRuleRow
from services.analytics.alerts.values import Event, Rule, RuleSpec, RuleState
from services.analytics.analytics.analysis import ChunkIn

NOW = datetime(2026, 7, 1, 21, 30, tzinfo=UTC)  # 23:30 in Paris (summer time)


def rule(**fields: object) -> Rule:
    spec = RuleSpec(**{"name": "r", "kind": "threshold", "live": True, **fields})  # type: ignore[arg-type]
    return Rule("r1", "owner", spec, RuleState(), NOW, NOW)


def test_quiet_hours_are_read_in_the_rules_time_zone_and_may_span_midnight() -> None:
    night = {"quiet_start": "22:00", "quiet_end": "07:00"}
    assert in_quiet_hours(rule(**night, time_zone="Europe/Paris"), NOW)
    assert not in_quiet_hours(rule(**night, time_zone="America/New_York"), NOW)  # 17:30
    assert not in_quiet_hours(rule(**night), NOW)  # UTC: 21:30
    assert in_quiet_hours(rule(quiet_start="21:00", quiet_end="22:00"), NOW)
    assert not in_quiet_hours(rule(quiet_start="21:00", quiet_end="21:30"), NOW)  # end excluded
    assert not in_quiet_hours(rule(), NOW)


def test_the_signature_is_the_hmac_of_timestamp_dot_body() -> None:
    body = b'{"rule_id":"r1"}'
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("s3cret", 1700000000, body) == f"sha256={expected}"
    assert sign("s3cret", 1700000001, body) != sign("s3cret", 1700000000, body)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/x",
        "https://127.1.2.3/x",
        "https://10.0.0.1/x",
        "https://172.16.5.4/x",
        "https://192.168.1.1/x",
        "https://169.254.169.254/x",
        "https://[::1]/x",
        "https://[fe80::1]/x",
        "https://[fd00::1]/x",
        "https://[::ffff:10.0.0.1]/x",
        "https://0.0.0.0/x",
        "https://100.64.0.1/x",
        "https://224.0.0.1/x",
    ],
)
async def test_non_public_targets_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(TargetRefused):
        await resolve_target(url, allow_private=False)
    assert (await resolve_target(url, allow_private=True)).url == url


def test_url_forms_that_are_never_called() -> None:
    assert check_url_form("http://example.com/x", allow_private=False) == "must be an https URL"
    assert check_url_form("http://example.com/x", allow_private=True) is None
    assert check_url_form("https://u:p@example.com/x", allow_private=False)
    assert check_url_form("https://example.com:99999/x", allow_private=False)
    assert check_url_form("https:///x", allow_private=False)
    assert check_url_form("https://example.com/x#frag", allow_private=False)


def _row() -> AlertRuleRow:
    return AlertRuleRow(
        subjects=[], acknowledged=False, pending_events=0, first_pending_us=0, last_event={}
    )


def _hit(subject: str, *, holds: bool = True, count: int = 1) -> Hit:
    return Hit(subject, Event("d", subject, 5, 1.0, "s"), count, holds)


def test_an_acknowledged_alert_counts_no_repeats_until_a_new_subject_or_a_clear() -> None:
    row = _row()
    record(row, [_hit("a")], set(), NOW)
    assert (row.subjects, row.pending_events) == (["a"], 1)
    row.pending_events, row.acknowledged = 0, True
    record(row, [_hit("a", count=3)], set(), NOW)  # a repeat
    assert (row.pending_events, row.acknowledged) == (0, True)
    record(row, [_hit("b")], set(), NOW)  # a new subject: a new alert
    assert (row.subjects, row.pending_events, row.acknowledged) == (["a", "b"], 1, False)
    row.acknowledged = True
    record(row, [], {"a", "b"}, NOW)  # cleared
    assert (row.subjects, row.acknowledged) == ([], False)


def test_a_threshold_crossing_counts_readings_past_the_value_and_clears_when_back() -> None:
    spec = rule(direction="above", value=25.0)
    chunk = ChunkIn(
        position=1,
        stream_id="s",
        device_id="d",
        owner_id="owner",
        device_type="generic",
        sampling_period_us=0,
        timestamps=np.arange(5, dtype=np.int64),
        values=np.array([20.0, 26.0, np.nan, 27.0, 24.0]),
    )
    hits, cleared = threshold_hits(spec, [chunk])
    assert [(h.count, h.holds, h.event.value) for h in hits] == [(2, False, 27.0)]
    assert cleared == set()
    back = replace(chunk, values=np.array([20.0, 21.0, 22.0, 23.0, 24.0]))
    assert threshold_hits(spec, [back]) == ([], {"s"})
    someone_else = replace(chunk, owner_id="other")
    assert threshold_hits(spec, [someone_else]) == ([], set())
