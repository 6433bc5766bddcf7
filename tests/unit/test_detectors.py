"""The online detectors on synthetic signals with labelled anomalies (tools/signals.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.analytics.analytics.detectors import (
    BOUNDS,
    DetectorState,
    Finding,
    StreamDetector,
    ewma,
)
from tools.signals import AnomalyRates, Scheduled, SignalSource

START_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
SECOND = 1_000_000
QUIET = AnomalyRates(0, 0, 0, 0, 0)


def detect(
    device_type: str,
    timestamps: np.ndarray,
    values: np.ndarray,
    *,
    batch: int = 100,
    state: DetectorState | None = None,
) -> list[Finding]:
    """Feed the series in batches of ``batch`` readings; answers every finding."""
    detector = StreamDetector(state or DetectorState.for_type(device_type))
    found: list[Finding] = []
    for at in range(0, values.size, batch):
        found += detector.process(
            timestamps[at : at + batch], values[at : at + batch], sampling_period_us=1e6
        ).findings
    return found


def series(
    device_type: str, hours: float, *, seed: int = 3, scheduled: tuple[Scheduled, ...] = ()
) -> tuple[np.ndarray, np.ndarray]:
    source = SignalSource(
        device_type, rate_hz=1.0, start_us=START_US, seed=seed, rates=QUIET, scheduled=scheduled
    )
    block = source.take(int(hours * 3600))
    return block.timestamps, block.values


def test_ewma_continues_across_blocks_like_the_recurrence() -> None:
    values = np.random.default_rng(1).normal(size=1000)
    expected = np.empty_like(values)
    level = 2.0
    for index, value in enumerate(values):
        level = 0.05 * value + 0.95 * level
        expected[index] = level
    assert np.allclose(ewma(values, 0.05, 2.0), expected)
    halves = np.concatenate(
        [ewma(values[:300], 0.05, 2.0), ewma(values[300:], 0.05, expected[299])]
    )
    assert np.allclose(halves, expected)


@pytest.mark.parametrize("device_type", ["temperature", "pressure", "motion"])
def test_a_healthy_sensor_raises_nothing(device_type: str) -> None:
    timestamps, values = series(device_type, 3)
    assert detect(device_type, timestamps, values) == []


@pytest.mark.parametrize(
    ("kind", "expected", "duration_s"),
    [
        ("spike", "spike", 0),
        ("dip", "dip", 0),
        ("stuck", "flatline", 120),
        ("jump", "rate_of_change", 300),
        ("gap", "gap", 30),
    ],
)
@pytest.mark.parametrize("device_type", ["temperature", "pressure", "motion"])
def test_each_injected_anomaly_is_found_where_it_happened(
    device_type: str, kind: str, expected: str, duration_s: int
) -> None:
    at = START_US + 3600 * SECOND
    timestamps, values = series(
        device_type, 2, scheduled=(Scheduled(kind, at, duration_s * SECOND),)
    )
    found = detect(device_type, timestamps, values)
    # A jump lasts a while and the level jumps back at its end: that is a second jump.
    allowed = [[expected], [expected, expected]] if kind == "jump" else [[expected]]
    assert [f.anomaly_type for f in found] in allowed
    # A gap is reported at the last reading before it; the others at their first reading.
    assert abs(found[0].timestamp_us - at) <= 2 * SECOND
    if len(found) == 2:
        assert abs(found[1].timestamp_us - (at + duration_s * SECOND)) <= 2 * SECOND
    assert all(0.5 <= f.confidence <= 1.0 for f in found)


# Motion is left out: its vibration bursts end a batch now and then, and a burst still
# going on is judged on the readings so far, so a borderline one may go either way.
@pytest.mark.parametrize("device_type", ["temperature", "pressure"])
def test_findings_do_not_depend_on_how_readings_are_batched(device_type: str) -> None:
    source = SignalSource(
        device_type,
        rate_hz=1.0,
        start_us=START_US,
        seed=7,
        rates=AnomalyRates(2, 2, 1, 1, 1),
    )
    block = source.take(4 * 3600)
    by_batch = {
        size: [
            (f.anomaly_type, f.timestamp_us)
            for f in detect(device_type, *_arrays(block), batch=size)
        ]
        for size in (1, 37, 100, 1000, 5000)
    }
    assert by_batch[100], "the labelled anomalies must be found"
    # One reading per batch is what a slow device sends: a 10 Hz sensor batching every 100 ms.
    assert by_batch[1] == by_batch[37] == by_batch[100] == by_batch[1000] == by_batch[5000]


def _arrays(block: object) -> tuple[np.ndarray, np.ndarray]:
    return block.timestamps, block.values  # type: ignore[attr-defined]


def test_out_of_range_is_reported_once_per_excursion_with_its_bound() -> None:
    timestamps, values = series("temperature", 1)
    values = values.copy()
    values[1000:1003] = 150.0
    found = detect("temperature", timestamps, values)
    assert [(f.anomaly_type, f.timestamp_us) for f in found] == [
        ("out_of_range", int(timestamps[1000]))
    ]
    assert found[0].expected_value == BOUNDS["temperature"][1]


def test_state_survives_a_json_round_trip_mid_stream() -> None:
    at = START_US + 5400 * SECOND
    timestamps, values = series("pressure", 2, scheduled=(Scheduled("spike", at),))
    whole = detect("pressure", timestamps, values)
    first = StreamDetector(DetectorState.for_type("pressure"))
    for start in range(0, 3600, 100):
        assert not first.process(
            timestamps[start : start + 100], values[start : start + 100], sampling_period_us=1e6
        ).findings
    restored = DetectorState.from_json(first.state.to_json())
    assert restored == first.state
    rest = detect("pressure", timestamps[3600:], values[3600:], state=restored)
    assert [(f.anomaly_type, f.timestamp_us) for f in rest] == [
        (f.anomaly_type, f.timestamp_us) for f in whole
    ]


def test_infinite_bounds_become_null_in_json() -> None:
    state = DetectorState.for_type("unknown")
    data = state.to_json()
    assert data["min_value"] is None and data["max_value"] is None
    assert math.isinf(DetectorState.from_json(data).max_value)
