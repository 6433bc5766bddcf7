"""The chart's min-max downsampling honours ``max_points`` and uses the budget."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from services.telemetry.telemetry.query import min_max_downsample, scores_at, series


@given(
    st.integers(min_value=1, max_value=3000),
    st.integers(min_value=2, max_value=1200),
    st.integers(min_value=1, max_value=50),
    st.integers(min_value=0, max_value=2**32 - 1),
)
def test_points_fit_the_budget_and_use_it(
    size: int, max_points: int, levels: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    # Few distinct levels make ties and flat buckets common, the case that used to waste points.
    values = rng.integers(0, levels, size).astype(np.float64)
    timestamps = np.cumsum(rng.integers(1, 5_000_000, size)).astype(np.int64)
    shown_ts, shown_values = min_max_downsample(timestamps, values, max_points)
    if size <= max_points:
        assert np.array_equal(shown_ts, timestamps) and np.array_equal(shown_values, values)
        return
    # Every point counts, min and max alike; an odd budget leaves one point unused.
    assert max_points - 1 <= shown_ts.size <= max_points
    assert shown_ts.size == 2 + 2 * ((max_points - 2) // 2)
    # The range's first and last readings are always shown; with room for a bucket
    # (4 points or more), so are the smallest and the largest value.
    assert (shown_ts[0], shown_ts[-1]) == (timestamps[0], timestamps[-1])
    if max_points >= 4:
        assert shown_values.min() == values.min() and shown_values.max() == values.max()
    # Real readings, in time order, none twice.
    assert bool(np.all(np.diff(shown_ts) > 0))
    where = np.searchsorted(timestamps, shown_ts)
    assert np.array_equal(timestamps[where], shown_ts)
    assert np.array_equal(values[where], shown_values)


def test_600_readings_with_500_points_answer_500() -> None:
    timestamps = np.arange(600, dtype=np.int64) * 1_000_000
    values = np.sin(np.arange(600) / 10.0)
    chart = series(timestamps, values, max_points=500, normalization="none")
    assert chart.downsampled and chart.timestamps.size == 500
    assert chart.stats.count == 600  # statistics still cover every reading


@given(
    st.integers(min_value=1, max_value=3000),
    st.integers(min_value=2, max_value=1200),
    st.floats(min_value=0.0, max_value=1.0),
    st.integers(min_value=0, max_value=2**32 - 1),
)
def test_each_point_carries_the_peak_score_of_the_readings_it_stands_for(
    size: int, max_points: int, unscored: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    values = rng.normal(0, 1, size)
    timestamps = np.arange(size, dtype=np.int64) * 1_000_000
    scores = rng.random(size)
    scores[rng.random(size) < unscored] = np.nan  # readings analytics has not scored
    chart = series(timestamps, values, max_points=max_points, normalization="none", scores=scores)
    assert chart.scores is not None and chart.scores.size == chart.timestamps.size
    positions = np.searchsorted(timestamps, chart.timestamps)
    if size <= max_points:
        assert np.array_equal(chart.scores, scores, equal_nan=True)
        return
    # Which readings each point stands for: the range's ends themselves, each bucket's two
    # points the bucket; without buckets, the two halves of the range.
    if max_points < 4:
        groups = [range(0, size // 2), range(size // 2, size)]
    else:
        edges = np.linspace(1, size - 1, (max_points - 2) // 2 + 1).astype(np.int64)
        buckets = [range(int(a), int(b)) for a, b in itertools.pairwise(edges)]
        groups = [range(0, 1), *(b for b in buckets for _ in (0, 1)), range(size - 1, size)]
    assert len(groups) == positions.size
    for position, group, shown in zip(positions, groups, chart.scores, strict=True):
        assert position in group
        expected = np.fmax.reduce(scores[group.start : group.stop])
        assert shown == expected or (np.isnan(shown) and np.isnan(expected))
    # So the highest score of the range is never lost, however far the chart zooms out.
    if not np.all(np.isnan(scores)):
        assert np.nanmax(chart.scores) == np.nanmax(scores)


def test_scores_are_matched_to_readings_by_time() -> None:
    timestamps = np.array([10, 20, 30, 40], dtype=np.int64)
    scored = np.array([5, 20, 40, 50], dtype=np.int64)  # 5 and 50 are no reading of these
    found = scores_at(timestamps, scored, np.array([0.9, 0.2, 0.4, 0.8]))
    assert np.array_equal(found, [np.nan, 0.2, np.nan, 0.4], equal_nan=True)
    assert np.isnan(scores_at(timestamps, scored[:0], np.empty(0))).all()


@given(
    st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1, max_size=50),
    st.sampled_from(["min_max", "z_score"]),
)
def test_statistics_and_normalised_values_of_finite_readings_are_finite(
    values: list[float], normalization: str
) -> None:
    # Readings near float64's limit (stored before telemetry bounded them at 1e150) once
    # answered "stddev": "Infinity" and "normalized_value": "NaN".
    timestamps = np.arange(len(values), dtype=np.int64)
    shown = series(timestamps, np.array(values), max_points=100, normalization=normalization)
    stats = shown.stats
    assert np.isfinite([stats.min, stats.max, stats.mean, stats.stddev]).all()
    assert stats.min <= stats.mean <= stats.max or np.isclose(stats.mean, stats.min)
    assert shown.normalized is not None and np.isfinite(shown.normalized).all()


def test_statistics_of_extreme_readings_keep_their_values() -> None:
    values = np.array([1.79e308, -1.79e308, 1.79e308, -1.79e308])
    shown = series(np.arange(4, dtype=np.int64), values, max_points=10, normalization="z_score")
    assert (shown.stats.mean, shown.stats.stddev) == (0.0, 1.79e308)
    assert shown.normalized is not None and list(shown.normalized) == [1.0, -1.0, 1.0, -1.0]
