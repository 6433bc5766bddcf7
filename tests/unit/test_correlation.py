"""Correlation math: alignment of different rates, the three coefficients, lag finding."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from services.analytics.analytics.correlation import correlate, pearson, ranks, spearman

SECOND = 1_000_000


def test_streams_at_different_rates_align_and_correlate() -> None:
    t_a = np.arange(0, 600 * SECOND, SECOND, dtype=np.int64)  # 1 Hz
    t_b = np.arange(0, 600 * SECOND, 5 * SECOND, dtype=np.int64)  # 0.2 Hz
    signal = lambda t: np.sin(t / 60e6)  # noqa: E731
    result = correlate(
        t_a,
        signal(t_a),
        t_b,
        3 * signal(t_b) + 10,
        start=0,
        end=600 * SECOND,
        algorithm="pearson",
        max_lag_us=0,
    )
    assert result.grid_us == 5 * SECOND and result.samples == 120
    assert result.coefficient > 0.99


def test_cross_correlation_finds_the_lag() -> None:
    t = np.arange(0, 2000 * SECOND, SECOND, dtype=np.int64)
    rng = np.random.default_rng(3)
    base = np.cumsum(rng.normal(size=t.size))
    lagged = np.roll(base, 7)  # b follows a 7 s later
    result = correlate(
        t,
        base,
        t,
        lagged,
        start=0,
        end=2000 * SECOND,
        algorithm="cross_correlation",
        max_lag_us=30 * SECOND,
    )
    assert result.best_lag_us == 7 * SECOND
    assert result.coefficient > 0.99


def test_spearman_sees_monotonic_but_nonlinear_relations() -> None:
    x = np.linspace(0.1, 5, 200)
    assert spearman(x, np.exp(x)) == 1.0
    assert pearson(x, np.exp(x)) < 0.95


@given(st.lists(st.integers(-5, 5), min_size=1, max_size=50))
def test_ranks_average_ties_and_keep_the_sum(values: list[int]) -> None:
    r = ranks(np.array(values, dtype=np.float64))
    assert abs(r.sum() - len(values) * (len(values) + 1) / 2) < 1e-9
    for value in set(values):
        tied = r[np.array(values) == value]
        assert np.all(tied == tied[0])


def test_constant_or_empty_series_answer_zero() -> None:
    assert pearson(np.ones(10), np.arange(10.0)) == 0.0
    assert pearson(np.array([1.0, np.nan]), np.array([2.0, 3.0])) == 0.0
