"""Scoring of detectors: per-type F1, masking, the baseline, and the synthetic series made
NAB-style (NAB's scoring itself: ``test_nab_scorer.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.analytics import Series, detection_rows, nab_style_series
from bench.evaluation import Label, score_types, unmasked, windowed_gaussian
from services.analytics.analytics.detectors import Finding

SECOND = 1_000_000


def finding(kind: str, t: int) -> Finding:
    return Finding(kind, t, 0.0, 1.0, 0.0)


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
    inside_gap = Label("dip", 510 * SECOND, 511 * SECOND)
    at_stuck_end = Label("spike", 200 * SECOND, 201 * SECOND)  # the end is exclusive
    before = Label("rate_of_change", 90 * SECOND, 300 * SECOND)  # began before: still seen
    labels = [stuck, gap, inside_stuck, at_stuck_start, inside_gap, at_stuck_end, before]
    assert unmasked(labels) == [stuck, gap, at_stuck_end, before]


def test_a_jump_is_seen_where_the_readings_resume_after_a_gap() -> None:
    # A jump that begins in a gap and outlasts it is seen as the readings resume at its
    # level; one that ends in a gap is seen ending as they resume (found then, it is no
    # false positive): its span reaches to the gap's end.
    gap = Label("gap", 500 * SECOND, 530 * SECOND)
    begins_inside = Label("rate_of_change", 510 * SECOND, 600 * SECOND)
    ends_inside = Label("rate_of_change", 400 * SECOND, 520 * SECOND)
    stuck = Label("flatline", 700 * SECOND, 800 * SECOND)
    within = Label("rate_of_change", 710 * SECOND, 790 * SECOND)  # begins and ends stuck
    assert unmasked([gap, begins_inside, ends_inside, stuck, within]) == [
        gap,
        begins_inside,
        Label("rate_of_change", 400 * SECOND, 530 * SECOND),
        stuck,
    ]
    found_as_it_resumes = [finding("rate_of_change", 530 * SECOND)]
    score = score_types(
        unmasked([gap, ends_inside]), found_as_it_resumes, tolerance_us=0, types=["rate_of_change"]
    )["rate_of_change"]
    assert (score.precision, score.recall) == (1.0, 1.0)


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


def test_synthetic_series_get_nabs_windows_outside_the_probation() -> None:
    timestamps = np.arange(10_000, dtype=np.int64) * SECOND  # probation: 750 rows
    labels = [
        Label("spike", 500 * SECOND, 501 * SECOND),  # in the probation: left out
        Label("gap", 4_000 * SECOND, 4_030 * SECOND),
        Label("dip", 8_000 * SECOND, 8_001 * SECOND),
    ]
    series = Series("temperature", 1, timestamps, np.zeros(10_000), labels)
    styled = nab_style_series(series, labels)
    # Two labels kept: windows of int(0.1 * 10,000 / 2) = 500 rows, centred on each.
    assert styled.name == "temperature/seed-1"
    assert styled.windows == ((3_750, 4_250), (7_750, 8_250))


def test_detections_mark_their_rows() -> None:
    timestamps = np.array([0, 10, 20, 50, 60], dtype=np.int64)
    assert detection_rows(timestamps, [20, 60, 20]).tolist() == [0, 0, 1, 0, 1]
    assert detection_rows(timestamps, []).tolist() == [0] * 5
