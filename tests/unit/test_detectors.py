"""The anomaly detector (services/analytics/analytics/detectors.py).

- On the development half of NAB (``../shared/datasets/nab-dev``), every series
  gives the same findings and scores however its readings are batched (1, 10,
  100 or 1,000 at a time), and the score of a reading does not change when
  readings after it arrive.
- Pathological series (constant, two values, huge and tiny magnitudes,
  negatives, repeated and out-of-order timestamps, long gaps, NaN and
  infinities, one reading, none) raise nothing, score in [0, 1], do not flood,
  and count their late readings.
- The state survives JSON mid-stream, and an old detector's state loads.
- Each kind of anomaly the simulator injects (``tools/signals.py``) is found,
  typed and dated.
"""

from __future__ import annotations

import functools
import json
import math
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest

from bench.nab import Corpus, Series, load_corpus
from services.analytics.analytics import recurrences
from services.analytics.analytics.detectors import (
    BINS,
    BOUNDS,
    DEFAULT_THRESHOLD,
    EVENT_US,
    MAX_BANDS,
    MAX_MAGNITUDE,
    PEAK_DECAY,
    PEAK_HALF_LIFE,
    PEAK_MEMORY_US,
    REST,
    REST_BREAK,
    SCALES,
    SPIKE_REST,
    TYPE_AFTER,
    WARMUP,
    DetectorState,
    Finding,
    StreamDetector,
    Track,
    _judge,
    ratio_score,
)
from tests.shared import SHARED
from tools.signals import MODELS, AnomalyRates, Scheduled, SignalSource

Int64s = npt.NDArray[np.int64]
Float64s = npt.NDArray[np.float64]

START_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
SECOND = 1_000_000
QUIET = AnomalyRates(0, 0, 0, 0, 0)
SCORE_TOLERANCE = 1e-9
NAB_DEV = SHARED / "datasets" / "nab-dev"


@dataclass(frozen=True)
class Run:
    """Everything a detector answered over a series, batches joined."""

    findings: list[Finding]
    timestamps: Int64s
    scores: Float64s
    late: int
    state: DetectorState


def feed(
    timestamps: Int64s,
    values: Float64s,
    *,
    batch: int | None = None,
    state: DetectorState | None = None,
    device_type: str = "",
    period_us: float = 0.0,
) -> Run:
    """Feed a fresh detector (or one from ``state``) in batches of ``batch`` readings
    (all at once when None)."""
    detector = StreamDetector(state or DetectorState.for_type(device_type))
    timestamps = np.asarray(timestamps, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    step = batch or max(1, values.size)
    findings: list[Finding] = []
    stamps: list[Int64s] = []
    scores: list[Float64s] = []
    late = 0
    for at in range(0, values.size, step):
        result = detector.process(
            timestamps[at : at + step], values[at : at + step], sampling_period_us=period_us
        )
        assert result.timestamps.size == result.scores.size
        findings += result.findings
        stamps.append(result.timestamps)
        scores.append(result.scores)
        late += result.late
    return Run(
        findings,
        np.concatenate(stamps) if stamps else np.zeros(0, dtype=np.int64),
        np.concatenate(scores) if scores else np.zeros(0),
        late,
        detector.state,
    )


def key(finding: Finding) -> tuple[str, int, int, float, float]:
    """What must not depend on batching, exactly."""
    return (
        finding.anomaly_type,
        finding.timestamp_us,
        finding.found_us,
        finding.confidence,
        finding.raw_value,
    )


def assert_same_run(run: Run, reference: Run, what: str) -> None:
    """The same findings (the expected value within rounding), readings, scores and late count."""
    assert [key(f) for f in run.findings] == [key(f) for f in reference.findings], what
    for mine, theirs in zip(run.findings, reference.findings, strict=True):
        assert mine.expected_value == pytest.approx(theirs.expected_value, rel=1e-9, abs=1e-9)
    assert np.array_equal(run.timestamps, reference.timestamps), what
    assert run.late == reference.late == run.state.late, what
    worst = float(np.max(np.abs(run.scores - reference.scores), initial=0.0))
    assert worst <= SCORE_TOLERANCE, f"{what}: scores differ by up to {worst}"


def late_rows(timestamps: Int64s, values: Float64s) -> int:
    """Readings not after the newest before them, or not finite, or beyond MAX_MAGNITUDE:
    what the detector must count as late (a plain loop, as the definition reads)."""
    newest: int | None = None
    late = 0
    for t, v in zip(timestamps.tolist(), values.tolist(), strict=True):
        if (newest is not None and t <= newest) or not abs(v) <= MAX_MAGNITUDE:
            late += 1
        newest = t if newest is None else max(newest, t)
    return late


def raised_us(finding: Finding) -> int:
    """The reading a finding was raised with: a departure's own (typed once TYPE_AFTER
    readings after it are known), else the one it was found with (a run's or gap's end)."""
    if finding.anomaly_type in ("spike", "dip", "rate_of_change"):
        return finding.timestamp_us
    return finding.found_us


def check_run(run: Run, timestamps: Int64s, values: Float64s, *, analysed_before: int = 0) -> None:
    """What holds of every run: scores finite in [0, 1], one per reading analysed, late
    readings counted, findings dated no later than found, one event per REST readings,
    nothing judged during the warm-up (``analysed_before`` readings were before the run),
    and a state JSON can hold."""
    assert np.all(np.isfinite(run.scores)), "a score is NaN or infinite"
    assert np.all((run.scores >= 0.0) & (run.scores <= 1.0))
    assert run.late == late_rows(timestamps, values)
    assert run.scores.size + run.late == values.size
    assert np.all(np.diff(run.timestamps) > 0), "readings analysed must be in time order"
    for finding in run.findings:
        assert finding.found_us >= finding.timestamp_us, finding
        assert math.isfinite(finding.confidence) and 0.0 <= finding.confidence <= 1.0, finding
        assert math.isfinite(finding.raw_value) and math.isfinite(finding.expected_value)
    # None comes before the warm-up is over. Gaps and flatlines are raised at least REST
    # readings after the previous one of them, or score REST_BREAK above it; spikes, dips
    # and level shifts have rests of their own (evidences of their own, raised apart from
    # the others), and one reading is never found twice as the same type.
    departures = ("spike", "dip", "rate_of_change")
    judged = sorted((f for f in run.findings if f.anomaly_type != "out_of_range"), key=raised_us)
    at = np.searchsorted(run.timestamps, [raised_us(f) for f in judged])
    assert np.all(at + analysed_before >= WARMUP), "a finding during the warm-up"
    sudden = [(f.anomaly_type, f.timestamp_us) for f in judged if f.anomaly_type in departures]
    assert len(sudden) == len(set(sudden)), "a reading found twice as the same type"
    judged = [f for f in judged if f.anomaly_type not in departures]
    at = np.searchsorted(run.timestamps, [raised_us(f) for f in judged])
    for before, after, apart in zip(judged, judged[1:], np.diff(at), strict=False):
        assert apart > REST or after.confidence >= before.confidence + REST_BREAK - 1e-4, (
            "two findings closer than REST readings, the second not stronger",
            before,
            after,
        )
    text = json.dumps(run.state.to_json(), allow_nan=False)  # PostgreSQL's JSON has no NaN
    assert DetectorState.from_json(json.loads(text)) == run.state


# -- building blocks ---------------------------------------------------------------


def test_ratio_score_is_half_at_the_threshold_and_never_one() -> None:
    ratios = np.array([0.0, 0.5, 1.0, 2.0, 10.0, 1e300, -1.0])
    assert ratio_score(ratios).tolist() == [0.0, 0.25, 0.5, 0.75, 0.95, 1.0 - 0.5e-300, 0.0]
    rising = ratio_score(np.linspace(0, 100, 10_001))
    assert np.all(np.diff(rising) > 0) and rising[-1] < 1.0


# -- (a) batch-size independence and causality on NAB's development half ------------


def _nab_names() -> list[str]:
    """The series of nab-dev, read at collection so that each is a test of its own."""
    try:
        names = sorted(json.loads((NAB_DEV / "labels" / "combined_windows.json").read_text()))
    except (OSError, ValueError):
        names = []
    return names or ["nab-dev is missing"]


@functools.cache
def nab_corpus() -> Corpus:
    if not (NAB_DEV / "labels" / "combined_windows.json").is_file():
        pytest.fail(
            f"{NAB_DEV} is missing: the development half of NAB (issue 11), which CI lays "
            "out beside the checkout as ../shared/datasets/nab-dev"
        )
    return load_corpus(NAB_DEV)


def nab_series(name: str) -> Series:
    by_name = {s.name: s for s in nab_corpus().series}
    assert name in by_name, f"{name} is not a series of {NAB_DEV}"
    return by_name[name]


@functools.cache
def nab_run(name: str, batch: int | None) -> Run:
    series = nab_series(name)
    return feed(series.timestamps_us, series.values, batch=batch)


def test_nab_dev_is_the_development_half() -> None:
    corpus = nab_corpus()
    assert len(corpus.series) == 31 and corpus.windows == 64
    # Its files are as NAB has them: repeated and out-of-order timestamps included.
    assert sum(late_rows(s.timestamps_us, s.values) for s in corpus.series) > 0


@pytest.mark.parametrize("name", _nab_names())
def test_nab_series_is_scored_alike_in_batches_of_10_100_and_1000(name: str) -> None:
    series = nab_series(name)
    reference = nab_run(name, 1000)
    check_run(reference, series.timestamps_us, series.values)
    for batch in (100, 10):
        assert_same_run(nab_run(name, batch), reference, f"{name} in batches of {batch}")
    assert_same_run(nab_run(name, None), reference, f"{name} in one batch")


ONE_AT_A_TIME = 2_000
"""Readings of each series fed one at a time: the warm-up (150) and the rest after it many
times over. The whole corpus at a call per reading cost the suite's slowest minute and a
half, for little more than batches of 10 over every whole series already prove."""


def _one_at_a_time(name: str) -> tuple[Run, Run]:
    """A worker's job: the start of ``name`` fed one reading at a time, and the same
    readings in batches of 1,000 (the corpus loaded once per worker)."""
    series = nab_series(name)
    timestamps, values = series.timestamps_us[:ONE_AT_A_TIME], series.values[:ONE_AT_A_TIME]
    return feed(timestamps, values, batch=1), feed(timestamps, values, batch=1000)


@functools.cache
def nab_runs_one_at_a_time() -> dict[str, tuple[Run, Run]]:
    """The start of every nab-dev series fed one reading at a time, on every core at
    once (about 0.5 ms per call, and each series is independent of the others). Spawned
    workers: the test process runs gRPC, which must not be forked."""
    names = sorted(_nab_names(), key=lambda n: -nab_series(n).values.size)  # longest first
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1, mp_context=context) as pool:
        return dict(zip(names, pool.map(_one_at_a_time, names), strict=True))


@pytest.mark.timeout(900)  # the first of them waits for the whole pool
@pytest.mark.parametrize("name", _nab_names())
def test_nab_series_is_scored_alike_one_reading_at_a_time(name: str) -> None:
    single, batched = nab_runs_one_at_a_time()[name]
    assert_same_run(single, batched, f"the first {ONE_AT_A_TIME:,} of {name} one at a time")


@pytest.mark.parametrize("name", _nab_names())
def test_nab_scores_do_not_change_when_later_readings_arrive(name: str) -> None:
    series = nab_series(name)
    whole = nab_run(name, None)
    for share in (0.2, 0.5, 0.77):
        cut = int(series.values.size * share)
        prefix = feed(series.timestamps_us[:cut], series.values[:cut])
        size = prefix.scores.size
        assert np.array_equal(prefix.timestamps, whole.timestamps[:size])
        assert np.allclose(prefix.scores, whole.scores[:size], rtol=0, atol=SCORE_TOLERANCE)
        # What was found by then was found, and dated, the same; nothing after it was.
        newest = prefix.state.last_ts
        assert newest is not None
        known = [f for f in whole.findings if f.found_us <= newest]
        assert [key(f) for f in prefix.findings] == [key(f) for f in known]


# -- (b) pathological series -----------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A synthetic series, and at most how many findings it may give: by default a few,
    as noise first reaches value bands beyond the range of its warm-up."""

    timestamps: Int64s
    values: Float64s
    most: int = 5
    device_type: str = ""
    period_us: float = 0.0


N = 900  # the warm-up, and 750 readings judged
GRID = START_US + np.arange(N, dtype=np.int64) * SECOND


def _noise(seed: int) -> Float64s:
    return np.random.default_rng(seed).normal(size=N)


def _every(k: int, inside: float, outside: float) -> Float64s:
    return np.where(np.arange(N) % k == 0, outside, inside)


PATHOLOGICAL: dict[str, Callable[[], Case]] = {
    "constant": lambda: Case(GRID, np.full(N, 3.0), most=1),
    "constant zero": lambda: Case(GRID, np.zeros(N), most=1),
    "constant, declared period": lambda: Case(GRID, np.full(N, 3.0), most=1, period_us=1e6),
    "two alternating values": lambda: Case(GRID, _every(2, 1.0, 2.0), most=1),
    "zero and one alternating": lambda: Case(GRID, _every(2, 0.0, 1.0), most=1),
    "two values a quantum apart": lambda: Case(
        GRID, np.random.default_rng(4).choice([5.0, 5.002], N), most=1
    ),
    "huge": lambda: Case(GRID, 1e12 + 1e10 * _noise(5)),
    "huge level, unit noise": lambda: Case(GRID, 1e12 + _noise(6)),
    "huge negative": lambda: Case(GRID, -1e12 + 1e10 * _noise(7)),
    "tiny": lambda: Case(GRID, 1e-9 * _noise(8)),
    "tiny positive": lambda: Case(GRID, 1e-9 * (1.0 + 0.1 * _noise(9))),
    "negative": lambda: Case(GRID, -50.0 + _noise(10)),
    "negative temperature": lambda: Case(
        GRID, -30.0 + 0.2 * _noise(11), device_type="temperature", period_us=1e6
    ),
    "magnitudes from 1e-9 to 1e12, either sign": lambda: Case(
        GRID, np.random.default_rng(12).choice([1e-9, -1e-9, 1e12, -1e12, 0.0], N)
    ),
    "each timestamp three times": lambda: Case(
        START_US + (np.arange(N, dtype=np.int64) // 3) * SECOND, _noise(13)
    ),
    "shuffled timestamps": lambda: Case(
        START_US + np.random.default_rng(14).permutation(N).astype(np.int64) * SECOND,
        _noise(15),
    ),
    "timestamps going backwards": lambda: Case(GRID[::-1].copy(), _noise(16), most=0),
    "a few out of order": lambda: Case(
        np.where(np.arange(N) % 97 == 5, GRID - 30 * SECOND, GRID), _noise(17)
    ),
    "long gaps": lambda: Case(
        START_US
        + np.cumsum(np.where(np.arange(N) % 400 == 399, 10**7, 1)).astype(np.int64) * SECOND,
        _noise(18),
        most=7,  # a gap may be found at each of the 2, beside the noise's few
    ),
    "a gap of thirty years": lambda: Case(
        np.where(np.arange(N) < 600, GRID, GRID + 30 * 365 * 86_400 * SECOND),
        _noise(19),
        most=6,  # the gap, beside the noise's few
        period_us=1e6,
    ),
    "irregular sampling": lambda: Case(
        START_US + np.cumsum(np.random.default_rng(20).integers(1, 600, N)) * SECOND,
        _noise(21),
    ),
    "NaN now and then": lambda: Case(GRID, np.where(np.arange(N) % 10 == 3, np.nan, _noise(22))),
    "infinities now and then": lambda: Case(
        GRID,
        np.where(np.arange(N) % 20 == 3, np.inf, np.where(np.arange(N) % 20 == 9, -np.inf, 0.0))
        + _noise(23),
    ),
    "NaN on a temperature sensor": lambda: Case(
        GRID,
        np.where(np.arange(N) % 10 == 3, np.nan, 20.0 + 0.1 * _noise(24)),
        device_type="temperature",
        period_us=1e6,
    ),
    "nothing but NaN": lambda: Case(GRID, np.full(N, np.nan), most=0),
    # Beyond what the issue asks (1e-9 … 1e12) but finite, so telemetry stores them.
    "extremes of a double in the warm-up": lambda: Case(GRID, _every(2, 1e308, -1e308)),
    "one reading of 1e200": lambda: Case(GRID, np.where(np.arange(N) == 400, 1e200, _noise(25))),
    "the largest values learnt from, in the warm-up": lambda: Case(
        GRID, _every(2, MAX_MAGNITUDE, -MAX_MAGNITUDE)
    ),
    "the largest value learnt from, once": lambda: Case(
        GRID, np.where(np.arange(N) == 400, -MAX_MAGNITUDE, _noise(26))
    ),
    "zero, then 1e10": lambda: Case(GRID, np.where(np.arange(N) < 300, 0.0, 1e10), most=2),
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_a_pathological_series_raises_nothing_and_does_not_flood(name: str) -> None:
    case = PATHOLOGICAL[name]()
    runs = {
        batch: feed(
            case.timestamps,
            case.values,
            batch=batch,
            device_type=case.device_type,
            period_us=case.period_us,
        )
        for batch in (None, 100, 7, 1)
    }
    reference = runs[None]
    check_run(reference, case.timestamps, case.values)
    found = [(f.anomaly_type, f.confidence) for f in reference.findings]
    assert len(found) <= case.most, found
    for batch, run in runs.items():
        assert_same_run(run, reference, f"{name} in batches of {batch}")


@pytest.mark.parametrize("seed", range(20))
def test_a_first_reading_off_its_neighbours_is_not_taken_for_the_level(seed: int) -> None:
    # A 1 kHz sensor whose first reading stood 4 deviations off: its slow level and daily
    # profile began there, and the warm-up's true level looked like a departure from it.
    timestamps = START_US + np.arange(5_000, dtype=np.int64) * 1_000
    values = np.round(18.0 + 0.03 * np.random.default_rng(seed).normal(size=5_000), 2)
    values[0] = 18.12
    found = feed(timestamps, values, batch=100, device_type="temperature").findings
    assert found == []


def test_a_single_reading_and_an_empty_batch() -> None:
    detector = StreamDetector(DetectorState.for_type("temperature"))
    empty = detector.process(np.zeros(0, dtype=np.int64), np.zeros(0))
    assert (empty.findings, empty.timestamps.size, empty.scores.size, empty.late) == ([], 0, 0, 0)
    one = detector.process(np.array([START_US]), np.array([21.5]))
    assert one.findings == [] and one.scores.tolist() == [0.0] and one.late == 0
    assert detector.process(np.zeros(0, dtype=np.int64), np.zeros(0)).scores.size == 0
    assert (detector.state.readings, detector.state.last_ts) == (1, START_US)


def test_late_readings_are_counted_and_checked_against_the_bounds_only() -> None:
    timestamps, values = GRID[:400], 20.0 + 0.1 * _noise(30)[:400]
    detector = StreamDetector(DetectorState.for_type("temperature"))
    detector.process(timestamps, values)
    # A batch that starts with readings older than the newest: one in range, one beyond
    # the bounds, one repeated, one NaN; then a new one, and a new one too large to learn from.
    result = detector.process(
        np.array([GRID[10], GRID[20], GRID[399], GRID[400], GRID[401], GRID[402]]),
        np.array([20.0, 150.0, 20.0, np.nan, 20.1, 1e200]),
    )
    assert result.late == 5 and detector.state.late == 5
    assert result.timestamps.tolist() == [int(GRID[401])]
    assert [(f.anomaly_type, f.timestamp_us, f.found_us) for f in result.findings] == [
        ("out_of_range", int(GRID[20]), int(GRID[20])),
        ("out_of_range", int(GRID[402]), int(GRID[402])),
    ]
    assert result.findings[0].expected_value == BOUNDS["temperature"][1]
    assert detector.state.readings == 401


# -- (c) state ---------------------------------------------------------------------------


def _signal(
    device_type: str,
    hours: float,
    *,
    seed: int = 3,
    rates: AnomalyRates = QUIET,
    scheduled: tuple[Scheduled, ...] = (),
) -> tuple[Int64s, Float64s]:
    source = SignalSource(
        device_type, rate_hz=1.0, start_us=START_US, seed=seed, rates=rates, scheduled=scheduled
    )
    block = source.take(int(hours * 3600))
    return block.timestamps, block.values


@pytest.mark.parametrize("cut", [77, 3601])  # in the warm-up, and well after it
def test_state_survives_a_json_round_trip_mid_stream(cut: int) -> None:
    timestamps, values = _signal("pressure", 2, seed=5, rates=AnomalyRates(2, 2, 1, 1, 1))
    whole = feed(timestamps, values, batch=100, device_type="pressure", period_us=1e6)
    assert whole.findings, "the labelled anomalies must be found"
    first = feed(timestamps[:cut], values[:cut], batch=100, device_type="pressure", period_us=1e6)
    text = json.dumps(first.state.to_json(), allow_nan=False)
    restored = DetectorState.from_json(json.loads(text))
    assert restored == first.state
    rest = feed(timestamps[cut:], values[cut:], batch=100, state=restored, period_us=1e6)
    assert [key(f) for f in first.findings + rest.findings] == [key(f) for f in whole.findings]
    joined = np.concatenate([first.scores, rest.scores])
    assert np.allclose(joined, whole.scores, rtol=0, atol=SCORE_TOLERANCE)


def test_a_spike_waiting_for_its_type_survives_a_json_round_trip() -> None:
    # The spike is the last reading of the first call: it is typed with the next reading,
    # which comes in the next call, to a detector restored from the stored state.
    timestamps, values = _signal(
        "temperature", 1, scheduled=(Scheduled("spike", INJECTED_AT - 600 * SECOND, magnitude=8.0),)
    )
    cut = int(np.searchsorted(timestamps, INJECTED_AT - 600 * SECOND)) + 1
    whole = feed(timestamps, values, device_type="temperature", period_us=1e6)
    first = feed(timestamps[:cut], values[:cut], device_type="temperature", period_us=1e6)
    assert len(first.state.pending) == 1
    restored = DetectorState.from_json(json.loads(json.dumps(first.state.to_json())))
    assert restored == first.state
    rest = feed(timestamps[cut:], values[cut:], state=restored, period_us=1e6)
    assert [key(f) for f in first.findings + rest.findings] == [key(f) for f in whole.findings]
    assert ("spike", int(timestamps[cut - 1]), int(timestamps[cut])) == (
        rest.findings[0].anomaly_type,
        rest.findings[0].timestamp_us,
        rest.findings[0].found_us,
    )


# What the previous detector (thresholds in robust standard deviations) stored for a
# temperature stream after an hour at 1 Hz, threshold raised to 8 by dismissals.
OLD_STATE = {
    "device_type": "temperature",
    "min_value": -40.0,
    "max_value": 85.0,
    "threshold": 8.0,
    "base_threshold": 8.0,
    "spike_min": 1.0,
    "shift_min": 1.0,
    "readings": 3600,
    "learned": 30,
    "level": 17.546591756099588,
    "scale": 0.03884219047051342,
    "min_step": 0.00999999999999801,
    "interval_us": 1000000.0,
    "repeat_rate": 0.3906331202732609,
    "last_ts": 1767229199000000,
    "last_value": 17.57,
    "run_length": 1,
    "run_start_us": 1767229199000000,
    "run_reported": False,
    "held_ts": [],
    "held_values": [],
    "warm": [],
    "level_last": 17.57,
    "dismissed": 2,
    "confirmed": 0,
}


def test_an_old_detectors_state_loads_with_the_default_threshold() -> None:
    state = DetectorState.from_json(json.loads(json.dumps(OLD_STATE)))
    assert state.threshold == state.base_threshold == DEFAULT_THRESHOLD
    assert (state.min_value, state.max_value) == BOUNDS["temperature"]
    assert (state.readings, state.last_ts, state.last_value) == (3600, 1767229199000000, 17.57)
    assert state.dismissed == 2
    # It carries on from where the old one stopped, and finds a spike.
    at = START_US + 5400 * SECOND
    timestamps, values = _signal("temperature", 2, scheduled=(Scheduled("spike", at),))
    assert int(timestamps[3599]) == OLD_STATE["last_ts"]
    run = feed(timestamps[3600:], values[3600:], batch=100, state=state, period_us=1e6)
    check_run(run, timestamps[3600:], values[3600:], analysed_before=3600)
    assert ("spike", at) in [(f.anomaly_type, f.timestamp_us) for f in run.findings]
    # A threshold already on the new scale is kept.
    assert DetectorState.from_json({"threshold": 0.7, "base_threshold": 0.6}).threshold == 0.7


def test_infinite_bounds_become_null_in_json() -> None:
    state = DetectorState.for_type("unknown")
    data = state.to_json()
    assert data["min_value"] is None and data["max_value"] is None
    assert math.isinf(DetectorState.from_json(data).max_value)


# -- (d) typed findings on the simulator's signals ---------------------------------------

INJECTED_AT = START_US + 3600 * SECOND  # after an hour of the sensor's own signal


def _injected(device_type: str, kind: str, duration_s: int) -> tuple[Run, Int64s, Float64s]:
    timestamps, values = _signal(
        device_type, 2, scheduled=(Scheduled(kind, INJECTED_AT, duration_s * SECOND),)
    )
    run = feed(timestamps, values, batch=100, device_type=device_type, period_us=1e6)
    check_run(run, timestamps, values)
    return run, timestamps, values


@pytest.mark.parametrize(
    ("kind", "expected", "duration_s", "dated_s", "found_within_s"),
    [
        # A spike or dip is known to be one with the next reading, back where it was.
        ("spike", "spike", 0, 0, TYPE_AFTER),
        ("dip", "dip", 0, 0, TYPE_AFTER),
        # A stuck sensor repeats the reading before the injection: the run starts there,
        # and it is known once it is twice as long as any normal run lately, and unlikely
        # for how often this sensor repeats a reading, and 20 readings long.
        ("stuck", "flatline", 120, -1, 60),
        # A gap is dated at the last reading before it and known with the first after it.
        ("gap", "gap", 30, -1, 30),
    ],
)
@pytest.mark.parametrize("device_type", ["temperature", "pressure", "motion"])
def test_an_injected_anomaly_is_found_typed_and_dated(
    device_type: str, kind: str, expected: str, duration_s: int, dated_s: int, found_within_s: int
) -> None:
    run, _, _ = _injected(device_type, kind, duration_s)
    near = [f for f in run.findings if abs(f.timestamp_us - INJECTED_AT) <= 2 * SECOND]
    assert [f.anomaly_type for f in near] == [expected], run.findings
    found = near[0]
    assert found.timestamp_us == INJECTED_AT + dated_s * SECOND
    assert INJECTED_AT <= found.found_us <= INJECTED_AT + found_within_s * SECOND
    assert found.confidence >= DEFAULT_THRESHOLD
    if kind != "stuck":
        # The score ranks: the injected anomaly outranks whatever else the series gave.
        # (A flatline's confidence is the score where it crossed the threshold: about 0.5.)
        # Above the healthy sensors' ceiling (0.8, below) and every other finding here.
        assert found.confidence >= 0.85
        assert all(f.confidence < found.confidence for f in run.findings if f is not found)


@pytest.mark.parametrize("device_type", ["temperature", "pressure", "motion"])
def test_spikes_and_dips_close_together_are_each_found_and_typed(device_type: str) -> None:
    # The largest spike the simulator makes, a mid-sized dip 30 s after it (past SPIKE_REST;
    # a spike teaches the bar 1.2 times itself at most), a jump, and a mid-sized spike and
    # dip on the jump's level, a minute apart: each is found,
    # typed and dated at its own reading. (A departure learnt whole would hide the smaller
    # ones for an hour; one finding per REST readings of whatever type would hide the dip
    # behind the spike, and the jump's level would hide what happens on it.)
    low, high = MODELS[device_type].spike_range
    events = (
        Scheduled("spike", INJECTED_AT, 0, high),
        Scheduled("dip", INJECTED_AT + (SPIKE_REST + 10) * SECOND, 0, -(low + high) / 2),
        Scheduled("jump", INJECTED_AT + 300 * SECOND, 300 * SECOND),
        Scheduled("spike", INJECTED_AT + 360 * SECOND, 0, (low + high) / 2),
        Scheduled("dip", INJECTED_AT + 420 * SECOND, 0, -(low + high) / 2),
    )
    timestamps, values = _signal(device_type, 2, scheduled=events)
    run = feed(timestamps, values, batch=100, device_type=device_type, period_us=1e6)
    check_run(run, timestamps, values)
    found = {(f.anomaly_type, f.timestamp_us) for f in run.findings}
    for event in events:
        if event.kind != "jump":
            assert (event.kind, event.start_us) in found, (event, run.findings)


@pytest.mark.parametrize("device_type", ["temperature", "pressure", "motion"])
def test_a_jump_ten_minutes_after_a_large_spike_is_found(device_type: str) -> None:
    # The largest spike the simulator makes inflates a level's variance for hundreds of
    # readings; a step to a level that holds is judged against the spread of steps, which
    # leaves spikes out, so the jump after it is still found where it starts.
    events = (
        Scheduled("spike", INJECTED_AT - 600 * SECOND, 0, MODELS[device_type].spike_range[1]),
        Scheduled("jump", INJECTED_AT, 300 * SECOND, MODELS[device_type].jump_range[1]),
    )
    timestamps, values = _signal(device_type, 2, scheduled=events)
    run = feed(timestamps, values, batch=100, device_type=device_type, period_us=1e6)
    check_run(run, timestamps, values)
    found = {(f.anomaly_type, f.timestamp_us) for f in run.findings}
    assert ("rate_of_change", INJECTED_AT) in found, run.findings


@pytest.mark.parametrize("device_type", ["temperature", "pressure", "motion"])
def test_a_jump_is_found_where_it_starts(device_type: str) -> None:
    run, _, _ = _injected(device_type, "jump", 300)
    found = [f for f in run.findings if f.timestamp_us == INJECTED_AT]
    assert len(found) == 1 and found[0].found_us == INJECTED_AT + TYPE_AFTER * SECOND
    # Well past the threshold (evidence at least twice its own), and above every other finding.
    assert found[0].confidence >= 0.75
    assert all(f.confidence < found[0].confidence for f in run.findings if f is not found[0])


@pytest.mark.parametrize("device_type", ["temperature", "pressure", "motion"])
def test_a_jump_is_a_rate_of_change_dated_at_its_first_reading_known_with_the_next(
    device_type: str,
) -> None:
    # Causally, the first reading of a level shift cannot be told from a spike; the next
    # one can: it stays. So it is typed once that reading is known, and dated where it began.
    run, _, _ = _injected(device_type, "jump", 300)
    found = [f for f in run.findings if abs(f.timestamp_us - INJECTED_AT) <= 2 * SECOND]
    assert [(f.anomaly_type, f.timestamp_us) for f in found] == [("rate_of_change", INJECTED_AT)]
    assert found[0].found_us == INJECTED_AT + TYPE_AFTER * SECOND


@pytest.mark.parametrize("device_type", ["temperature", "pressure", "motion"])
def test_a_sensor_stuck_again_after_a_long_stuck_run_is_found_again(device_type: str) -> None:
    # A stuck run teaches the detector no more than the bar it crossed (the bar doubles at
    # most), and that is forgotten: after one of five minutes, one of a minute an hour
    # later is found too (it was not when the longest run ever seen set the bar).
    later = INJECTED_AT + 3600 * SECOND
    timestamps, values = _signal(
        device_type,
        3,
        scheduled=(
            Scheduled("stuck", INJECTED_AT, 300 * SECOND),
            Scheduled("stuck", later, 60 * SECOND),
        ),
    )
    run = feed(timestamps, values, batch=100, device_type=device_type, period_us=1e6)
    check_run(run, timestamps, values)
    flat = [f.timestamp_us for f in run.findings if f.anomaly_type == "flatline"]
    assert flat == [INJECTED_AT - SECOND, later - SECOND], run.findings


@pytest.mark.parametrize("device_type", ["temperature", "pressure", "motion"])
def test_a_healthy_sensor_gives_nothing_as_confident_as_an_anomaly(device_type: str) -> None:
    timestamps, values = _signal(device_type, 3)
    run = feed(timestamps, values, batch=100, device_type=device_type, period_us=1e6)
    check_run(run, timestamps, values)
    # It does give findings (slow drifts into value bands the warm-up never saw), but
    # each at a score well below that of every injected anomaly above.
    assert all(f.confidence < 0.8 for f in run.findings), run.findings


def test_out_of_range_is_reported_once_per_excursion_with_its_bound() -> None:
    timestamps, values = _signal("temperature", 1)
    values = values.copy()
    values[1000:1003] = 150.0
    values[2000] = -60.0
    values[50] = 100.0  # in the warm-up: the bounds hold from the first reading
    run = feed(timestamps, values, batch=100, device_type="temperature", period_us=1e6)
    check_run(run, timestamps, values)
    beyond = [
        (f.timestamp_us, f.found_us, f.raw_value, f.expected_value, f.confidence)
        for f in run.findings
        if f.anomaly_type == "out_of_range"
    ]
    low, high = BOUNDS["temperature"]
    assert beyond == [
        (int(timestamps[50]), int(timestamps[50]), 100.0, high, 1.0),
        (int(timestamps[1000]), int(timestamps[1000]), 150.0, high, 1.0),
        (int(timestamps[2000]), int(timestamps[2000]), -60.0, low, 1.0),
    ]
    assert np.all(run.scores[[50, 1000, 1001, 1002, 2000]] == 1.0)


@pytest.mark.parametrize("batch", [1, 10, 150, None])
def test_an_out_of_range_reading_in_the_warm_up_leaves_novelty_working(batch: int | None) -> None:
    # The warm-up's last batch holds a reading beyond the bounds; novelty (a value far
    # beyond everything seen) must still score as it does when nothing was out of range.
    values = 20.0 + 0.5 * np.random.default_rng(1).normal(size=600)
    values[400] = 30.0
    clean = feed(GRID[:600], values, device_type="temperature", period_us=1e6)
    values[100] = 150.0
    run = feed(GRID[:600], values, batch=batch, device_type="temperature", period_us=1e6)
    assert run.state.bin_width > 0 and run.state.warm == []
    assert run.scores[400] == pytest.approx(clean.scores[400], abs=SCORE_TOLERANCE)


def test_novelty_bands_are_no_narrower_than_the_sensors_step() -> None:
    # A barometer reporting 0.1 hPa steps whose quiet warm-up spans two of them: bands of
    # a fortieth of a step made a reading one step past everything seen count as four
    # bands beyond it (score 0.67, a finding that ranked above real jumps).
    rng = np.random.default_rng(2)
    values = np.round(1000.0 + rng.choice([-0.1, 0.0, 0.1], size=400, p=[0.2, 0.6, 0.2]), 1)
    values[300] = 1000.2  # one step past the highest reading seen
    run = feed(GRID[:400], values, batch=50, period_us=1e6)
    check_run(run, GRID[:400], values)
    assert run.state.bin_width == pytest.approx(0.1)
    assert run.scores[300] == pytest.approx(float(ratio_score(np.array([1.0 + 1.0 / BINS]))[0]))


def test_novelty_far_beyond_the_warm_up_keeps_few_bands_whatever_the_batching() -> None:
    # A stream that ramps far beyond its warm-up's range (the bands double in width as
    # it goes), then goes back and forth between two bands it crossed.
    rng = np.random.default_rng(1)
    values = np.concatenate(
        [rng.uniform(0, 0.8, WARMUP), np.arange(1, 6001) * 0.1 + 0.05, np.tile([420.9, 430.9], 300)]
    )
    timestamps = START_US + np.arange(values.size, dtype=np.int64) * SECOND
    # The first 4,000 readings in one batch, then the rest in batches of different sizes.
    first = feed(timestamps[:4000], values[:4000])
    assert len(first.state.seen_bins) <= MAX_BANDS + 1
    runs = {
        batch: feed(
            timestamps[4000:],
            values[4000:],
            batch=batch,
            state=DetectorState.from_json(first.state.to_json()),
        )
        for batch in (1000, 10, 1)
    }
    assert len(runs[1].state.seen_bins) <= MAX_BANDS + 1
    for batch in (10, 1):
        assert_same_run(runs[batch], runs[1000], f"batches of {batch}")


@pytest.mark.parametrize("batch", [1, 10, 400])
def test_a_sensor_stuck_since_the_warm_up_is_found_once_judging_starts(batch: int) -> None:
    # Found live with `iot simulate`: a device stuck 10 s into its stream (at 10 Hz,
    # before the 150-reading warm-up was over) scored 0.8 all along, yet no flatline
    # was raised, since only the reading crossing the threshold could raise one.
    rng = np.random.default_rng(41)
    stuck_at = 100
    values = np.concatenate([20 + rng.normal(size=stuck_at), np.full(300, 20.5)])
    run = feed(GRID[:400], values, batch=batch)
    check_run(run, GRID[:400], values)
    flatlines = [f for f in run.findings if f.anomaly_type == "flatline"]
    assert [(f.timestamp_us, f.raw_value) for f in flatlines] == [(int(GRID[stuck_at]), 20.5)]
    assert flatlines[0].found_us == int(GRID[WARMUP + REST])


@pytest.mark.parametrize("batch", [1, 200])
@pytest.mark.parametrize("into_the_hour", [20, 220, 300, 380, 440, 620])
def test_flat_noise_raises_nothing_as_it_turns_into_new_hours(
    into_the_hour: int, batch: int
) -> None:
    # Seen as a flaky gateway test at 11:10 UTC: each hour's daily profile began at that
    # hour's first reading, so stepping into an hour not seen before shifted the residual
    # by the difference of two noise samples, and a weak finding (about 0.5) followed.
    rng = np.random.default_rng(11)
    values = np.round(21 + rng.uniform(-0.05, 0.05, 2000), 2)
    hour = 3_600 * SECOND
    start = (START_US // hour + 5) * hour - into_the_hour * SECOND
    timestamps = start + np.arange(2000, dtype=np.int64) * SECOND
    run = feed(timestamps, values, batch=batch, device_type="temperature")
    check_run(run, timestamps, values)
    assert run.findings == []


def test_a_stream_that_never_moved_is_not_stuck() -> None:
    # A status that has read 0 since it started: no reading ever said it should move.
    values = np.zeros(600)
    run = feed(GRID[:600], values)
    check_run(run, GRID[:600], values)
    assert run.findings == []
    assert run.scores.max() < DEFAULT_THRESHOLD


def test_a_sensor_stuck_right_after_another_finding_is_still_found() -> None:
    # A spike, then the sensor sticks at once: the run crosses its bar within the rest
    # after the spike, and is found when the rest is over.
    rng = np.random.default_rng(42)
    spike_at = 500
    values = np.concatenate(
        [20 + rng.normal(size=spike_at), [60.0, 20.3], np.full(200, 20.3), 20 + rng.normal(size=98)]
    )
    run = feed(GRID[:800], values)
    check_run(run, GRID[:800], values)
    found = [(f.anomaly_type, f.timestamp_us) for f in run.findings]
    assert ("spike", int(GRID[spike_at])) in found
    assert ("flatline", int(GRID[spike_at + 1])) in found


def test_a_drift_that_goes_on_is_one_departure_not_one_per_rest() -> None:
    # A level that starts drifting and keeps going: its score creeps past its own decayed
    # peak again and again. While it keeps reaching the threshold it is the same event,
    # found once (here twice: the score falls below the threshold for more than REST
    # readings in between), not every REST readings as the drift lasts (8 times).
    rng = np.random.default_rng(5)
    t = np.arange(N)
    values = rng.normal(size=N) + np.where(t > 400, 0.05 * (t - 400), 0.0)
    run = feed(GRID, values, batch=100)
    check_run(run, GRID, values)
    drift = [f for f in run.findings if f.timestamp_us > GRID[400]]
    assert drift and all(f.anomaly_type == "rate_of_change" for f in drift), run.findings
    assert len(drift) <= 2, drift


@pytest.mark.parametrize("device_type", ["motion", "temperature", "pressure"])
def test_a_fast_stream_without_anomalies_raises_next_to_nothing_in_its_first_minute(
    device_type: str,
) -> None:
    # Found in the soak: simulated devices at 1 kHz, no anomaly injected, raised hundreds of
    # findings each in their first minutes (seed 1's motion stream 335 in two minutes):
    # every cycle of a growing vibration crossed the threshold again more than REST (50 ms)
    # after the last, the bars forgot in 4 s what the last burst had shown, and the noise's
    # tails found new novelty bands laid out over a 150 ms warm-up.
    found = []
    for seed in (1, 5, 7, 3):
        source = SignalSource(
            device_type, rate_hz=1000, start_us=START_US, seed=seed * 1_000_003 + 2, rates=QUIET
        )
        block = source.take(60_000)
        run = feed(block.timestamps, block.values, batch=100, device_type=device_type)
        found += run.findings
    assert len(found) <= 4, found


@pytest.mark.parametrize("device_type", ["temperature", "pressure", "motion"])
def test_a_stuck_sensor_that_recovers_is_one_flatline_not_a_jump_too(device_type: str) -> None:
    # `iot simulate --seconds 0` sticks its first device a minute in every ten: when it
    # recovered, the value it came back to (where the signal had drifted meanwhile) was a
    # new band and a level shift, a rate_of_change after every flatline.
    stuck = tuple(
        Scheduled("stuck", START_US + (60 + 600 * n) * SECOND, 60 * SECOND) for n in range(3)
    )
    source = SignalSource(
        device_type, rate_hz=10, start_us=START_US, seed=1_000_003, rates=QUIET, scheduled=stuck
    )
    block = source.take(10 * 1800)
    runs = {
        batch: feed(
            block.timestamps, block.values, batch=batch, device_type=device_type, period_us=1e5
        )
        for batch in (1, 100)
    }
    assert_same_run(runs[1], runs[100], "batches of 1 and 100")
    found = [(f.anomaly_type, (f.timestamp_us - START_US) // SECOND) for f in runs[100].findings]
    starts = [(s.start_us - START_US) // SECOND for s in stuck]
    flats = [at for kind, at in found if kind == "flatline"]
    assert len(flats) == 3, found
    assert all(abs(a - b) <= 2 for a, b in zip(flats, starts, strict=True)), found
    # Nothing else where each recovered (the run's last second is the one before its end).
    recoveries = [(s.start_us + s.duration_us - START_US) // SECOND for s in stuck]
    assert not [
        (kind, at)
        for kind, at in found
        if kind != "flatline" and any(0 <= at - r <= 10 for r in recoveries)
    ], found


def test_a_jump_as_a_stuck_sensor_recovers_is_still_found() -> None:
    # The recovery is no news unless it is stronger than the flatline: a sensor that comes
    # back 40 deviations away did not drift there while it was stuck.
    values = 20.0 + 0.1 * _noise(3)
    values[400:700] = values[399]  # stuck for 300 readings
    values[700:] += 4.0
    run = feed(GRID, values, batch=100, period_us=1e6)
    check_run(run, GRID, values)
    found = [(f.anomaly_type, int((f.timestamp_us - START_US) // SECOND)) for f in run.findings]
    assert any(kind == "flatline" and 398 <= at <= 400 for kind, at in found), found
    assert any(kind == "rate_of_change" and 700 <= at <= 702 for kind, at in found), found


def test_a_departure_held_near_the_threshold_is_one_event_until_it_lapses() -> None:
    # Readings one second apart: a reach, readings held (at HOLD times the threshold or
    # more) every second for a minute with reaches among them, then nothing held for more
    # than EVENT_US, and a reach: a new event. Held readings before any reach start none.
    ts = START_US + np.arange(200, dtype=np.int64) * SECOND
    reach = np.zeros(200, dtype=np.bool_)
    held = np.zeros(200, dtype=np.bool_)
    held[0:5] = True  # held before any reach: no event
    reach[10] = True
    held[11:70] = True
    reach[[40, 69]] = True  # more than REST readings after the first, inside the event
    lapsed = 69 + max(REST, EVENT_US // SECOND) + 2
    reach[lapsed] = True  # the event lapsed, and more than REST readings passed: a new one
    reach[lapsed + 20] = True  # held by nothing, but within REST readings of the last reach
    same, since, held_us, active = recurrences.events(
        reach, held, ts, REST, EVENT_US, REST + 1, 0, False
    )
    reaches = [10, 40, 69, lapsed, lapsed + 20]
    assert np.flatnonzero(reach).tolist() == reaches
    assert same[reaches].tolist() == [False, True, True, False, True]
    # The same answers in two batches, the state carried between them.
    first = recurrences.events(reach[:60], held[:60], ts[:60], REST, EVENT_US, REST + 1, 0, False)
    second = recurrences.events(reach[60:], held[60:], ts[60:], REST, EVENT_US, *first[1:])
    assert np.array_equal(np.concatenate([first[0], second[0]]), same)
    assert (second[1], second[2], second[3]) == (since, held_us, active)


def test_the_bars_remember_an_hour_however_fast_the_stream() -> None:
    # At one reading a second or slower, PEAK_HALF_LIFE readings are an hour or more; at
    # 1 kHz they were 4 s, and each burst of vibration minutes apart was news again.
    logs = np.log(np.array([1e6, 300e6, 1e3]))
    _, decays, _ = recurrences.resolutions(
        np.zeros(4), 0.0, math.inf, np.concatenate([[0.0], logs]), PEAK_HALF_LIFE, PEAK_MEMORY_US
    )
    assert decays[:3].tolist() == [PEAK_DECAY] * 3  # unknown interval, 1 s, 5 min
    assert decays[3] ** (PEAK_MEMORY_US / 1e3) == pytest.approx(0.5)


def test_a_finding_after_a_zero_is_typed_alike_whatever_the_batch() -> None:
    # The reading before a finding decides spike/dip against rate_of_change; a 0.0 there
    # is a reading like any other, at the start of a batch or inside one (as in NAB's
    # grok_asg_anomaly.csv). Here 2.63 after a run of zeros, far below the level of 25:
    # a slow departure from the zeros, not a sudden one. (The low readings alternate, so
    # that they are no stuck run: a flatline found there would hold 2.63 back; and they
    # last two minutes, so that the departure to them has ended: one still going on
    # within REST readings before would make 2.63 part of it.)
    rng = np.random.default_rng(40)
    values = np.concatenate(
        [25 + rng.normal(size=300), np.tile([0.01, 0.0], 60), [2.63], 25 + rng.normal(size=39)]
    )
    runs = {batch: feed(GRID[:460], values, batch=batch) for batch in (460, 1)}
    assert ("rate_of_change", int(GRID[420])) in [
        (f.anomaly_type, f.timestamp_us) for f in runs[460].findings
    ]
    assert_same_run(runs[1], runs[460], "one reading at a time")


# -- (e) dating and causality on the simulator's signals ----------------------------------


@pytest.mark.parametrize("device_type", ["temperature", "pressure", "motion"])
def test_scores_and_findings_are_causal(device_type: str) -> None:
    timestamps, values = _signal(device_type, 2, seed=7, rates=AnomalyRates(2, 2, 1, 1, 1))
    whole = feed(timestamps, values, device_type=device_type, period_us=1e6)
    check_run(whole, timestamps, values)
    assert {f.anomaly_type for f in whole.findings} >= {"spike", "dip", "flatline", "gap"}
    assert any(f.found_us > f.timestamp_us for f in whole.findings), "runs and gaps come later"
    for cut in (151, 1000, 3333, 5000):
        prefix = feed(timestamps[:cut], values[:cut], device_type=device_type, period_us=1e6)
        assert np.allclose(prefix.scores, whole.scores[:cut], rtol=0, atol=SCORE_TOLERANCE)
        known = [f for f in whole.findings if f.found_us <= timestamps[cut - 1]]
        assert [key(f) for f in prefix.findings] == [key(f) for f in known]


def test_the_resolution_is_the_smallest_step_before_each_reading() -> None:
    xs = np.array([1.0, 1.5, 1.5, 1.25, 3.0])
    floor, _, smallest = recurrences.resolutions(
        xs, 1.0, math.inf, np.zeros(xs.size), PEAK_HALF_LIFE, PEAK_MEMORY_US
    )
    # No step before the first two (a repeat is no step); then 0.5, then 0.25.
    assert floor.tolist() == pytest.approx([1e-9, 1.5e-9, 0.5, 0.5, 0.25])
    assert smallest == 0.25


def test_the_window_mean_holds_whatever_the_magnitudes_before() -> None:
    # The sum of the recent readings runs from batch to batch; huge values leaving it must
    # not leave their rounding in the mean of small ones that follow.
    rng = np.random.default_rng(3)
    xs = np.concatenate([1e12 + rng.normal(size=500) * 1e6, 1.0 + rng.normal(size=500) * 1e-3])
    track = Track()
    means = []
    for part in np.array_split(xs, 7):
        _judge(SCALES[1], track, part, np.full(part.size, 1e-300), np.ones(part.size), False)
        means.append(track.total / track.recent.size)
    assert track.recent.size == SCALES[1].window
    assert track.total / track.recent.size == pytest.approx(xs[-SCALES[1].window :].mean())
    assert math.isfinite(means[0])


def test_a_track_saved_before_the_running_sum_loads_with_it() -> None:
    saved = {"level": 1.0, "variance": 0.5, "peak": 2.0, "recent": [1.0, 2.0, 4.0]}
    track = Track.from_json(saved)
    assert (track.total, track.taken) == (7.0, 0)
    # Arrays are stored packed (base64 of their bytes), exactly.
    track.recent = np.array([0.1, -1e300, 5e-324])
    saved_now = track.to_json()
    assert isinstance(saved_now["recent"], str)
    assert Track.from_json(json.loads(json.dumps(saved_now))) == track
