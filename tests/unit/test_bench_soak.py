"""The soak's bookkeeping: the ledger that decides "nothing lost", latency quantiles from a
histogram, errors counted from JSON logs, and memory growth over the second half."""

from __future__ import annotations

import json
import math
from collections import Counter

from bench.soak_accounts import (
    Ledger,
    Memory,
    error_lines,
    histogram_quantile,
    merge_histograms,
)


def test_a_ledger_balances_only_when_every_step_kept_every_reading() -> None:
    assert Ledger(sent=100, acknowledged=100, stored=100, analysed=100).balanced
    short = Ledger(sent=100, acknowledged=100, stored=100, analysed=90)
    assert not short.balanced
    assert short.gaps() == {
        "sent, not acknowledged": 0,
        "acknowledged, not stored": 0,
        "stored, not analysed": 10,
    }
    assert "stored, not analysed: +10" in short.describe()


def test_a_ledger_names_what_explains_a_shortfall_and_a_surplus() -> None:
    ledger = Ledger(sent=100, acknowledged=95, stored=97, analysed=97, rejected=3, unacked=2)
    text = ledger.describe()
    assert "rejected 3" in text and "unacknowledged at the end 2" in text
    assert "sent, not acknowledged: +5" in text
    # More stored than acknowledged (a reading stored twice) shows as a negative gap.
    assert "acknowledged, not stored: -2" in text
    assert "dropped" not in text


def test_readings_not_analysed_are_late_when_queued_and_lost_when_the_cursor_passed_them() -> None:
    late = Ledger(sent=100, acknowledged=100, stored=100, analysed=70, queued=30)
    assert (late.balanced, late.skipped) == (False, 0)
    assert "30 still queued after telemetry's forwarding cursor and 0 passed by it" in (
        late.describe()
    )
    lost = Ledger(sent=100, acknowledged=100, stored=100, analysed=70, queued=10)
    assert lost.skipped == 20
    assert "10 still queued" in lost.describe() and "20 passed by it unscored" in lost.describe()
    assert "queued" not in Ledger(sent=1, acknowledged=1, stored=1, analysed=1).describe()


def test_histogram_quantiles_are_the_smallest_bucket_holding_the_fraction() -> None:
    histogram = Counter({5: 98, 40: 1, 900: 1})
    assert histogram_quantile(histogram, 0.5) == 5.0
    assert histogram_quantile(histogram, 0.98) == 5.0
    assert histogram_quantile(histogram, 0.99) == 40.0
    assert histogram_quantile(histogram, 1.0) == 900.0
    assert math.isnan(histogram_quantile({}, 0.99))


def test_histograms_of_every_device_merge() -> None:
    merged = merge_histograms([Counter({1: 2, 3: 1}), Counter({3: 4}), Counter()])
    assert merged == Counter({1: 2, 3: 5})


def test_errors_are_json_log_lines_at_error_or_above() -> None:
    lines = [
        json.dumps({"level": "WARNING", "msg": "analytics unreachable"}),
        json.dumps({"level": "ERROR", "msg": "boom"}),
        json.dumps({"level": "CRITICAL", "msg": "worse"}),
        "Traceback (most recent call last):",
        json.dumps(["not", "an", "entry"]),
    ]
    assert error_lines(lines) == 2


def test_memory_is_flat_unless_the_second_half_grows_past_the_tolerance() -> None:
    assert Memory(start=100, middle=150, end=160).flat  # caches filled in the first half
    growing = Memory(start=100, middle=150, end=170)
    assert not growing.flat
    assert math.isclose(growing.growth, 20 / 150)
    assert Memory(start=100, middle=150, end=120).flat
