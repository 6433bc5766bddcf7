"""Scoring of detectors: NAB's sigmoid, windows and score, per-type F1, masking, the baseline."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.evaluation import (
    STANDARD,
    Label,
    nab_score,
    nab_windows,
    scaled_sigmoid,
    score_types,
    unmasked,
    windowed_gaussian,
)
from services.analytics.analytics.detectors import Finding

SECOND = 1_000_000
LENGTH = 1000 * SECOND
"""A series of 1,000 s: with two labels, each NAB window is 50 s wide."""


def finding(kind: str, t: int) -> Finding:
    return Finding(kind, t, 0.0, 1.0, 0.0)


def score(detections: list[int], labels: list[Label]) -> float:
    return nab_score(detections, labels, series_start=0, series_end=LENGTH)


TWO = [Label("spike", 300 * SECOND, 301 * SECOND), Label("dip", 700 * SECOND, 701 * SECOND)]


def test_scaled_sigmoid_at_the_window_start_end_and_far_after() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert scaled_sigmoid(-1.0) == pytest.approx(0.9866, abs=1e-4)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(3.5) == -1.0
    assert scaled_sigmoid(100.0) == -1.0
    assert -1.0 < scaled_sigmoid(3.0) < -0.9999  # just before the cut-off, already about -1


def test_windows_are_centred_on_labels_and_share_a_tenth_of_the_series() -> None:
    windows = nab_windows(TWO, series_start=0, series_end=LENGTH)
    assert windows == [(275 * SECOND, 325 * SECOND), (675 * SECOND, 725 * SECOND)]
    assert nab_windows([], series_start=0, series_end=LENGTH) == []


def test_overlapping_windows_merge() -> None:
    labels = [
        Label("spike", 520 * SECOND, 521 * SECOND),
        Label("spike", 500 * SECOND, 501 * SECOND),  # out of order on purpose
        Label("dip", 100 * SECOND, 101 * SECOND),
    ]
    # Three labels: windows of 33.3 s; those at 500 s and 520 s overlap and become one.
    windows = nab_windows(labels, series_start=0, series_end=LENGTH)
    width = 0.1 * LENGTH / 3
    assert len(windows) == 2
    assert windows[0] == (int(100 * SECOND - width / 2), int(100 * SECOND + width / 2))
    assert windows[1] == (int(500 * SECOND - width / 2), int(520 * SECOND + width / 2))


def test_a_window_covers_a_label_longer_than_it() -> None:
    labels = [Label("flatline", 100 * SECOND, 400 * SECOND)]
    assert nab_windows(labels, series_start=0, series_end=LENGTH) == [(50 * SECOND, 400 * SECOND)]


def test_nab_detecting_nothing_scores_zero() -> None:
    assert score([], TWO) == pytest.approx(0.0)


def test_nab_detecting_every_window_at_its_start_scores_100() -> None:
    starts = [lo for lo, _ in nab_windows(TWO, series_start=0, series_end=LENGTH)]
    assert score(starts, TWO) == pytest.approx(100.0)


def test_nab_counts_only_the_first_detection_in_a_window() -> None:
    starts = [lo for lo, _ in nab_windows(TWO, series_start=0, series_end=LENGTH)]
    assert score([*starts, 300 * SECOND, 310 * SECOND], TWO) == pytest.approx(100.0)


def test_nab_false_positives_lower_the_score() -> None:
    starts = [lo for lo, _ in nab_windows(TWO, series_start=0, series_end=LENGTH)]
    after = score([*starts, 500 * SECOND], TWO)  # long after the first window
    before = score([*starts, 10 * SECOND], TWO)  # before any window
    assert after < 100.0 and before < 100.0
    # Before every window a false positive costs its full weight.
    perfect = 2 * STANDARD.true_positive * scaled_sigmoid(-1.0)
    null = -2 * STANDARD.false_negative
    assert before == pytest.approx(
        100.0 * (perfect - STANDARD.false_positive - null) / (perfect - null)
    )
    assert score([*starts, 500 * SECOND, 550 * SECOND], TWO) < after


def test_nab_a_false_positive_just_after_a_window_costs_less_than_later() -> None:
    starts = [lo for lo, _ in nab_windows(TWO, series_start=0, series_end=LENGTH)]
    soon = score([*starts, 326 * SECOND], TWO)
    late = score([*starts, 500 * SECOND], TWO)
    assert late < soon < 100.0


def test_nab_a_later_detection_in_the_window_scores_less() -> None:
    early, middle, late = (score([t * SECOND], TWO) for t in (280, 300, 320))
    assert 0.0 < late < middle < early
    # At the window's end the sigmoid is 0: as good as missing it, without the miss's cost.
    at_end = score([325 * SECOND], TWO)
    assert at_end == pytest.approx(100.0 * 1.0 / (2 * scaled_sigmoid(-1.0) + 2))


def test_nab_with_no_labels_rewards_silence() -> None:
    assert score([], []) == 100.0
    assert score([5 * SECOND], []) == 0.0


def test_score_types_counts_hits_within_the_tolerance() -> None:
    labels = [
        Label("spike", 100 * SECOND, 101 * SECOND),
        Label("spike", 500 * SECOND, 501 * SECOND),
        Label("dip", 200 * SECOND, 201 * SECOND),
    ]
    findings = [
        finding("spike", 90 * SECOND),  # exactly the tolerance before: a hit
        finding("spike", 111 * SECOND),  # exactly the tolerance after the end: a hit too
        finding("spike", 111 * SECOND + 1),  # just past it: a false positive
        finding("spike", 200 * SECOND),  # on the dip's label, but of the wrong type
        finding("dip", 189 * SECOND),  # 11 s early: a miss and a false positive
    ]
    scores = score_types(labels, findings, tolerance_us=10 * SECOND, types=["spike", "dip", "gap"])
    spike = scores["spike"]
    assert (spike.labels, spike.findings, spike.true_positives, spike.detected_labels) == (
        2,
        4,
        2,
        1,
    )
    assert spike.precision == pytest.approx(0.5)
    assert spike.recall == pytest.approx(0.5)
    assert spike.f1 == pytest.approx(0.5)
    dip = scores["dip"]
    assert (dip.precision, dip.recall, dip.f1) == (0.0, 0.0, 0.0)
    gap = scores["gap"]  # nothing to find, nothing found: perfect
    assert (gap.labels, gap.findings, gap.precision, gap.recall, gap.f1) == (0, 0, 1.0, 1.0, 1.0)


def test_score_types_precision_and_recall_differ() -> None:
    labels = [Label("gap", t * SECOND, (t + 30) * SECOND) for t in (100, 300, 500, 700)]
    findings = [finding("gap", 99 * SECOND), finding("gap", 320 * SECOND)]
    gap = score_types(labels, findings, tolerance_us=SECOND, types=["gap"])["gap"]
    assert gap.precision == 1.0
    assert gap.recall == pytest.approx(0.5)
    assert gap.f1 == pytest.approx(2 * 0.5 / 1.5)
    # Findings where no label is: precision 0, recall stays perfect.
    lonely = score_types([], [finding("dip", 5)], tolerance_us=SECOND, types=["dip"])["dip"]
    assert (lonely.precision, lonely.recall) == (0.0, 1.0)


def test_unmasked_hides_labels_inside_a_flatline_or_a_gap() -> None:
    stuck = Label("flatline", 100 * SECOND, 200 * SECOND)
    gap = Label("gap", 500 * SECOND, 530 * SECOND)
    inside_stuck = Label("spike", 150 * SECOND, 151 * SECOND)
    at_stuck_start = Label("dip", 100 * SECOND, 101 * SECOND)
    inside_gap = Label("rate_of_change", 510 * SECOND, 600 * SECOND)
    at_stuck_end = Label("spike", 200 * SECOND, 201 * SECOND)  # the end is exclusive
    before = Label("rate_of_change", 90 * SECOND, 300 * SECOND)  # began before: still seen
    labels = [stuck, gap, inside_stuck, at_stuck_start, inside_gap, at_stuck_end, before]
    assert unmasked(labels) == [stuck, gap, at_stuck_end, before]


def test_unmasked_ignores_other_long_labels() -> None:
    jump = Label("rate_of_change", 100 * SECOND, 400 * SECOND)
    spike = Label("spike", 200 * SECOND, 201 * SECOND)
    assert unmasked([jump, spike]) == [jump, spike]


def test_windowed_gaussian_flags_an_injected_spike_in_noise() -> None:
    rng = np.random.default_rng(5)
    timestamps = np.arange(3000, dtype=np.int64) * SECOND
    values = 20.0 + rng.normal(0.0, 0.1, timestamps.size)
    values[2000] += 3.0  # 30 standard deviations
    found = windowed_gaussian(timestamps, values, window=600, threshold=5.0)
    assert found == [int(timestamps[2000])]


def test_windowed_gaussian_is_quiet_on_pure_noise_with_a_high_threshold() -> None:
    rng = np.random.default_rng(6)
    timestamps = np.arange(5000, dtype=np.int64) * SECOND
    values = rng.normal(0.0, 1.0, timestamps.size)
    assert windowed_gaussian(timestamps, values, window=600, threshold=8.0) == []
    # A low threshold does fire on the same noise: the quiet above is the threshold's doing.
    assert windowed_gaussian(timestamps, values, window=600, threshold=2.0)


def test_windowed_gaussian_needs_more_than_a_window() -> None:
    timestamps = np.arange(600, dtype=np.int64) * SECOND
    values = np.zeros(600)
    values[-1] = 1e6
    assert windowed_gaussian(timestamps, values, window=600) == []
