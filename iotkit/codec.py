"""Compact, lossless encoding of a columnar series: timestamps and one value each.

Telemetry stores its readings' chunks with it, analytics its anomaly scores
(quantised to whole numbers, which encode as integers here).

Timestamps (int64 microseconds, ascending) are stored as delta-of-delta:
a regularly sampled stream becomes a run of zeros. Values that are exact
decimals of a sensor's resolution (0.01 degC, say) are stored as scaled
integers, delta encoded; anything else as raw float64, byte-shuffled. Both
columns are then zigzagged to the narrowest integer width that holds them
and deflated. Decoding gives back the very same float64 values.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Int64s = npt.NDArray[np.int64]
Float64s = npt.NDArray[np.float64]

VERSION = 1
MAX_DECIMALS = 6
_HEADER = struct.Struct("<BBBBI")  # version, value kind, decimals, widths, count
_RAW, _DECIMAL = 0, 1
_WIDTHS = (1, 2, 4, 8)
_LEVEL = 1  # deflate is not the bottleneck at level 1, and later levels gain little here


def _zigzag(values: Int64s) -> npt.NDArray[np.uint64]:
    return ((values << 1) ^ (values >> 63)).astype(np.uint64)


def _unzigzag(values: npt.NDArray[np.uint64]) -> Int64s:
    return (values >> np.uint64(1)).astype(np.int64) ^ -(values & np.uint64(1)).astype(np.int64)


def _narrow(values: npt.NDArray[np.uint64]) -> tuple[int, bytes]:
    top = int(values.max()) if values.size else 0
    for code, width in enumerate(_WIDTHS):
        if top < 1 << (8 * width):
            return code, values.astype(f"<u{width}").tobytes()
    raise AssertionError("unreachable: 8 bytes hold any uint64")


def _widen(code: int, data: bytes) -> npt.NDArray[np.uint64]:
    return np.frombuffer(data, dtype=f"<u{_WIDTHS[code]}").astype(np.uint64)


def _delta(values: Int64s) -> Int64s:
    return np.diff(values, prepend=np.int64(0))


def _decimals(values: Float64s) -> int | None:
    """The fewest decimals that represent every value exactly, if at most MAX_DECIMALS."""
    if not np.all(np.isfinite(values)):
        return None
    if np.any(np.signbit(values) & (values == 0)):
        return None  # -0.0 has no integer form; raw floats keep its sign
    with np.errstate(over="ignore", invalid="ignore"):  # huge values simply fail the test
        for decimals in range(MAX_DECIMALS + 1):
            scale = 10.0**decimals
            scaled = np.round(values * scale)
            if np.all(np.abs(scaled) < 2**53) and np.array_equal(scaled / scale, values):
                return decimals
    return None


def encode(timestamps: Int64s, values: Float64s) -> bytes:
    """Encode a chunk; ``timestamps`` ascending, one value per timestamp."""
    if timestamps.shape != values.shape:
        raise ValueError("one value per timestamp")
    count = int(timestamps.size)
    time_code, time_bytes = _narrow(_zigzag(_delta(_delta(timestamps.astype(np.int64)))))
    decimals = _decimals(values)
    if decimals is None:
        kind = _RAW
        value_code = 3
        # Byte-shuffling groups sign/exponent bytes together, which deflates far better.
        value_bytes = values.astype("<f8").view(np.uint8).reshape(-1, 8).T.tobytes()
        decimals = 0
    else:
        kind = _DECIMAL
        scaled = np.round(values * 10.0**decimals).astype(np.int64)
        value_code, value_bytes = _narrow(_zigzag(_delta(scaled)))
    header = _HEADER.pack(VERSION, kind, decimals, time_code | value_code << 4, count)
    body = zlib.compress(time_bytes + value_bytes, _LEVEL)
    return header + body


def decode(blob: bytes) -> tuple[Int64s, Float64s]:
    """Decode a chunk made by :func:`encode`; ValueError for anything else."""
    if len(blob) < _HEADER.size:
        raise ValueError("chunk shorter than its header")
    version, kind, decimals, widths, count = _HEADER.unpack_from(blob)
    if version != VERSION:
        raise ValueError(f"unknown chunk version {version}")
    time_code, value_code = widths & 0x0F, widths >> 4
    if kind not in (_RAW, _DECIMAL) or time_code > 3 or value_code > 3:
        raise ValueError("not a chunk of this encoding")
    size = count * (_WIDTHS[time_code] + _WIDTHS[value_code])
    # Inflated no further than the header says: a small blob must not claim gigabytes.
    inflater = zlib.decompressobj()
    try:
        body = inflater.decompress(blob[_HEADER.size :], size)
    except zlib.error as exc:
        raise ValueError("chunk body is not deflated") from exc
    if len(body) != size or inflater.unconsumed_tail or not inflater.eof:
        raise ValueError("chunk body does not match its header")
    split = count * _WIDTHS[time_code]
    timestamps = np.cumsum(np.cumsum(_unzigzag(_widen(time_code, body[:split]))))
    if kind == _RAW:
        shuffled = np.frombuffer(body[split:], dtype=np.uint8).reshape(8, -1)
        values = shuffled.T.copy().view("<f8").reshape(-1).astype(np.float64)
    else:
        scaled = np.cumsum(_unzigzag(_widen(value_code, body[split:])))
        values = scaled / 10.0**decimals
    return timestamps.astype(np.int64), values


def _segment_cumsum(values: Int64s, firsts: npt.NDArray[np.intp], counts: Int64s) -> Int64s:
    """The running sum of ``values`` restarted at each segment's first index.

    Intermediate sums may wrap around int64; the results are exact all the same
    (two's complement arithmetic), since each true result fits in int64.
    """
    with np.errstate(over="ignore"):
        total = np.cumsum(values)
        before = np.zeros(counts.size, dtype=np.int64)
        before[1:] = total[firsts[1:] - 1]
        return total - np.repeat(before, counts)


def decode_many(blobs: Sequence[bytes]) -> tuple[Int64s, Float64s]:
    """Decode chunks and concatenate them in order: :func:`decode` of each, in one numpy pass.

    A range query decodes a thousand chunks; per-chunk numpy calls, not the
    data, would be most of its cost.
    """
    headers = [_HEADER.unpack_from(blob) for blob in blobs]
    for version, *_ in headers:
        if version != VERSION:
            raise ValueError(f"unknown chunk version {version}")
    # Empty chunks add nothing, and a segment must not start where the next one does.
    blobs = [blob for blob, header in zip(blobs, headers, strict=True) if header[4]]
    headers = [header for header in headers if header[4]]
    counts = np.array([h[4] for h in headers], dtype=np.int64)
    firsts = np.zeros(counts.size, dtype=np.intp)
    firsts[1:] = np.cumsum(counts)[:-1]
    size = int(counts.sum())
    times = np.empty(size, dtype=np.uint64)
    scaled = np.zeros(size, dtype=np.uint64)
    raw: list[tuple[int, int, npt.NDArray[np.uint8]]] = []
    for blob, (_, kind, _, widths, count), first in zip(
        blobs, headers, firsts.tolist(), strict=True
    ):
        body = zlib.decompress(memoryview(blob)[_HEADER.size :])
        time_code, value_code = widths & 0x0F, widths >> 4
        split = count * _WIDTHS[time_code]
        times[first : first + count] = np.frombuffer(body, f"<u{_WIDTHS[time_code]}", count)
        if kind == _RAW:
            raw.append((first, count, np.frombuffer(body, np.uint8, offset=split)))
        else:
            scaled[first : first + count] = np.frombuffer(
                body, f"<u{_WIDTHS[value_code]}", count, offset=split
            )
    timestamps = _segment_cumsum(_segment_cumsum(_unzigzag(times), firsts, counts), firsts, counts)
    scales = np.repeat(np.array([10.0 ** h[2] for h in headers]), counts)
    values = _segment_cumsum(_unzigzag(scaled), firsts, counts) / scales
    for first, count, shuffled in raw:
        values[first : first + count] = shuffled.reshape(8, -1).T.copy().view("<f8").reshape(-1)
    return timestamps, values
