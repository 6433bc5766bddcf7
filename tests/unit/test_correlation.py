"""Correlation math: alignment of different rates, the three coefficients, lag finding,
the overlap every coefficient needs and the significance that comes with it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.analytics.analytics.correlation import (
    ALGORITHMS,
    MAX_GRID_BUCKETS,
    MIN_OVERLAP,
    Result,
    TooFewPairs,
    correlate,
    effective_samples,
    lag_coefficients,
    pearson,
    ranks,
    regularized_beta,
    significance,
    spearman,
    t_two_sided,
)

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


def _on_one_grid(a: np.ndarray, b: np.ndarray, algorithm: str, max_lag_s: int = 60) -> Result:
    """Correlate two 1 Hz series that start together."""
    t = np.arange(a.size, dtype=np.int64) * SECOND
    return correlate(
        t,
        a,
        t,
        b,
        start=0,
        end=a.size * SECOND,
        algorithm=algorithm,
        max_lag_us=max_lag_s * SECOND,
    )


# Two-sided critical values of Student's t: NIST/SEMATECH e-Handbook of Statistical Methods,
# section 1.3.6.7.2 "Critical Values of the Student's t Distribution" (upper 0.975 and 0.995
# columns, so two-sided 0.05 and 0.01).
@pytest.mark.parametrize(
    ("t", "df", "p"),
    [
        (12.706, 1, 0.05),
        (4.303, 2, 0.05),
        (2.228, 10, 0.05),
        (4.032, 5, 0.01),
        (3.169, 10, 0.01),
        (2.042, 30, 0.05),
        (1.984, 100, 0.05),
    ],
)
def test_t_tail_matches_the_textbook_table(t: float, df: int, p: float) -> None:
    assert t_two_sided(t, df) == pytest.approx(p, rel=2e-3)
    assert t_two_sided(-t, df) == t_two_sided(t, df)


def test_regularized_beta_known_values() -> None:
    # I_x(1, 1) = x; I_x(a, 1) = x^a; I_0.5(a, a) = 1/2 by symmetry; I_0.4(2, 3) = 0.5248
    # (Abramowitz and Stegun 26.5.4, a binomial sum: P(Bin(4, 0.4) >= 2)).
    assert regularized_beta(1, 1, 0.3) == pytest.approx(0.3, abs=1e-12)
    assert regularized_beta(3.5, 1, 0.7) == pytest.approx(0.7**3.5, abs=1e-12)
    assert regularized_beta(7.25, 7.25, 0.5) == pytest.approx(0.5, abs=1e-12)
    assert regularized_beta(2, 3, 0.4) == pytest.approx(0.5248, abs=1e-12)
    assert (regularized_beta(2, 3, 0.0), regularized_beta(2, 3, 1.0)) == (0.0, 1.0)


def test_significance_of_a_textbook_coefficient() -> None:
    # Critical r for n = 10 at two-sided 0.05 is 0.632 (e.g. Zar, Biostatistical Analysis,
    # table B.17): its p-value is 0.05. Fisher's interval for r = 0.5, n = 28: z = 0.5493,
    # se = 1/sqrt(25) = 0.2, so tanh(0.5493 -+ 1.96 * 0.2) = (0.1560, 0.7358).
    p, _, _ = significance(0.632, 10)
    assert p == pytest.approx(0.05, abs=1e-3)
    _, low, high = significance(0.5, 28)
    assert (low, high) == (pytest.approx(0.1560, abs=1e-3), pytest.approx(0.7358, abs=1e-3))
    # Picking the best of 20 lags: the p-value is 20 times as large (at most 1), the interval wider.
    corrected, wide_low, wide_high = significance(0.632, 10, tests=20)
    assert corrected == pytest.approx(20 * p) and significance(0.1, 10, tests=20)[0] == 1.0
    assert wide_low < significance(0.632, 10)[1] and wide_high > significance(0.632, 10)[2]


def test_effective_samples_shrink_with_autocorrelation() -> None:
    rng = np.random.default_rng(8)
    noise_a, noise_b = rng.normal(size=500), rng.normal(size=500)
    assert effective_samples(noise_a, noise_b) > 400
    walk_a, walk_b = np.cumsum(noise_a), np.cumsum(noise_b)
    assert 3 <= effective_samples(walk_a, walk_b) < 25


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("walk", [False, True])
def test_independent_streams_are_never_significant(algorithm: str, walk: bool) -> None:
    for seed in range(12):
        rng = np.random.default_rng(seed)
        a, b = rng.normal(size=600), rng.normal(size=600)
        if walk:
            a, b = np.cumsum(a), np.cumsum(b)
        result = _on_one_grid(a, b, algorithm)
        assert result.p_value >= 0.05, (seed, result)
        assert result.ci_low <= 0.0 <= result.ci_high, (seed, result)
        assert result.ci_low <= result.coefficient <= result.ci_high


def test_a_lagged_noisy_copy_is_found_at_its_lag_and_significant() -> None:
    rng = np.random.default_rng(4)
    # A smooth sensor-like signal (AR(1), strongly autocorrelated) and a copy 12 s later, noisy.
    base = np.zeros(900)
    for i in range(1, base.size):
        base[i] = 0.9 * base[i - 1] + rng.normal()
    follower = np.concatenate([rng.normal(size=12), base[:-12]]) + rng.normal(0, 1.0, base.size)
    result = _on_one_grid(base, follower, "cross_correlation")
    assert result.best_lag_us == 12 * SECOND
    assert result.samples == 900 - 12  # the pairs at that lag, not the window
    assert result.lags_tried == 121
    assert result.p_value < 1e-12
    assert 0 < result.ci_low < result.coefficient < result.ci_high < 1
    assert result.effective_samples < result.samples / 2  # the autocorrelation is accounted for


def test_lags_with_little_overlap_are_not_tried() -> None:
    # b holds readings only in the first 15 s of a 100 s window; a everywhere. Lags that pair
    # fewer than half of the best overlap (the 15 pairs at no lag) are not compared at all, so a
    # lag with a handful of pairs cannot win by chance.
    rng = np.random.default_rng(2)
    a = rng.normal(size=100)
    b = np.full(100, np.nan)
    b[:15] = rng.normal(size=15)
    result = _on_one_grid(a, b, "cross_correlation", max_lag_s=40)
    assert result.samples >= MIN_OVERLAP
    assert result.lags_tried < 81


def test_too_few_pairs_is_refused_at_every_lag() -> None:
    t = np.arange(0, 9 * SECOND, SECOND, dtype=np.int64)  # 9 pairs: one short
    for algorithm in ALGORITHMS:
        with pytest.raises(TooFewPairs) as caught:
            correlate(
                t,
                np.sin(t / 1e6),
                t,
                np.cos(t / 1e6),
                start=0,
                end=9 * SECOND,
                algorithm=algorithm,
                max_lag_us=4 * SECOND,
            )
        assert (caught.value.pairs, caught.value.needed) == (9, MIN_OVERLAP)


def test_a_perfect_relation_has_a_zero_p_value_and_a_tight_interval() -> None:
    # A ramp is as autocorrelated as can be (n_eff falls to 3), yet an exact relation is exact.
    x = np.linspace(0, 1, 50)
    result = _on_one_grid(x, 3 * x + 1, "pearson")
    assert result.coefficient == pytest.approx(1.0)
    assert result.p_value == 0.0 and result.ci_low > 0.99
    assert math.isfinite(result.ci_low) and result.ci_high <= 1.0


@given(
    st.integers(min_value=0, max_value=2**32 - 1),
    st.integers(min_value=12, max_value=200),
    st.floats(min_value=0.0, max_value=0.6),
    st.sampled_from([0.0, 1e3, -5e6]),
)
def test_every_lags_coefficient_at_once_is_the_direct_one(
    seed: int, size: int, missing: float, offset: float
) -> None:
    # The transforms give each lag's pairs and coefficient as one pass per lag would, with
    # empty buckets anywhere and values far from zero (sums of squares must not cancel).
    rng = np.random.default_rng(seed)
    a = np.cumsum(rng.normal(size=size)) + offset
    b = 0.5 * np.roll(a, 3) + rng.normal(size=size)
    a[rng.random(size) < missing] = np.nan
    b[rng.random(size) < missing] = np.nan
    max_lag = size // 3
    counts, coefficients = lag_coefficients(a, b, max_lag)
    for lag in range(-max_lag, max_lag + 1):
        x = a[max(0, -lag) : size - max(0, lag)]
        y = b[max(0, lag) : size - max(0, -lag)]
        both = np.isfinite(x) & np.isfinite(y)
        assert counts[lag + max_lag] == both.sum()
        assert coefficients[lag + max_lag] == pytest.approx(pearson(x, y), abs=1e-7)


def test_a_minute_each_way_between_two_1khz_streams_is_searched_at_once() -> None:
    # Ten minutes at 1 kHz, the console's default search of 60 s each way: 120,001 lags on a
    # 1 ms grid. One pass over the window per lag took hours and held analytics' loop.
    rate = 1000
    t = np.arange(0, 600 * SECOND, SECOND // rate, dtype=np.int64)
    rng = np.random.default_rng(5)
    base = np.cumsum(rng.normal(size=t.size))
    follower = np.roll(base, 2_345) + rng.normal(0, 5.0, t.size)  # 2.345 s behind
    result = correlate(
        t,
        base,
        t,
        follower,
        start=0,
        end=600 * SECOND,
        algorithm="cross_correlation",
        max_lag_us=60 * SECOND,
    )
    assert result.grid_us == 1_000
    assert result.best_lag_us == 2_345_000
    assert result.lags_tried == 120_001
    assert result.coefficient == pytest.approx(pearson(base[:-2_345], follower[2_345:]))


def test_a_window_is_aligned_on_at_most_a_bounded_grid() -> None:
    # 2,000,000 readings a millisecond apart: the grid is coarsened to keep the buckets bounded.
    t = np.arange(0, 2_000 * SECOND, 1_000, dtype=np.int64)
    values = np.sin(t / 5e6)
    result = correlate(
        t, values, t, 2 * values, start=0, end=2_000 * SECOND, algorithm="pearson", max_lag_us=0
    )
    assert result.grid_us == 2_000 * SECOND // MAX_GRID_BUCKETS
    assert result.samples == MAX_GRID_BUCKETS
    assert result.coefficient == pytest.approx(1.0)
