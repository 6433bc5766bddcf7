"""The simulator's signals: realistic, at the resolution of the sensor, deterministic, labelled."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotkit.codec import encode
from tools.signals import (
    ANOMALY_KINDS,
    DEVICE_TYPES,
    MODELS,
    NO_ANOMALIES,
    AnomalyRates,
    Scheduled,
    SignalSource,
)

START_US = 1_790_000_000_000_000  # 2026-09-21, a whole second
TYPES = st.sampled_from(DEVICE_TYPES)
SEEDS = st.integers(min_value=0, max_value=2**31)
RATES = st.sampled_from([0.1, 1.0, 10.0, 50.0, 1000.0])
BUSY = AnomalyRates(
    spikes_per_hour=600.0,
    dips_per_hour=600.0,
    stuck_per_hour=60.0,
    jumps_per_hour=60.0,
    gaps_per_hour=60.0,
    stuck_seconds=(2.0, 10.0),
    jump_seconds=(2.0, 10.0),
    gap_seconds=(1.0, 5.0),
)


def source(kind: str = "temperature", **overrides: object) -> SignalSource:
    options: dict[str, object] = {"rate_hz": 10.0, "start_us": START_US, "seed": 7}
    options.update(overrides)
    return SignalSource(kind, **options)  # type: ignore[arg-type]


@given(TYPES, SEEDS, RATES)
@settings(max_examples=40, deadline=None)
def test_values_are_on_the_sensor_resolution(kind: str, seed: int, rate: float) -> None:
    block = source(kind, seed=seed, rate_hz=rate, rates=BUSY).take(3000)
    decimals = MODELS[kind].decimals
    assert np.array_equal(np.round(block.values, decimals), block.values)
    assert np.all(np.isfinite(block.values))


@given(TYPES, SEEDS, st.lists(st.integers(min_value=0, max_value=5000), max_size=8))
@settings(max_examples=40, deadline=None)
def test_the_readings_do_not_depend_on_how_they_are_taken(
    kind: str, seed: int, sizes: list[int]
) -> None:
    whole = source(kind, seed=seed, rates=BUSY).take(sum(sizes))
    split = source(kind, seed=seed, rates=BUSY)
    blocks = [split.take(size) for size in sizes]
    timestamps = np.concatenate([np.empty(0, dtype=np.int64), *[b.timestamps for b in blocks]])
    values = np.concatenate([np.empty(0), *[b.values for b in blocks]])
    assert np.array_equal(timestamps, whole.timestamps)
    assert np.array_equal(values, whole.values)
    assert [a for b in blocks for a in b.anomalies] == list(whole.anomalies)
    assert split.position == sum(sizes)


@given(TYPES, SEEDS, RATES)
@settings(max_examples=30, deadline=None)
def test_timestamps_rise_on_the_sampling_grid(kind: str, seed: int, rate: float) -> None:
    signal = source(kind, seed=seed, rate_hz=rate, rates=BUSY)
    block = signal.take(2000)
    assert np.all(np.diff(block.timestamps) > 0)
    assert np.all((block.timestamps - START_US) % signal.period_us == 0)
    assert block.positions == 2000 and block.timestamps.size <= 2000


def test_the_same_seed_repeats_and_another_differs() -> None:
    first, again, other = (source(seed=s).take(500).values for s in (1, 1, 2))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_readings_look_like_each_sensor() -> None:
    for kind, low, high in (
        ("temperature", 5.0, 40.0),
        ("pressure", 950.0, 1070.0),
        ("motion", 0.5, 2.0),
    ):
        values = source(kind, rates=NO_ANOMALIES).take(5000).values
        assert low < values.min() and values.max() < high, kind
        assert values.std() > 0, kind


def test_temperature_follows_a_daily_cycle() -> None:
    # One reading a minute for four days: afternoons are warmer than nights.
    signal = source(
        rate_hz=1 / 60, rates=NO_ANOMALIES, start_us=START_US - START_US % 86_400_000_000
    )
    block = signal.take(4 * 24 * 60)
    hours = (block.timestamps // 3_600_000_000) % 24
    afternoon = block.values[(hours >= 14) & (hours < 17)].mean()
    night = block.values[(hours >= 2) & (hours < 5)].mean()
    assert afternoon - night > 1.0


def test_without_anomalies_nothing_is_labelled() -> None:
    block = source(rate_hz=1.0, rates=NO_ANOMALIES).take(20_000)
    assert block.anomalies == ()
    assert block.timestamps.size == 20_000


def test_every_kind_of_anomaly_happens_and_is_labelled_in_order() -> None:
    block = source(rate_hz=10.0, rates=BUSY).take(36_000)  # an hour
    kinds = {a.kind for a in block.anomalies}
    assert kinds == set(ANOMALY_KINDS)
    starts = [a.start_us for a in block.anomalies]
    assert starts == sorted(starts)
    assert all(a.end_us > a.start_us for a in block.anomalies)


def test_a_stuck_sensor_repeats_its_last_value() -> None:
    at = START_US + 10_000_000
    signal = source(rates=NO_ANOMALIES, scheduled=(Scheduled("stuck", at, 5_000_000),))
    block = signal.take(200)
    (label,) = block.anomalies
    assert (label.kind, label.start_us, label.end_us) == ("stuck", at, at + 5_000_000)
    inside = (block.timestamps >= label.start_us) & (block.timestamps < label.end_us)
    assert inside.sum() == 50
    assert np.all(block.values[inside] == label.magnitude)
    before = block.values[block.timestamps < label.start_us]
    assert before[-1] == label.magnitude  # what it measured last
    assert np.unique(block.values[block.timestamps >= label.end_us][:20]).size > 1


def test_a_gap_leaves_readings_out() -> None:
    at = START_US + 3_000_000
    signal = source(rates=NO_ANOMALIES, scheduled=(Scheduled("gap", at, 2_000_000),))
    block = signal.take(100)
    (label,) = block.anomalies
    assert label.kind == "gap"
    assert not np.any((block.timestamps >= label.start_us) & (block.timestamps < label.end_us))
    assert block.timestamps.size == 80 and block.positions == 100


@pytest.mark.parametrize(("kind", "sign"), [("spike", 1), ("dip", -1)])
def test_spikes_and_dips_stand_out_of_their_neighbours(kind: str, sign: int) -> None:
    at = START_US + 5_000_000
    signal = source(rates=NO_ANOMALIES, scheduled=(Scheduled(kind, at),))
    block = signal.take(100)
    (label,) = block.anomalies
    index = int(np.searchsorted(block.timestamps, label.start_us))
    neighbours = np.concatenate(
        [block.values[index - 5 : index], block.values[index + 1 : index + 6]]
    )
    assert sign * (block.values[index] - np.median(neighbours)) > 3.0
    assert label.magnitude * sign >= MODELS["temperature"].spike_range[0]
    assert label.end_us - label.start_us == signal.period_us


def test_a_jump_shifts_the_level_for_its_duration() -> None:
    at = START_US + 20_000_000
    signal = source(
        rates=NO_ANOMALIES, scheduled=(Scheduled("jump", at, 10_000_000, magnitude=5.0),)
    )
    block = signal.take(400)
    (label,) = block.anomalies
    inside = (block.timestamps >= label.start_us) & (block.timestamps < label.end_us)
    before = block.values[block.timestamps < label.start_us][-50:]
    assert block.values[inside].mean() - before.mean() == pytest.approx(5.0, abs=0.5)


def test_take_until_hands_out_what_is_due() -> None:
    signal = source(rate_hz=100.0, rates=NO_ANOMALIES)
    assert signal.take_until(START_US - 1).positions == 0
    assert signal.take_until(START_US + 1_000_000).positions == 101
    assert signal.take_until(START_US + 2_000_000, limit=10).positions == 10
    assert signal.positions_until(START_US + 2_000_000) == 90


def test_signals_store_in_a_few_bytes_per_reading() -> None:
    # What makes telemetry's storage small: a real sensor's resolution.
    for kind in DEVICE_TYPES:
        block = source(kind, rate_hz=1000.0).take(50_000)
        assert len(encode(block.timestamps, block.values)) / block.timestamps.size < 2.0, kind


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="device type"):
        source("humidity")
    with pytest.raises(ValueError, match="rate_hz"):
        source(rate_hz=0.0)
    with pytest.raises(ValueError, match="anomaly kind"):
        Scheduled("wobble", START_US)
    with pytest.raises(ValueError, match="negative"):
        source().take(-1)
