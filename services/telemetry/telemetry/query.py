"""Range queries: decode the chunks of a range, compute statistics, downsample for a chart.

Statistics always cover every reading in the range; the points answered are
at most ``max_points``, every point counting: the range's first and last
readings, and the min and max of each bucket of consecutive readings between
them, in time order, which keeps spikes and dips that an average would hide.
"""

from __future__ import annotations

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


def stats_of(values: Float64s) -> RangeStats:
    """Count, min, max, mean, population stddev, first and last of ``values``."""
    if not values.size:
        return RangeStats(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    return RangeStats(
        int(values.size),
        float(values.min()),
        float(values.max()),
        float(values.mean()),
        float(values.std()),
        float(values[0]),
        float(values[-1]),
    )


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
    size = values.size
    if size <= max_points:
        return timestamps, values
    buckets = (max_points - 2) // 2
    if buckets == 0:
        ends = np.array([0, size - 1], dtype=np.int64)
        return timestamps[ends], values[ends]
    # Bucket edges over the interior readings 1 .. size-2 (the ends are kept as they are).
    edges = np.linspace(1, size - 1, buckets + 1).astype(np.int64)
    starts, lengths = edges[:-1], np.diff(edges)
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
    chosen = np.unique(np.concatenate([[0], starts + lows, starts + highs, [size - 1]]))
    return timestamps[chosen], values[chosen]


def normalize(values: Float64s, stats: RangeStats, how: str) -> Float64s | None:
    """Values scaled as asked over the range's statistics; None for "none"."""
    if how == "none":
        return None
    if how == "min_max":
        spread = stats.max - stats.min
        return (values - stats.min) / spread if spread else np.zeros_like(values)
    return (values - stats.mean) / stats.stddev if stats.stddev else np.zeros_like(values)


def series(timestamps: Int64s, values: Float64s, *, max_points: int, normalization: str) -> Series:
    """The chart view of a range."""
    stats = stats_of(values)
    shown_ts, shown_values = min_max_downsample(timestamps, values, max_points)
    return Series(
        shown_ts,
        shown_values,
        normalize(shown_values, stats, normalization),
        stats,
        downsampled=shown_values.size < values.size,
    )
