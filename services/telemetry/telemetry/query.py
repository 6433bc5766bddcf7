"""Range queries: decode the chunks of a range, compute statistics, downsample for a chart.

Statistics always cover every reading in the range; the points answered are
at most ``max_points``, every point counting: the range's first and last
readings, and the min and max of each bucket of consecutive readings between
them, in time order, which keeps spikes and dips that an average would hide.
Anomaly scores, when asked for, follow the same buckets: a point carries the
highest score of the readings it stands for, so peaks are kept too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from iotkit.codec import Float64s, Int64s, decode_many
from services.telemetry.telemetry.store import TelemetryStore

NORMALIZATIONS = ("none", "min_max", "z_score")
MAX_POINTS_DEFAULT, MAX_POINTS_LIMIT = 1000, 10_000


@dataclass(frozen=True, slots=True)
class RangeStats:
    """Statistics of every reading in a range."""

    count: int
    min: float
    max: float
    mean: float
    stddev: float
    first: float
    last: float


@dataclass(frozen=True, slots=True)
class Series:
    """Points for a chart with the statistics of the whole range."""

    timestamps: Int64s
    values: Float64s
    normalized: Float64s | None
    stats: RangeStats
    downsampled: bool
    # Each point's anomaly score, NaN where none; None when there are no scores to give.
    scores: Float64s | None = None


async def read_range(
    store: TelemetryStore, *, stream_id: str, start: int, end: int
) -> tuple[Int64s, Float64s]:
    """Every reading of a stream in [start, end), oldest first."""
    chunks = await store.chunks(stream_id=stream_id, start=start, end=end)
    if not chunks:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    timestamps, values = decode_many([data for _, _, data in chunks])
    # The chunks' spans spare two passes over a million readings when they can.
    spans = np.array([(low, high) for low, high, _ in chunks], dtype=np.int64)
    if spans[0, 0] < start or spans[:, 1].max() >= end:  # the range cuts a chunk
        inside = (timestamps >= start) & (timestamps < end)
        timestamps, values = timestamps[inside], values[inside]
    overlap = bool(np.any(spans[1:, 0] <= np.maximum.accumulate(spans[:-1, 1])))
    if overlap and np.any(np.diff(timestamps) < 0):  # chunks of late data can interleave
        order = np.argsort(timestamps, kind="stable")
        timestamps, values = timestamps[order], values[order]
    return timestamps, values


def _unit(low: float, high: float) -> float:
    """A power of two at least half the magnitude of every value in [low, high] (1 for
    zeros): not more, since 2**1024 is past float64's range.

    Sums and squares are taken of values divided by it, which is exact, so that they
    cannot overflow even for values near float64's limit (stored before telemetry
    bounded them): statistics and normalised values stay finite numbers.
    """
    magnitude = max(abs(low), abs(high))
    return math.ldexp(1.0, math.frexp(magnitude)[1] - 1) if magnitude else 1.0


def stats_of(values: Float64s) -> RangeStats:
    """Count, min, max, mean, population stddev, first and last of ``values``."""
    if not values.size:
        return RangeStats(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    low, high = float(values.min()), float(values.max())
    unit = _unit(low, high)
    scaled = values / unit
    return RangeStats(
        int(values.size),
        low,
        high,
        float(scaled.mean()) * unit,
        float(scaled.std()) * unit,
        float(values[0]),
        float(values[-1]),
    )


def scores_at(timestamps: Int64s, scored: Int64s, scores: Float64s) -> Float64s:
    """The score of each reading at ``timestamps``, NaN where ``scored`` (sorted) has none."""
    found = np.full(timestamps.size, np.nan)
    if not scored.size:
        return found
    at = np.minimum(np.searchsorted(scored, timestamps), scored.size - 1)
    hit = scored[at] == timestamps
    found[hit] = scores[at[hit]]
    return found


def _bucket_starts(size: int, max_points: int) -> Int64s:
    """Where each bucket of readings 1 .. size-2 starts; they end where the next starts
    (the last at size - 1). For more than ``max_points`` readings only."""
    buckets = (max_points - 2) // 2
    return np.linspace(1, size - 1, buckets + 1).astype(np.int64)[:-1]


def min_max_downsample(
    timestamps: Int64s, values: Float64s, max_points: int
) -> tuple[Int64s, Float64s]:
    """Every reading when there are at most ``max_points``; else a min-max view of them.

    The view has the first and the last reading, and between them
    ``(max_points - 2) // 2`` buckets of consecutive readings (equal in count to
    within one), each giving two points: its min and its max, or its first and
    last reading when its values are all equal. As there are more readings than
    ``max_points``, every bucket holds at least two, so the view has exactly
    ``2 + 2 * ((max_points - 2) // 2)`` points: ``max_points``, or one fewer when
    it is odd. Points are in time order (``timestamps`` must be sorted).
    """
    chosen = min_max_positions(values, max_points)
    return timestamps[chosen], values[chosen]


def min_max_positions(values: Float64s, max_points: int) -> Int64s:
    """The positions of the readings :func:`min_max_downsample` keeps, ascending."""
    size = values.size
    if size <= max_points:
        return np.arange(size, dtype=np.int64)
    if max_points < 4:  # no bucket: the ends alone
        return np.array([0, size - 1], dtype=np.int64)
    starts = _bucket_starts(size, max_points)
    lengths = np.diff(np.append(starts, size - 1))
    width = int(lengths.max())
    # A rectangle of positions; a bucket shorter than ``width`` repeats its last reading,
    # which changes neither its min nor its max (argmin/argmax take the first occurrence).
    offsets = np.minimum(np.arange(width, dtype=np.int64), (lengths - 1)[:, None])
    positions = starts[:, None] + offsets
    grid = values[positions]
    lows, highs = grid.argmin(axis=1), grid.argmax(axis=1)
    flat = lows == highs  # all values equal: keep the bucket's first and last reading
    lows = np.where(flat, 0, lows)
    highs = np.where(flat, lengths - 1, highs)
    return np.unique(np.concatenate([[0], starts + lows, starts + highs, [size - 1]]))


def peak_scores(scores: Float64s, chosen: Int64s, max_points: int) -> Float64s:
    """For each point :func:`min_max_positions` chose, the highest score of the readings it
    stands for (NaN when none of them has one).

    A point of a bucket stands for the whole bucket; the range's first and last
    readings for themselves, and, below 4 ``max_points`` (no buckets), for the
    first and the second half of the range.
    """
    size = scores.size
    if size <= max_points:
        return scores[chosen]
    if max_points < 4:
        half = size // 2
        return np.array([np.fmax.reduce(scores[:half]), np.fmax.reduce(scores[half:])])
    starts = _bucket_starts(size, max_points)
    with np.errstate(invalid="ignore"):  # a bucket with no score at all stays NaN
        peaks = np.fmax.reduceat(scores[: size - 1], starts)
    inner = (chosen > 0) & (chosen < size - 1)
    shown = scores[chosen].copy()
    shown[inner] = peaks[np.searchsorted(starts, chosen[inner], side="right") - 1]
    return shown


def normalize(values: Float64s, stats: RangeStats, how: str) -> Float64s | None:
    """Values scaled as asked over the range's statistics; None for "none"."""
    if how == "none":
        return None
    unit = _unit(stats.min, stats.max)  # differences of huge values must not overflow either
    scaled = values / unit
    if how == "min_max":
        spread = stats.max / unit - stats.min / unit
        return (scaled - stats.min / unit) / spread if spread else np.zeros_like(values)
    deviation = stats.stddev / unit
    return (scaled - stats.mean / unit) / deviation if deviation else np.zeros_like(values)


def series(
    timestamps: Int64s,
    values: Float64s,
    *,
    max_points: int,
    normalization: str,
    scores: Float64s | None = None,
) -> Series:
    """The chart view of a range; ``scores``, when given, is the score of each reading (NaN
    where none) and the points carry their buckets' peaks."""
    stats = stats_of(values)
    chosen = min_max_positions(values, max_points)
    shown_values = values[chosen]
    return Series(
        timestamps[chosen],
        shown_values,
        normalize(shown_values, stats, normalization),
        stats,
        downsampled=shown_values.size < values.size,
        scores=None if scores is None else peak_scores(scores, chosen, max_points),
    )
