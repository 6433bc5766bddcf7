"""A stream's sampling: rate and period derived from each other, and what telemetry forwards."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from iotkit.codec import decode, encode
from iotkit.validation import Violations
from services.telemetry.forwarder import StoredChunk, request_of
from services.telemetry.telemetry.sampling import (
    MAX_SAMPLING_RATE,
    PERIOD_MAX_US,
    PERIOD_MIN_US,
    Sampling,
    check_sampling,
    period_of_rate,
    rate_of_period,
)


@given(st.integers(min_value=1, max_value=MAX_SAMPLING_RATE))
def test_a_rate_gives_a_period_that_gives_it_back(rate: int) -> None:
    period = period_of_rate(rate)
    assert abs(period - 1e6 / rate) <= 0.5
    if period >= PERIOD_MIN_US:  # above 1 kHz a whole µs no longer tells neighbours apart
        assert rate_of_period(period) == rate


@given(st.integers(min_value=PERIOD_MIN_US, max_value=PERIOD_MAX_US))
def test_a_period_gives_its_rate_rounded_or_zero_below_one_hz(period: int) -> None:
    rate = rate_of_period(period)
    if period > 1_000_000:
        assert rate == 0
    else:
        assert rate == int(1e6 / period + 0.5) and rate >= 1


@pytest.mark.parametrize(
    ("rate", "period", "expected"),
    [
        (None, None, None),
        (0, None, Sampling(0, 0)),
        (50, None, Sampling(50, 20_000)),
        (None, 0, Sampling(0, 0)),
        (None, 300_000_000, Sampling(0, 300_000_000)),
        (None, 400_000, Sampling(3, 400_000)),  # 2.5 Hz: halves up
        (0, 300_000_000, Sampling(0, 300_000_000)),
        (10, 100_000, Sampling(10, 100_000)),
    ],
)
def test_what_is_given_decides_both(
    rate: int | None, period: int | None, expected: Sampling | None
) -> None:
    violations = Violations()
    assert check_sampling(violations, rate=rate, period_us=period) == expected
    assert violations.found() == []


@pytest.mark.parametrize(
    ("rate", "period", "field"),
    [
        (10, 200_000, "sampling_period"),
        (1, 0, "sampling_period"),
        (0, 100_000, "sampling_period"),
        (None, 999, "sampling_period"),
        (None, PERIOD_MAX_US + 1, "sampling_period"),
        (None, -1, "sampling_period"),
        (MAX_SAMPLING_RATE + 1, None, "sampling_rate"),
    ],
)
def test_disagreement_and_bounds_name_the_field(rate: int | None, period: int, field: str) -> None:
    violations = Violations()
    assert check_sampling(violations, rate=rate, period_us=period) is None
    assert [v.field for v in violations.found()] == [field]


def test_the_forwarder_sends_the_period_beside_the_rate() -> None:
    timestamps = np.array([1, 2, 3], dtype=np.int64) * 300_000_000
    chunk = StoredChunk(
        position=7,
        stream_id="s",
        device_id="d",
        owner_id="o",
        device_type="generic",
        metric_name="level",
        sampling_rate=0,
        sampling_period_us=300_000_000,
        data=encode(timestamps, np.array([1.0, 2.0, 3.0])),
        count=3,
    )
    (sent,) = request_of([chunk]).chunks
    assert (sent.sampling_rate, sent.sampling_period_us) == (0, 300_000_000)
    # The stored chunk goes as is: nothing decoded on the way.
    assert sent.data == chunk.data and not sent.timestamps and not sent.values
    sent_times, sent_values = decode(sent.data)
    assert sent_times.tolist() == timestamps.tolist() and sent_values.tolist() == [1.0, 2.0, 3.0]
