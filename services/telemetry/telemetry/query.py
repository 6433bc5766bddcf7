"""Range queries: decode the chunks of a range, compute statistics, downsample for a chart.

Statistics always cover every reading in the range; the points answered are
at most ``max_points``: min and max of each time bucket in time order, which
keeps spikes and dips that an average would hide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.telemetry.telemetry.codec import Float64s, Int64s, decode_many
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
    """At most ``max_points`` points: the min and the max of equal-width buckets, in time order."""
    size = values.size
    if size <= max_points:
        return timestamps, values
    buckets = max(max_points // 2, 1)
    width = -(-size // buckets)
    buckets = -(-size // width)
    # Pad with the last value so every bucket has the same width; argmin/argmax take
    # the first occurrence, and a padded position is clipped back to the last reading.
    padded = np.concatenate([values, np.full(buckets * width - size, values[-1])]).reshape(
        buckets, width
    )
    offsets = np.arange(buckets, dtype=np.int64) * width
    lows = np.minimum(padded.argmin(axis=1) + offsets, size - 1)
    highs = np.minimum(padded.argmax(axis=1) + offsets, size - 1)
    chosen = np.unique(np.concatenate([lows, highs]))
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
