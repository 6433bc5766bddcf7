"""Correlating two streams: align them on a common time grid, then compute a coefficient.

Streams sampled at different rates are averaged into buckets of the coarser
stream's typical interval; only buckets where both streams have data count.
Pearson measures linear co-movement, Spearman monotonic co-movement (ranks,
ties averaged), and cross-correlation finds the lag of ``b`` behind ``a``
with the strongest Pearson coefficient.

Every coefficient comes with how much it can be trusted:

- **Overlap.** A coefficient is computed on at least :data:`MIN_OVERLAP`
  pairs; in a lag search a lag is tried only when it pairs at least
  :data:`LAG_OVERLAP_FRACTION` of the best-overlapping lag's pairs, so that a
  lag with a handful of pairs (whose coefficient swings wildly) cannot win.
- **Effective sample size.** Sensor signals are autocorrelated: neighbouring
  readings say nearly the same thing, so n pairs carry far fewer than n
  independent samples. The p-value and interval use Bretherton et al. (1999)
  ``n_eff = n (1 - r1 r2) / (1 + r1 r2)``, with r1 and r2 the lag-1
  autocorrelations of the paired series (never more than n).
- **Significance.** A two-sided p-value from Student's t with ``n_eff - 2``
  degrees of freedom (for Spearman the same approximation on ranks), and a
  confidence interval by Fisher's z-transform (Spearman's standard error
  widened by 1.06, Fieller, Hartley and Pearson 1957). When a lag search
  picked the best of m lags, the p-value is multiplied by m and the interval
  is taken at level ``1 - 0.05 / m`` (Bonferroni): the best of many lags
  looks significant by chance far more often than a single coefficient.

The work is bounded whatever the streams' rates: the grid is coarsened so
that a window holds at most :data:`MAX_GRID_BUCKETS` buckets, and a lag
search computes every lag's coefficient at once from a handful of FFT
cross-correlations (sums of x, y, x², y² and xy over each lag's pairs), so
two 1 kHz streams searched a minute each way cost a fraction of a second, not
one pass over the window per lag. The winning lag is then computed again
directly, so the answer carries no FFT round-off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

Int64s = npt.NDArray[np.int64]
Float64s = npt.NDArray[np.float64]

ALGORITHMS = ("pearson", "spearman", "cross_correlation")
MIN_SAMPLES = 3
MIN_OVERLAP = 10
"""Fewest paired samples any coefficient is computed on."""
LAG_OVERLAP_FRACTION = 0.5
"""A lag is tried only when it pairs at least this share of the best-overlapping lag's pairs."""
CONFIDENCE = 0.95
"""Level of the confidence interval (before the correction for the lags tried)."""
SPEARMAN_SE_FACTOR = 1.06
"""Variance inflation of Fisher's z for Spearman's rho (Fieller, Hartley and Pearson 1957)."""
MAX_GRID_BUCKETS = 1_000_000
"""Most buckets a window is aligned on: a finer grid is coarsened to this (an hour of
two 1 kHz streams is averaged into 3.6 ms buckets)."""
_CF_ITERATIONS = 300
_CF_EPSILON = 1e-15
_TINY = 1e-300


@dataclass(frozen=True, slots=True)
class Aligned:
    """Two series on one grid."""

    a: Float64s
    b: Float64s
    grid_us: int


@dataclass(frozen=True, slots=True)
class Result:
    """A coefficient with what it was computed on and how far it can be trusted."""

    coefficient: float
    samples: int  # pairs actually used at the reported lag
    best_lag_us: int
    grid_us: int
    p_value: float  # two-sided, corrected for the lags tried
    ci_low: float
    ci_high: float
    effective_samples: float  # n_eff the p-value and interval are computed with
    lags_tried: int


class TooFewPairs(ValueError):
    """The window holds fewer paired samples of both streams than a coefficient needs."""

    def __init__(self, *, pairs: int, needed: int) -> None:
        super().__init__(f"{pairs} paired samples, at least {needed} needed")
        self.pairs = pairs
        self.needed = needed


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
    span = max(end - start, 1)
    grid = max(typical_interval(ts_a), typical_interval(ts_b), -(-span // MAX_GRID_BUCKETS), 1)
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


def regularized_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), for a, b > 0 and 0 <= x <= 1.

    Evaluated by its continued fraction (modified Lentz), on whichever side
    of the mean ``a / (a + b)`` converges fast (Numerical Recipes, 6.4).
    """
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - regularized_beta(b, a, 1.0 - x)
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    return math.exp(log_front) * _beta_fraction(a, b, x) / a


def _beta_fraction(a: float, b: float, x: float) -> float:
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    fraction = d
    for m in range(1, _CF_ITERATIONS + 1):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            fraction *= c * d
        if abs(c * d - 1.0) < _CF_EPSILON:
            break
    return fraction


def t_two_sided(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` (> 0, not necessarily whole) degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return regularized_beta(df / 2.0, 0.5, df / (df + t * t))


def lag1_autocorrelation(values: Float64s) -> float:
    """The lag-1 autocorrelation of a series in time order (0 when it cannot be told)."""
    if values.size < MIN_SAMPLES:
        return 0.0
    return pearson(values[:-1], values[1:])


def effective_samples(x: Float64s, y: Float64s) -> float:
    """Bretherton's effective number of independent pairs, between 3 (or n) and n.

    Positive lag-1 autocorrelation in both series shrinks it; it is never
    taken above n, since negative products would promise more than was seen.
    """
    n = float(x.size)
    product = lag1_autocorrelation(x) * lag1_autocorrelation(y)
    if product <= 0.0:
        return n
    return max(min(n * (1.0 - product) / (1.0 + product), n), min(n, 3.0))


def significance(
    coefficient: float, n_eff: float, *, tests: int = 1, rank_based: bool = False
) -> tuple[float, float, float]:
    """Two-sided p-value and confidence interval of a correlation coefficient.

    Both are corrected for ``tests`` coefficients of which this is the best
    (Bonferroni); see the module docstring.
    """
    r = min(max(coefficient, -1.0), 1.0)
    df = n_eff - 2.0
    if df <= 0.0:
        return 1.0, -1.0, 1.0
    if abs(r) >= 1.0:
        return 0.0, r, r  # an exact linear relation leaves no room for chance
    p = min(1.0, t_two_sided(r * math.sqrt(df / (1.0 - r * r)), df) * tests)
    if n_eff <= 3.0:
        return p, -1.0, 1.0
    alpha = (1.0 - CONFIDENCE) / tests
    quantile = NormalDist().inv_cdf(1.0 - alpha / 2.0)
    spread = quantile * math.sqrt((SPEARMAN_SE_FACTOR if rank_based else 1.0) / (n_eff - 3.0))
    z = math.atanh(r)
    return p, math.tanh(z - spread), math.tanh(z + spread)


def _shifted(a: Float64s, b: Float64s, lag: int) -> tuple[Float64s, Float64s]:
    """The pairs (a[t], b[t + lag]) where both are present, in time order."""
    if lag >= 0:
        x, y = a[: a.size - lag], b[lag:]
    else:
        x, y = a[-lag:], b[: b.size + lag]
    both = np.isfinite(x) & np.isfinite(y)
    return x[both], y[both]


def _lagged_sums(f: Float64s, g: Float64s, max_lag: int, size: int) -> Float64s:
    """``sum_t f[t] g[t + lag]`` for lag = -max_lag..max_lag, by FFT (``size`` >= 2 len)."""
    full = np.fft.irfft(np.conj(np.fft.rfft(f, size)) * np.fft.rfft(g, size), size)
    return np.concatenate([full[size - max_lag :], full[: max_lag + 1]])


def lag_coefficients(a: Float64s, b: Float64s, max_lag: int) -> tuple[Int64s, Float64s]:
    """Pairs and Pearson's r of (a[t], b[t + lag]) for every lag from -max_lag to max_lag.

    NaN marks an empty bucket. Each series is centred on its own mean first, so
    that the sums of squares do not cancel; a lag whose pairs do not vary
    (within round-off) gets 0, as :func:`pearson` gives.
    """
    present_a, present_b = np.isfinite(a), np.isfinite(b)
    mask_a, mask_b = present_a.astype(np.float64), present_b.astype(np.float64)
    x = np.where(present_a, a - (a[present_a].mean() if present_a.any() else 0.0), 0.0)
    y = np.where(present_b, b - (b[present_b].mean() if present_b.any() else 0.0), 0.0)
    size = 1 << int(2 * max(a.size, b.size) - 1).bit_length()
    counts = np.rint(_lagged_sums(mask_a, mask_b, max_lag, size))
    sum_x = _lagged_sums(x, mask_b, max_lag, size)
    sum_y = _lagged_sums(mask_a, y, max_lag, size)
    squares_x = _lagged_sums(x * x, mask_b, max_lag, size)
    squares_y = _lagged_sums(mask_a, y * y, max_lag, size)
    products = _lagged_sums(x, y, max_lag, size)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.maximum(counts, 1.0)
        var_x = squares_x - sum_x * sum_x / n
        var_y = squares_y - sum_y * sum_y / n
        covariance = products - sum_x * sum_y / n
        # Round-off of the transforms is ~1e-12 of the sums: below that a lag's pairs are flat.
        flat = (var_x <= 1e-9 * np.abs(squares_x)) | (var_y <= 1e-9 * np.abs(squares_y))
        r = np.where(
            flat | (counts < MIN_SAMPLES),
            0.0,
            covariance / np.sqrt(np.abs(var_x * var_y)),
        )
    return counts.astype(np.int64), np.clip(r, -1.0, 1.0)


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
    """Align and correlate two series with ``algorithm``.

    Raises :class:`TooFewPairs` when no lag pairs :data:`MIN_OVERLAP` samples.
    """
    a, b, grid = align(ts_a, values_a, ts_b, values_b, start=start, end=end)
    max_lag = max(0, min(max_lag_us // grid, a.size - 1)) if algorithm == "cross_correlation" else 0
    if max_lag:
        counts, coefficients = lag_coefficients(a, b, max_lag)
    else:
        counts = np.array([int((np.isfinite(a) & np.isfinite(b)).sum())], dtype=np.int64)
        coefficients = np.zeros(1)
    most = int(counts.max())
    if most < MIN_OVERLAP:
        raise TooFewPairs(pairs=most, needed=MIN_OVERLAP)
    fewest = max(MIN_OVERLAP, math.ceil(LAG_OVERLAP_FRACTION * most))
    tried = np.flatnonzero(counts >= fewest)
    # The strongest lag (the earliest of equals, within the transforms' round-off).
    strength = np.abs(coefficients[tried])
    winner = int(tried[np.flatnonzero(strength >= strength.max() - 1e-9)[0]])
    lag = winner - max_lag
    x, y = _shifted(a, b, lag)
    if algorithm == "spearman":
        x, y = ranks(x), ranks(y)
    coefficient = pearson(x, y)
    n_eff = effective_samples(x, y)
    p_value, ci_low, ci_high = significance(
        coefficient, n_eff, tests=len(tried), rank_based=algorithm == "spearman"
    )
    return Result(
        coefficient=coefficient,
        samples=int(x.size),
        best_lag_us=lag * grid,
        grid_us=grid,
        p_value=p_value,
        ci_low=ci_low,
        ci_high=ci_high,
        effective_samples=n_eff,
        lags_tried=len(tried),
    )
