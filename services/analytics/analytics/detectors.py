"""Online anomaly detection for one stream, vectorised per batch with numpy.

A :class:`StreamDetector` keeps a small state between batches (robust level
and scale, typical interval, the current run of identical values, readings
not yet classified) and finds, in each new batch:

- ``out_of_range``: a value outside the physical bounds of the device type;
- ``spike`` / ``dip``: one or two readings far above / below the robust level
  (an exponentially weighted level that outliers do not move, and a scale
  learnt from the non-outlying residuals only);
- ``rate_of_change``: a level shift — several readings in a row far off on
  the same side, i.e. a jump faster than the signal ever moves;
- ``flatline``: the same value repeated far longer than chance allows for
  this stream (the run length adapts to how often this stream repeats);
- ``gap``: readings missing for longer than the sampling rate allows.

Readings at the end of a batch that might still turn out to be a level
shift are held back and classified with the next batch, so results do not
depend on how readings are split into batches.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

Int64s = npt.NDArray[np.int64]
Float64s = npt.NDArray[np.float64]

BOUNDS: dict[str, tuple[float, float]] = {
    "temperature": (-40.0, 85.0),  # °C: the range of common ambient temperature sensors
    "pressure": (300.0, 1100.0),  # hPa: barometric sensors' range
    "motion": (-16.0, 16.0),  # g: the range of a ±16 g accelerometer
}
# Smallest departures worth telling a user about, per device type: (spike or dip, level shift).
SIGNIFICANT: dict[str, tuple[float, float]] = {
    "temperature": (1.0, 1.0),  # °C
    "pressure": (1.0, 1.0),  # hPa
    "motion": (0.5, 0.03),  # g: vibration comes and goes; only hits and drifts of the mount count
}
DEFAULT_THRESHOLD = 8.0  # robust standard deviations
ALPHA = 0.05  # level smoothing per reading
BETA = 0.02  # scale smoothing per reading
WARMUP = 30  # readings before spikes are judged
SPIKE_MAX = 2  # a run of at most this many outliers is a spike or dip
STEP_MIN = SPIKE_MAX + 1  # a longer run is a level shift
CLEAN_PASSES = 4  # most smoothing passes that clean outliers out of the level
HOLD_MAX = 2000  # a burst still going on is held for the next batch up to this many readings
GAP_FACTOR = 5.0  # a gap is this many intervals missing
FLAT_MIN_SECONDS = 5.0
FLAT_MIN_READINGS = 20
FLAT_FALSE_ALARM = 1e-10  # chance per reading of a run this long on a healthy sensor
REPEAT_KEEP = 0.9999  # memory of how often a stream repeats a value: ~10,000 readings
_SIGMA_PER_MEAN_ABS = math.sqrt(math.pi / 2)  # mean |x| of a normal is sigma * sqrt(2/pi)
_EWMA_BLOCK = 256  # keeps (1 - alpha) ** -k far from overflow


@dataclass(frozen=True, slots=True)
class Finding:
    """One anomaly found in a batch."""

    anomaly_type: str
    timestamp_us: int  # the reading it is about (a run's or gap's start)
    raw_value: float
    confidence: float
    expected_value: float
    found_us: int = 0  # the reading with which the detector could know it


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one batch gave: findings in time order, and a score per reading analysed."""

    findings: list[Finding]
    timestamps: Int64s
    scores: Float64s
    late: int = 0  # readings older than the stream's newest: counted, not learnt from


@dataclass(frozen=True, slots=True)
class Prediction:
    """The level predicted for each reading of a batch, before it, and how far each was off."""

    predicted: Float64s
    residual: Float64s
    outlier: npt.NDArray[np.bool_]
    # The smoothed level after each reading, when no reading was an outlier.
    clean_level: Float64s | None


@dataclass
class DetectorState:
    """What a stream's detector carries from one batch to the next (JSON-serialisable)."""

    device_type: str = ""
    min_value: float = -math.inf
    max_value: float = math.inf
    threshold: float = DEFAULT_THRESHOLD
    base_threshold: float = DEFAULT_THRESHOLD
    spike_min: float = 0.0
    shift_min: float = 0.0
    readings: int = 0
    learned: int = 0
    level: float = 0.0
    scale: float = 0.0
    min_step: float = math.inf
    interval_us: float = 0.0
    repeat_rate: float = 0.5
    last_ts: int | None = None
    last_value: float | None = None
    run_length: int = 0
    run_start_us: int = 0
    run_reported: bool = False
    held_ts: list[int] = field(default_factory=list)
    held_values: list[float] = field(default_factory=list)
    # The first readings, gathered until there are enough to learn level and scale from.
    warm: list[float] = field(default_factory=list)
    # The last reading the level has seen (the one before the next batch's first).
    level_last: float | None = None
    dismissed: int = 0
    confirmed: int = 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (infinite bounds become None)."""
        data = asdict(self)
        for key in ("min_value", "max_value", "min_step"):
            if not math.isfinite(data[key]):
                data[key] = None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DetectorState:
        """Inverse of :meth:`to_json`."""
        values = dict(data)
        values["min_value"] = -math.inf if values.get("min_value") is None else values["min_value"]
        values["max_value"] = math.inf if values.get("max_value") is None else values["max_value"]
        values["min_step"] = math.inf if values.get("min_step") is None else values["min_step"]
        return cls(**values)

    @classmethod
    def for_type(cls, device_type: str) -> DetectorState:
        """A fresh state with the physical bounds of ``device_type``."""
        low, high = BOUNDS.get(device_type, (-math.inf, math.inf))
        spike_min, shift_min = SIGNIFICANT.get(device_type, (0.0, 0.0))
        return cls(
            device_type=device_type,
            min_value=low,
            max_value=high,
            spike_min=spike_min,
            shift_min=shift_min,
        )


_POWERS: dict[float, Float64s] = {}


def _powers(keep: float) -> Float64s:
    """``keep ** k`` for k = 1 .. _EWMA_BLOCK, cached: every batch of a stream uses the same."""
    if keep not in _POWERS:
        _POWERS[keep] = np.power(keep, np.arange(1, _EWMA_BLOCK + 1), dtype=np.float64)
    return _POWERS[keep]


def ewma(values: Float64s, alpha: float, start: float) -> Float64s:
    """Exponentially weighted moving average of ``values`` continuing from ``start``, vectorised."""
    size = values.size
    if not size:
        return values.astype(np.float64)
    keep = 1.0 - alpha
    blocks = -(-size // _EWMA_BLOCK)
    if blocks * _EWMA_BLOCK == size:
        grid = values.reshape(blocks, _EWMA_BLOCK)
    else:
        padded = np.zeros(blocks * _EWMA_BLOCK)
        padded[:size] = values
        grid = padded.reshape(blocks, _EWMA_BLOCK)
    powers = _powers(keep)
    # Within a block, from a zero start: y_k = alpha * keep^k * sum_j x_j / keep^j.
    local = np.cumsum(grid / powers, axis=1)
    local *= powers
    local *= alpha
    # Each block starts where the previous one ended: a short scalar recurrence over blocks.
    carry = np.empty(blocks)
    previous = start
    tail = float(powers[-1])
    for block, last in enumerate(local[:, -1].tolist()):
        carry[block] = previous
        previous = tail * previous + last
    local += powers * carry[:, None]
    return local.reshape(-1)[:size]


def _runs(codes: npt.NDArray[np.int8]) -> tuple[Int64s, Int64s]:
    """Start index and length of every run of equal non-zero codes."""
    padded = np.concatenate([[0], codes, [0]])
    change = np.flatnonzero(np.diff(padded) != 0)
    starts, stops = change[:-1], change[1:]
    keep = codes[starts] != 0 if starts.size else np.zeros(0, dtype=bool)
    return starts[keep], (stops - starts)[keep]


def _confidence(excess: float) -> float:
    """From how far past the threshold (as a ratio, 1 = at it) to a confidence in [0.5, 1]."""
    return float(min(1.0, 0.5 + 0.5 * (1.0 - math.exp(-(max(excess, 1.0) - 1.0) * 2.0))))


class StreamDetector:
    """The detector of one stream; see the module docstring."""

    def __init__(self, state: DetectorState) -> None:
        self.state = state

    def process(
        self, timestamps: Int64s, values: Float64s, *, sampling_period_us: float = 0.0
    ) -> BatchResult:
        """Analyse the next batch (ascending timestamps)."""
        findings = self._process(
            timestamps, values, 1e6 / sampling_period_us if sampling_period_us > 0 else 0.0
        )
        return BatchResult(findings, timestamps, np.zeros(timestamps.size))

    def _process(
        self, timestamps: Int64s, values: Float64s, sampling_rate: float = 0.0
    ) -> list[Finding]:
        """Analyse the next batch (ascending timestamps); answers what it found, in time order."""
        findings: list[Finding] = []
        if not values.size:
            return findings
        s = self.state
        order_ok = s.last_ts is None or int(timestamps[0]) > s.last_ts
        if not order_ok:  # late readings: judge their values, not their timing
            keep = timestamps > (s.last_ts or 0)
            late_ts, late_values = timestamps[~keep], values[~keep]
            findings += self._bounds(late_ts, late_values)
            timestamps, values = timestamps[keep], values[keep]
            if not values.size:
                return findings
        findings += self._gaps(timestamps, sampling_rate)
        # Level first: a first batch must have taught the scale before a flatline is judged.
        if s.min_value <= float(values.min()) and float(values.max()) <= s.max_value:
            findings += self._level(timestamps, values)  # the common case: all within bounds
        else:
            findings += self._bounds(timestamps, values)
            inside = (values >= s.min_value) & (values <= s.max_value)
            findings += self._level(timestamps[inside], values[inside])
        findings += self._flatline(timestamps, values, sampling_rate)
        s.last_ts, s.last_value = int(timestamps[-1]), float(values[-1])
        s.readings += int(values.size)
        findings.sort(key=lambda f: f.timestamp_us)
        return findings

    # -- gaps and bounds -------------------------------------------------------

    def _gaps(self, timestamps: Int64s, sampling_rate: float) -> list[Finding]:
        s = self.state
        previous = np.concatenate(
            [[s.last_ts if s.last_ts is not None else timestamps[0]], timestamps[:-1]]
        )
        deltas = (timestamps - previous).astype(np.float64)
        if sampling_rate > 0:
            s.interval_us = 1e6 / sampling_rate
        elif (usable := deltas[deltas > 0]).size:
            typical = float(np.median(usable))
            s.interval_us = (
                typical
                if s.interval_us == 0
                else min(s.interval_us * 0.9 + typical * 0.1, typical * 4)
            )
        if s.interval_us <= 0 or (s.last_ts is None and timestamps.size < 2):
            return []
        limit = GAP_FACTOR * s.interval_us
        found: list[Finding] = []
        if float(deltas.max()) <= limit:
            return found
        for index in np.flatnonzero(deltas > limit):
            before = int(previous[index])
            value = s.last_value if index == 0 else None
            found.append(
                Finding(
                    "gap",
                    before,
                    float(value if value is not None else 0.0),
                    _confidence(float(deltas[index]) / limit),
                    0.0,
                )
            )
        return found

    def _bounds(self, timestamps: Int64s, values: Float64s) -> list[Finding]:
        s = self.state
        outside = ((values < s.min_value) | (values > s.max_value)).astype(np.int8)
        starts, _ = _runs(outside)
        found = []
        for index in starts:
            value = float(values[index])
            bound = s.max_value if value > s.max_value else s.min_value
            span = (
                max(s.max_value - s.min_value, 1e-9)
                if math.isfinite(s.max_value - s.min_value)
                else 1.0
            )
            found.append(
                Finding(
                    "out_of_range",
                    int(timestamps[index]),
                    value,
                    _confidence(1 + abs(value - bound) / span * 10),
                    bound,
                )
            )
        return found

    # -- flatline --------------------------------------------------------------

    def _flatline(
        self, timestamps: Int64s, values: Float64s, sampling_rate: float
    ) -> list[Finding]:
        s = self.state
        previous = np.concatenate(
            [[s.last_value if s.last_value is not None else np.nan], values[:-1]]
        )
        same = values == previous
        if s.readings > WARMUP and s.run_length <= 1:
            # Weighted per reading (not per batch), so batch sizes do not change the memory.
            weight = 1.0 - REPEAT_KEEP**values.size
            s.repeat_rate = (1.0 - weight) * s.repeat_rate + weight * float(same.mean())
        repeat = min(max(s.repeat_rate, 1e-3), 0.95)
        needed = max(FLAT_MIN_READINGS, math.ceil(math.log(FLAT_FALSE_ALARM) / math.log(repeat)))
        if s.interval_us > 0:
            needed = max(needed, math.ceil(FLAT_MIN_SECONDS * 1e6 / s.interval_us))
        index = np.arange(values.size)
        last_break = np.maximum.accumulate(np.where(same, -1, index))
        carried = np.where(last_break < 0, s.run_length + index + 1, index - last_break + 1)
        found = []
        # A run reaches the needed length where carried == needed; report it once.
        for at in np.flatnonzero(carried == needed):
            starts_here = at - needed + 1
            start_us = int(timestamps[starts_here]) if starts_here >= 0 else s.run_start_us
            if s.scale > 0 and (s.readings + at) > WARMUP:
                found.append(
                    Finding("flatline", start_us, float(values[at]), _confidence(1.5), s.level)
                )
        if values.size:
            end_run = int(carried[-1])
            if last_break[-1] >= 0:
                s.run_start_us = int(timestamps[last_break[-1]])
            s.run_length = end_run  # 1: the last reading differs from the one before
        return found

    # -- level: spikes, dips, level shifts ---------------------------------------

    def _level(self, timestamps: Int64s, values: Float64s) -> list[Finding]:
        s = self.state
        ts, vs = timestamps, values
        if s.held_ts:  # readings held back from the last batch come first
            ts = np.concatenate([np.asarray(s.held_ts, dtype=np.int64), timestamps])
            vs = np.concatenate([np.asarray(s.held_values, dtype=np.float64), values])
            s.held_ts, s.held_values = [], []
        found: list[Finding] = []
        while vs.size:
            if s.learned < WARMUP or s.scale <= 0:
                vs, ts = self._learn(ts, vs)
                continue
            prediction = self._predict(vs)
            predicted, residual = prediction.predicted, prediction.residual
            if prediction.clean_level is not None:  # no outlier at all: nothing to judge
                self._update(vs, predicted, residual, prediction.clean_level)
                break
            sign = np.sign(residual).astype(np.int8) * prediction.outlier.astype(np.int8)
            starts, lengths = _runs(sign)
            resume = None  # where to go on after a long run, which changes the level
            for start, length in zip(starts, lengths, strict=True):
                if length >= STEP_MIN:
                    at_end = start + length == vs.size
                    steady = self._steady(vs[start : start + length])
                    if not steady and not at_end:
                        continue  # a burst, over: the cleaned level did not follow it
                    # The level before the run is learnt from the readings before it.
                    self._update(vs[:start], predicted[:start], residual[:start])
                    if not steady:  # a burst going on: judge it whole, later
                        if length < HOLD_MAX:
                            s.held_ts, s.held_values = ts[start:].tolist(), vs[start:].tolist()
                        vs, ts = vs[:0], ts[:0]
                        break
                    found += self._shift(ts, vs, predicted, residual, start, length)
                    # What follows is judged again, against the new level.
                    resume = start + STEP_MIN if at_end else start + length
                    break
                if start + length == vs.size:  # may still grow into a level shift: decide later
                    s.held_ts, s.held_values = ts[start:].tolist(), vs[start:].tolist()
                    vs, ts = vs[:start], ts[:start]
                    predicted, residual = predicted[:start], residual[:start]
                    break
                for at in range(start, start + length):
                    if abs(float(residual[at])) < s.spike_min:
                        continue
                    z = abs(float(residual[at])) / s.scale
                    found.append(
                        Finding(
                            "spike" if residual[at] > 0 else "dip",
                            int(ts[at]),
                            float(vs[at]),
                            _confidence(z / s.threshold),
                            float(predicted[at]),
                        )
                    )
            if resume is None:
                self._update(vs, predicted, residual)
                break
            vs, ts = vs[resume:], ts[resume:]
        return found

    def _steady(self, run: Float64s) -> bool:
        """True when a run of outliers sits still (a level shift), False for a burst."""
        spread = float(np.median(np.abs(run - np.median(run)))) * 1.4826
        return spread <= 3.0 * self.state.scale

    def _shift(
        self,
        ts: Int64s,
        vs: Float64s,
        predicted: Float64s,
        residual: Float64s,
        start: int,
        length: int,
    ) -> list[Finding]:
        """A steady run of outliers: the signal now lives at another level. Learn it, and
        report the jump once when it is large enough to matter."""
        s = self.state
        run = vs[start : start + length]
        s.level = float(np.median(run[-STEP_MIN:]))
        if abs(float(np.median(run)) - float(predicted[start])) < s.shift_min:
            return []
        z = abs(float(residual[start])) / s.scale
        return [
            Finding(
                "rate_of_change",
                int(ts[start]),
                float(vs[start]),
                _confidence(z / s.threshold),
                float(predicted[start]),
            )
        ]

    def _predict(self, values: Float64s) -> Prediction:
        s = self.state
        limit = s.threshold * s.scale
        rough = ewma(values, ALPHA, s.level)
        rough_pred = np.concatenate([[s.level], rough[:-1]])
        # Readings far off must not pull the level: replace them by the prediction and smooth again.
        far = np.abs(values - rough_pred) > limit
        level, predicted = rough, rough_pred  # the common case: nothing to clean
        # A burst pulls the first pass towards it, and so hides its own later readings:
        # clean again against the cleaned level until no reading changes side (rarely > 2).
        for _ in range(CLEAN_PASSES):
            if not far.any():
                break
            level = ewma(np.where(far, predicted, values), ALPHA, s.level)
            predicted = np.concatenate([[s.level], level[:-1]])
            again = np.abs(values - predicted) > limit
            if np.array_equal(again, far):
                break
            far = again
        residual = values - predicted
        outlier = np.abs(residual) > limit
        return Prediction(predicted, residual, outlier, None if outlier.any() else level)

    def _update(
        self,
        values: Float64s,
        predicted: Float64s,
        residual: Float64s,
        clean_level: Float64s | None = None,
    ) -> None:
        """Move level and scale past ``values``; ``clean_level`` is their level when no
        reading among them was an outlier (then it equals what would be computed here)."""
        s = self.state
        if not values.size:
            return
        # A repeated value says nothing about the noise (a stuck sensor would shrink the scale).
        steps = self._steps(values)
        moved = steps > 0
        if clean_level is not None:  # no outlier: every reading that moved is normal
            s.level = float(clean_level[-1])
            normal = moved
        else:
            normal = np.abs(residual) <= s.threshold * s.scale
            s.level = float(ewma(np.where(normal, values, predicted), ALPHA, s.level)[-1])
            normal &= moved
        count = int(np.count_nonzero(normal))
        if count:
            spread = float(np.abs(residual[normal]).mean()) * _SIGMA_PER_MEAN_ABS
            weight = 1.0 - (1.0 - BETA) ** count
            s.scale = max((1 - weight) * s.scale + weight * spread, self._floor())
        self._note_steps(steps[moved])
        s.level_last = float(values[-1])

    def _learn(self, timestamps: Int64s, values: Float64s) -> tuple[Float64s, Int64s]:
        """Warm-up: gather the first readings, over as many batches as that takes (a slow
        device sends one at a time), then take level and scale from them; answers the rest."""
        s = self.state
        room = WARMUP - len(s.warm)
        part, rest = values[:room], values[room:]
        s.warm += part.tolist()
        if len(s.warm) < WARMUP:
            return rest, timestamps[room:]
        warm = np.asarray(s.warm, dtype=np.float64)
        s.warm = []
        steps = self._steps(warm)
        self._note_steps(steps[steps > 0])
        # Differences of noise spread sqrt(2) times wider; the median resists outliers.
        estimate = float(np.median(steps[1:])) * 1.4826 / math.sqrt(2)
        s.scale = max(estimate, self._floor())
        s.level = float(ewma(warm, ALPHA, float(np.median(warm)))[-1])
        s.learned = max(s.learned, WARMUP)
        s.level_last = float(warm[-1])
        return rest, timestamps[room:]

    def _steps(self, values: Float64s) -> Float64s:
        """How far each reading moved from the one before; the first from the reading
        before this batch (batches may be one reading), or 0 for a stream's first."""
        last = self.state.level_last
        return np.abs(np.diff(values, prepend=values[:1] if last is None else last))

    def _note_steps(self, moves: Float64s) -> None:
        # The smallest step the sensor makes: its resolution, the floor of the scale.
        if moves.size:
            self.state.min_step = min(self.state.min_step, float(moves.min()))

    def _floor(self) -> float:
        # Never judge against less spread than the sensor can resolve.
        step = self.state.min_step
        return step if math.isfinite(step) else 1e-9
