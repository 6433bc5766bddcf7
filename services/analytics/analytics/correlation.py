"""Correlating two streams: align them on a common time grid, then compute a coefficient.

Streams sampled at different rates are averaged into buckets of the coarser
stream's typical interval; only buckets where both streams have data count.
Pearson measures linear co-movement, Spearman monotonic co-movement (ranks,
ties averaged), and cross-correlation finds the lag of ``b`` behind ``a``
with the strongest Pearson coefficient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Int64s = npt.NDArray[np.int64]
Float64s = npt.NDArray[np.float64]

ALGORITHMS = ("pearson", "spearman", "cross_correlation")
MIN_SAMPLES = 3


@dataclass(frozen=True, slots=True)
class Aligned:
    """Two series on one grid."""

    a: Float64s
    b: Float64s
    grid_us: int


@dataclass(frozen=True, slots=True)
class Result:
    """A coefficient with what it was computed on."""

    coefficient: float
    samples: int
    best_lag_us: int
    grid_us: int


def typical_interval(timestamps: Int64s) -> int:
    """The median spacing of readings (1 s when there are too few to tell)."""
    steps = np.diff(timestamps)
    steps = steps[steps > 0]
    return int(np.median(steps)) if steps.size else 1_000_000


def _bucket_means(
    timestamps: Int64s, values: Float64s, start: int, grid: int, buckets: int
) -> Float64s:
    index = (timestamps - start) // grid
    inside = (index >= 0) & (index < buckets) & np.isfinite(values)
    sums = np.bincount(index[inside], weights=values[inside], minlength=buckets)
    counts = np.bincount(index[inside], minlength=buckets)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def align(
    ts_a: Int64s, values_a: Float64s, ts_b: Int64s, values_b: Float64s, *, start: int, end: int
) -> tuple[Float64s, Float64s, int]:
    """Both series averaged on a common grid over [start, end); NaN where a bucket is empty."""
    grid = max(typical_interval(ts_a), typical_interval(ts_b), 1)
    buckets = max(int(-(-(end - start) // grid)), 1)
    return (
        _bucket_means(ts_a, values_a, start, grid, buckets),
        _bucket_means(ts_b, values_b, start, grid, buckets),
        grid,
    )


def pearson(a: Float64s, b: Float64s) -> float:
    """Pearson's r of the pairs where both are present (0 when either is constant)."""
    both = np.isfinite(a) & np.isfinite(b)
    x, y = a[both], b[both]
    if x.size < MIN_SAMPLES:
        return 0.0
    x, y = x - x.mean(), y - y.mean()
    spread = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / spread) if spread else 0.0


def ranks(values: Float64s) -> Float64s:
    """Ranks from 1, ties given their average rank."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    first = np.concatenate([[True], sorted_values[1:] != sorted_values[:-1]])
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, values.size))
    average = starts + (counts + 1) / 2.0
    out = np.empty(values.size)
    out[order] = average[group]
    return out


def spearman(a: Float64s, b: Float64s) -> float:
    """Spearman's rho of the pairs where both are present."""
    both = np.isfinite(a) & np.isfinite(b)
    if both.sum() < MIN_SAMPLES:
        return 0.0
    return pearson(ranks(a[both]), ranks(b[both]))


def cross_correlation(a: Float64s, b: Float64s, max_lag: int) -> tuple[float, int]:
    """The Pearson coefficient at the lag (in grid steps, b behind a) where it is strongest."""
    best, best_lag = 0.0, 0
    for lag in range(-max_lag, max_lag + 1):
        if lag >= 0:
            x, y = a[: a.size - lag], b[lag:]
        else:
            x, y = a[-lag:], b[: b.size + lag]
        coefficient = pearson(x, y)
        if abs(coefficient) > abs(best) + 1e-12:
            best, best_lag = coefficient, lag
    return best, best_lag


def correlate(
    ts_a: Int64s,
    values_a: Float64s,
    ts_b: Int64s,
    values_b: Float64s,
    *,
    start: int,
    end: int,
    algorithm: str,
    max_lag_us: int,
) -> Result:
    """Align and correlate two series with ``algorithm``."""
    a, b, grid = align(ts_a, values_a, ts_b, values_b, start=start, end=end)
    samples = int((np.isfinite(a) & np.isfinite(b)).sum())
    if algorithm == "pearson":
        return Result(pearson(a, b), samples, 0, grid)
    if algorithm == "spearman":
        return Result(spearman(a, b), samples, 0, grid)
    coefficient, lag = cross_correlation(a, b, max(0, max_lag_us // grid))
    return Result(coefficient, samples, lag * grid, grid)
