"""The chart's min-max downsampling honours ``max_points`` and uses the budget."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from services.telemetry.telemetry.query import min_max_downsample, series


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
