"""The chunk codec is lossless and compact."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from iotkit.codec import decode, decode_many, encode

MICROS = st.integers(min_value=0, max_value=4_000_000_000_000_000)


@given(
    st.lists(
        st.tuples(MICROS, st.floats(allow_nan=False, allow_infinity=False, width=64)), max_size=300
    )
)
def test_any_finite_chunk_round_trips_exactly(pairs: list[tuple[int, float]]) -> None:
    pairs.sort()
    timestamps = np.array([p[0] for p in pairs], dtype=np.int64)
    values = np.array([p[1] for p in pairs], dtype=np.float64)
    back_ts, back_values = decode(encode(timestamps, values))
    assert np.array_equal(back_ts, timestamps)
    assert np.array_equal(back_values.view(np.int64), values.view(np.int64))  # bit for bit


@given(
    st.lists(st.integers(min_value=-5_000_000, max_value=5_000_000), min_size=1, max_size=300),
    st.integers(0, 4),
)
def test_decimal_values_round_trip(scaled: list[int], decimals: int) -> None:
    values = np.array(scaled, dtype=np.float64) / 10.0**decimals
    timestamps = np.arange(len(scaled), dtype=np.int64) * 1_000_000
    back_ts, back_values = decode(encode(timestamps, values))
    assert np.array_equal(back_values, values) and np.array_equal(back_ts, timestamps)


def test_a_sensor_signal_takes_under_two_bytes_a_reading() -> None:
    rng = np.random.default_rng(7)
    count = 10_000
    timestamps = 1_700_000_000_000_000 + np.arange(count, dtype=np.int64) * 100_000  # 10 Hz
    signal = 21.0 + 3.0 * np.sin(np.arange(count) / 500.0) + rng.normal(0, 0.05, count)
    values = np.round(signal, 2)  # a 0.01 degC sensor
    blob = encode(timestamps, values)
    assert len(blob) / count < 2.0
    back_ts, back_values = decode(blob)
    assert np.array_equal(back_values, values) and np.array_equal(back_ts, timestamps)


def test_empty_chunk() -> None:
    empty_ts, empty_values = decode(
        encode(np.array([], dtype=np.int64), np.array([], dtype=np.float64))
    )
    assert empty_ts.size == 0 and empty_values.size == 0


CHUNK = st.lists(
    st.tuples(
        MICROS,
        st.one_of(
            st.integers(-5_000_000, 5_000_000).map(lambda n: n / 100),  # a decimal sensor
            st.floats(allow_nan=False, allow_infinity=False, width=64),  # raw floats
        ),
    ),
    max_size=60,
)


@given(st.lists(CHUNK, max_size=8))
def test_decode_many_is_decode_of_each_concatenated(chunks: list[list[tuple[int, float]]]) -> None:
    blobs = []
    for pairs in chunks:
        pairs.sort()
        timestamps = np.array([p[0] for p in pairs], dtype=np.int64)
        values = np.array([p[1] for p in pairs], dtype=np.float64)
        blobs.append(encode(timestamps, values))
    each = [decode(blob) for blob in blobs]
    many_ts, many_values = decode_many(blobs)
    expected_ts = np.concatenate([ts for ts, _ in each]) if each else np.empty(0, np.int64)
    expected_values = np.concatenate([v for _, v in each]) if each else np.empty(0)
    assert np.array_equal(many_ts, expected_ts)
    assert np.array_equal(many_values.view(np.int64), expected_values.view(np.int64))


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"\x01\x01",  # shorter than the header
        b"\x02\x01\x00\x00\x01\x00\x00\x00",  # an unknown version
        b"\x01\x07\x00\x00\x01\x00\x00\x00" + zlib.compress(b"\x00" * 2),  # an unknown kind
        b"\x01\x01\x00\x00\x01\x00\x00\x00not deflated",
        # The header claims 2**31 readings; the body inflates far beyond what is read.
        b"\x01\x01\x00\x00\x00\x00\x00\x80" + zlib.compress(b"\x00" * 100_000),
        # One reading claimed, two sent.
        b"\x01\x01\x00\x00\x01\x00\x00\x00" + zlib.compress(b"\x00" * 4),
    ],
)
def test_what_is_not_a_chunk_is_a_value_error(blob: bytes) -> None:
    with pytest.raises(ValueError):
        decode(blob)
