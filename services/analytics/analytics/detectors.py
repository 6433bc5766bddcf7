"""Online anomaly scoring for one stream, causal and vectorised per batch with numpy, its
per-reading recurrences compiled with numba (``recurrences.py``).

Every reading gets an anomaly score in [0, 1] computed from it and the
readings before it only. The score is the largest of these evidences, each
scaled so that 0.5 means "as unusual as the threshold of that evidence":

- **deviation**, at two time scales (``SCALES``): the mean of the last 3
  readings against the stream's exponentially weighted level and spread
  over ~400 readings before them, and the mean of the last 48 against those
  over ~4,000 (drifts, bursts, raised plateaus); each as a z value judged
  against the largest z this stream has shown lately at that scale (a peak
  that decays with a half-life of ``PEAK_HALF_LIFE`` readings or
  ``PEAK_MEMORY_US``, the longer, never below ``Z_MIN``). A noisy, spiky stream
  thus has to outdo its own recent departures; a quiet one needs only ``Z_MIN``.
  The spread never drops below the smallest step the sensor has made, so
  quantised series do not collapse it.
- **daily pattern**: each reading less a profile of its hour of the (UTC)
  day (each day moves the profile by ``DAY_WEIGHT``), judged at the slow
  scale: a busy hour at night, a quiet one at noon.
- **novelty**: a value in a band (one of ``BINS`` bands across the range of
  the warm-up readings, extended beyond it, doubling in width whenever the
  range seen spans more than ``MAX_BANDS``) the stream has never visited;
  the farther past everything seen, the higher; the news of a new band itself is
  divided by how far the stream is past its habit of finding new bands
  (``NOVELTY_HABIT`` over ~``NOVELTY_SPAN`` readings or ``NOVELTY_SPAN_US``, the
  longer), so a slow drift into new ground is not news at every band; the bands
  found in a stream's first ``NOVELTY_WARMUP_US`` are learnt, not news.
- **gap**: an interval longer than ``GAP_FACTOR`` times the stream's declared
  period, or, without one, than both ``GAP_FACTOR`` typical intervals and
  twice the longest interval seen lately, so irregular sampling learns its
  own rhythm.
- **flatline**: a run of identical values twice as long as any normal run
  this stream has shown lately (a peak that decays with ``PEAK_HALF_LIFE``;
  a run that was found stuck teaches no more than the bar it crossed, so one
  long stuck run does not hide the next), unlikely for how often the stream
  repeats a reading (``FLAT_CHANCE``), and at least ``FLAT_MIN_READINGS``
  readings and ``FLAT_MIN_SECONDS``.
- **out of range**: a value beyond the device type's physical bounds scores 1.
- **spike**: a reading that left both its neighbours (the one before and the one
  after, which came back) by ``SPIKE_Z_MIN`` deviations of one step or more,
  judged against the largest such departure lately (as the deviation is, but
  each departure teaching that bar no more than ``SPIKE_CLIP`` times itself);
  see :func:`_spike_ratios`. The spread of steps is blind to the level shifts
  and drifts that inflate a level's variance for hundreds of readings, which
  hid most spikes and dips after a jump. Its findings are raised apart from
  the others' (``SPIKE_REST``), dated at the reading that stood out and known
  with the next.
- **level shift**: likewise, a reading that stepped from a level that held to
  one that holds with the next reading, by ``SHIFT_Z_MIN`` deviations of one
  step or more (see :func:`recurrences.shifts`: its spread of steps learns
  every step but spikes', each at most ``SHIFT_Z_MIN`` deviations, so a stream
  that steps as a habit learns its steps while one jump does not hide the next),
  a ``rate_of_change`` raised apart from the others (``REST``).

A ratio r of evidence to its threshold maps to a score of r / 2 below 1 and
1 - 1 / (2r) above, so scores rank findings and never saturate. A finding is
raised where the score reaches the stream's threshold (0.5 by default) and
at least ``REST`` readings have passed since the previous one (and, for a
deviation or novelty, since any of them last reached it: a departure that
goes on, as a drift creeping past its own decayed peak does, is one event;
so is one whose score stays above ``HOLD`` times the threshold, each such
reading within ``EVENT_US`` of the last: a vibration growing for seconds at
1 kHz), or it scores ``REST_BREAK`` above the previous one: one event, one finding,
but a stronger event is not hidden by a weaker one just before it. Out-of-range
findings are raised at the start of every run outside the bounds, and a
flatline once per run; its recovery, the ``RECOVERY`` readings after a run
found stuck, raises no departure or level shift unless it is stronger.

A deviation is typed by how it came and went: one that drifted there is a
``rate_of_change``; a sudden one waits for the next ``TYPE_AFTER`` reading,
which tells a ``spike`` or ``dip`` (back where it was) from a level shift
(still there: a ``rate_of_change`` no physical process has). It is dated at
its own reading and known (``found_us``) with the one that typed it.

Every quantity is a per-reading recurrence carried in :class:`DetectorState`,
so the findings and scores do not depend on how readings are split into
batches. Readings not after the stream's newest are counted (``late``) and
checked against the bounds only: time order is what the recurrences need. So
are values beyond ``MAX_MAGNITUDE`` (no sensor's, and their squares would
overflow the recurrences) and values that are not finite (not checked).
"""

from __future__ import annotations

import base64
import functools
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

from services.analytics.analytics import recurrences

Int64s = npt.NDArray[np.int64]
Float64s = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

BOUNDS: dict[str, tuple[float, float]] = {
    "temperature": (-40.0, 85.0),  # °C: the range of common ambient temperature sensors
    "pressure": (300.0, 1100.0),  # hPa: barometric sensors' range
    "motion": (-16.0, 16.0),  # g: the range of a ±16 g accelerometer
}
DEFAULT_THRESHOLD = 0.5
THRESHOLD_RANGE = (0.05, 0.99)
WARMUP = 150  # readings learnt from before anything but the bounds is judged
BINS = 8  # bands across the warm-up range, for novelty
MAX_BANDS = 32  # bands across the range seen before they double in width
# New bands found over ~NOVELTY_SPAN readings a stream may find as a habit (see _novelty).
NOVELTY_SPAN = 3000
# Nor shorter than NOVELTY_SPAN_US: what a stream did lately is of the physical world's time,
# and a fast stream's readings are moments of it.
NOVELTY_SPAN_US = 3_000_000_000
# New bands are learnt, not news, in a stream's first NOVELTY_WARMUP_US: at 1 kHz, the
# warm-up is 150 ms of noise, and its tails found a new band every few seconds for minutes.
NOVELTY_WARMUP_US = 300_000_000
NOVELTY_HABIT = 8.0
ALPHA = 2.0 / (400 + 1)  # the typical interval's exponential memory: ~400 readings
PEAK_HALF_LIFE = 4000.0  # readings
PEAK_DECAY = 0.5 ** (1.0 / PEAK_HALF_LIFE)
# Nor shorter than an hour, however fast the stream: what a stream has shown lately is of
# the physical world's time. At 1 kHz, 4,000 readings are 4 s, and every burst of vibration
# a few minutes apart came as news again (see recurrences.resolutions).
PEAK_MEMORY_US = 3_600_000_000
Z_MIN = 5.0
Z_CAP = 1e300  # keeps z, and the peak in the state, finite: a spread of zero has a tiny floor
MAX_MAGNITUDE = 1e150  # values beyond are not learnt from (see the module docstring)


@dataclass(frozen=True, slots=True)
class Scale:
    """A time scale of the deviation evidence: the mean of the last ``window`` readings
    against the level (an exponentially weighted mean over ~``span`` readings) and spread
    before them, in deviations of such a mean, needing at least ``z_min``."""

    window: int
    span: int
    z_min: float


# Sudden departures (a few readings against a level of ~400), and slow ones (a drift, a
# burst of spikes, a raised plateau: 48 readings against a level of ~4,000).
SCALES = (Scale(3, 400, Z_MIN * math.sqrt(3)), Scale(48, 4000, Z_MIN))
# The daily pattern: a profile per hour of the (UTC) day, each day moving it by a tenth;
# departures from it are judged at the slow scale.
DAY_US = 86_400_000_000
DAY_BUCKETS = 24
DAY_WEIGHT = 0.1
REST = 50  # readings after a finding before the next
# A departure's event also goes on while its score stays at HOLD times the threshold or more,
# each such reading within EVENT_US of the last (see recurrences.events): at 1 kHz, REST
# readings are 50 ms, shorter than a cycle of a slow vibration, which reached the threshold
# at every cycle while it grew.
EVENT_US = 10_000_000
HOLD = 0.8
# A stuck sensor's recovery is the end of its flatline, not an event of its own: the value
# it comes back to, where the signal went meanwhile, is no departure or level shift for
# RECOVERY readings (the reading it recovered at, and those after).
RECOVERY = REST
NO_RUN = np.iinfo(np.int64).min
REST_BREAK = 0.2  # unless the next scores this much above the last: a stronger event
GAP_FACTOR = 5.0
GAP_PEAK_FACTOR = 2.0
FLAT_FACTOR = 2.0
FLAT_MIN_READINGS = 20
FLAT_MIN_SECONDS = 5.0
FLAT_CHANCE = 1e-6  # a run this unlikely for the stream's rate of repeats is stuck
# Spikes and dips: a reading that left its neighbours both ways by this many deviations of a
# step (at least; see _spike_ratios), a departure teaching the bar at most SPIKE_CLIP times
# itself, and SPIKE_REST readings between two such findings.
SPIKE_Z_MIN = 40.0
SPIKE_CLIP = 1.2
SPIKE_REST = 20
# Level shifts: a step to a level that holds, by this many deviations of a step (see
# recurrences.shifts), each teaching the bar at most SPIKE_CLIP times itself; the steps of
# a reading this many deviations out both ways (a spike) are not learnt. At 20, jumps of
# 17-20 deviations of a step (about 25 of the noise) on a quiet sensor went unseen; NAB's
# development half scores the same at 16-20.
SHIFT_Z_MIN = 17.0
SHIFT_SPIKE = 5.0
STEP_CLIP = 5.0  # a step teaches the steps' variance at most this many deviations
TYPE_AFTER = 1  # readings after a sudden departure that tell a spike or dip from a level shift
_SETTLED = math.ceil(math.log(1e-17) / math.log(1.0 - ALPHA))  # (1 - ALPHA) ** n < 1e-17


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
class Pending:
    """A sudden departure raised but not typed yet: a spike or dip comes back within
    ``TYPE_AFTER`` readings, a level shift stays; ``after`` holds the readings since."""

    timestamp_us: int
    raw_value: float
    confidence: float
    expected_value: float
    after: tuple[float, ...] = ()

    def typed(self, after: Float64s, found_us: int) -> Finding:
        """The finding, typed by the ``TYPE_AFTER`` readings after it (known at ``found_us``).

        A level shift is a rate of change no physical process has (README), so it is
        ``rate_of_change`` however suddenly it came; a reading that stood alone is a
        ``spike`` or ``dip``. With more than one reading after, their median decides."""
        departure = self.raw_value - self.expected_value
        stayed = float(np.median((after - self.expected_value) * np.sign(departure)))
        if stayed >= 0.5 * abs(departure):
            kind = "rate_of_change"
        else:
            kind = "spike" if departure > 0 else "dip"
        return Finding(
            kind, self.timestamp_us, self.raw_value, self.confidence, self.expected_value, found_us
        )


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one batch gave: findings in time order, and a score per reading analysed."""

    findings: list[Finding]
    timestamps: Int64s
    scores: Float64s
    late: int = 0  # readings not after the stream's newest (or beyond MAX_MAGNITUDE, or not
    # finite): not learnt from


def _no_readings() -> Float64s:
    return np.zeros(0, dtype=np.float64)


_TRACK_ARRAYS = ("recent", "recent_levels", "recent_variances")


@dataclass(eq=False)
class Track:
    """A deviation time scale's memory: level, variance, recent readings and peak."""

    level: float = 0.0
    variance: float = 0.0
    # The last `window` readings, and the level and variance after each (newest last).
    # Arrays, not lists: a stream fed one reading at a time would otherwise convert
    # thousands of floats each way per reading (the slow scale keeps ~4,000).
    recent: Float64s = field(default_factory=_no_readings)
    recent_levels: Float64s = field(default_factory=_no_readings)
    recent_variances: Float64s = field(default_factory=_no_readings)
    peak: float = 0.0
    # The sum of the recent readings, and the readings taken (see recurrences.judge).
    total: float = 0.0
    taken: int = 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Track):
            return NotImplemented
        return (self.level, self.variance, self.peak, self.total, self.taken) == (
            other.level,
            other.variance,
            other.peak,
            other.total,
            other.taken,
        ) and all(np.array_equal(getattr(self, k), getattr(other, k)) for k in _TRACK_ARRAYS)

    def copy(self) -> Track:
        """An independent copy (cheaper than ``copy.deepcopy``)."""
        return replace(self, **{key: getattr(self, key).copy() for key in _TRACK_ARRAYS})

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (the arrays as lists)."""
        data: dict[str, Any] = {
            "level": self.level,
            "variance": self.variance,
            "peak": self.peak,
            "total": self.total,
            "taken": self.taken,
        }
        data.update({key: _packed(getattr(self, key)) for key in _TRACK_ARRAYS})
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Track:
        """Inverse of :meth:`to_json`."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in _TRACK_ARRAYS:
            known[key] = _unpacked(known.get(key, ()))
        if "total" not in known:  # a state saved before the running sum
            known["total"] = float(known["recent"].sum())
        return cls(**known)


def _packed(values: Float64s) -> str:
    """An array of floats as base64 of its little-endian bytes: exact, and encoded as JSON
    in a fraction of the time of a list of floats (a state is stored at every analysis)."""
    return base64.b64encode(values.astype("<f8").tobytes()).decode("ascii")


def _unpacked(stored: str | list[float] | tuple[()]) -> Float64s:
    """Inverse of :func:`_packed`; a list of floats (a state saved before it) alike."""
    if isinstance(stored, str):
        return np.frombuffer(base64.b64decode(stored), dtype="<f8").astype(np.float64)
    return np.asarray(stored, dtype=np.float64)


_TRACKS = ("short", "long", "daily")
_LISTS = ("profile", "warm", "seen_bins", "pending")  # a state's mutable values but tracks


@dataclass
class DetectorState:
    """What a stream's detector carries from one batch to the next (JSON-serialisable)."""

    device_type: str = ""
    min_value: float = -math.inf
    max_value: float = math.inf
    threshold: float = DEFAULT_THRESHOLD
    base_threshold: float = DEFAULT_THRESHOLD
    readings: int = 0
    late: int = 0
    short: Track = field(default_factory=Track)
    long: Track = field(default_factory=Track)
    daily: Track = field(default_factory=Track)
    # The daily profile (None for an hour not seen yet), and its weight per reading.
    profile: list[float | None] = field(default_factory=lambda: [None] * DAY_BUCKETS)
    profile_alpha: float = 0.0
    profile_hour: int | None = None  # the hour of the last reading the profile took
    min_step: float = math.inf
    # Spikes and dips (see _spike_ratios): the steps' variance, the bar's peak, the time of
    # the last in-range reading, readings since the last spike finding and its score.
    step_variance: float = 0.0
    step_peak: float = 0.0
    inside_ts: int = 0
    spike_since: int = SPIKE_REST + 1
    spike_score: float = 0.0
    # Level shifts (see recurrences.shifts): the same, for steps that stay.
    shift_variance: float = 0.0
    shift_peak: float = 0.0
    shift_skip: bool = False
    shift_since: int = REST + 1
    shift_score: float = 0.0
    warm: list[float] = field(default_factory=list)
    bin_low: float = 0.0
    bin_width: float = 0.0
    seen_bins: list[int] = field(default_factory=list)
    seen_low: float = math.inf
    seen_high: float = -math.inf
    discoveries: float = 0.0  # new bands found lately: an average (see _novelty)
    first_us: int | None = None  # the time of the first reading
    last_ts: int | None = None
    last_value: float | None = None
    outside: bool = False  # the last reading was out of range
    run_length: int = 0
    run_start_us: int = 0
    repeat_share: float = 0.0  # readings equal to the one before: a weighted average
    run_share: float = 0.0  # the share as the current run began
    run_peak: float = 0.0  # the longest normal run lately (a decaying peak, in readings)
    run_floor: float = FLAT_MIN_READINGS  # the bar of the last reading, but for run_peak
    flat_found_us: int | None = None  # the start of the last run found stuck
    log_interval: float = 0.0
    intervals: int = 0
    gap_peak: float = 0.0
    since_finding: int = REST + 1
    since_departure: int = REST + 1  # readings since one last reached it, found or not
    held_us: int = 0  # the time of the last reading that held its event (see HOLD)
    recovery_since: int = RECOVERY + 1  # readings since a run found stuck last ended
    in_event: bool = False  # whether that event is still held
    # Sudden departures waiting for the readings that type them (oldest first).
    pending: list[Pending] = field(default_factory=list)
    last_finding_score: float = 0.0
    dismissed: int = 0
    confirmed: int = 0

    @property
    def level(self) -> float:
        """The stream's level as shown: the fast scale's."""
        return self.short.level

    @property
    def scale(self) -> float:
        """The spread around it as shown: the fast scale's deviation."""
        return math.sqrt(self.short.variance)

    def copy(self) -> DetectorState:
        """An independent copy, as analysis works on one per request (``copy.deepcopy``
        of the whole state cost as much as analysing a chunk of 100 readings)."""
        copied: dict[str, Any] = {key: getattr(self, key).copy() for key in _TRACKS}
        copied.update({key: list(getattr(self, key)) for key in _LISTS})
        return replace(self, **copied)

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (infinities become None). Built field by field: ``asdict``
        deep-copies every value first, which cost more than analysing a chunk."""
        data = {name: getattr(self, name) for name in _state_fields()}
        data.update({key: getattr(self, key).to_json() for key in _TRACKS})
        data.update({key: list(getattr(self, key)) for key in _LISTS})
        data["pending"] = [asdict(pending) for pending in self.pending]
        for key in ("min_value", "max_value", "min_step", "seen_low", "seen_high"):
            if not math.isfinite(data[key]):
                data[key] = None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DetectorState:
        """Inverse of :meth:`to_json`; keys of an older detector's state are ignored."""
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        for key, empty in (
            ("min_value", -math.inf),
            ("max_value", math.inf),
            ("min_step", math.inf),
            ("seen_low", math.inf),
            ("seen_high", -math.inf),
        ):
            if values.get(key, empty) is None:
                values[key] = empty
        for key in ("short", "long", "daily"):
            track = values.get(key)
            values[key] = Track.from_json(track) if isinstance(track, dict) else Track()
        values["pending"] = [
            Pending(**{**item, "after": tuple(item.get("after", ()))})
            for item in values.get("pending", ())
        ]
        state = cls(**values)
        if not THRESHOLD_RANGE[0] <= state.base_threshold <= THRESHOLD_RANGE[1]:
            # A state from the previous detector counted thresholds in deviations.
            state.threshold = state.base_threshold = DEFAULT_THRESHOLD
        return state

    @classmethod
    def for_type(cls, device_type: str) -> DetectorState:
        """A fresh state with the physical bounds of ``device_type`` (none for others)."""
        low, high = BOUNDS.get(device_type, (-math.inf, math.inf))
        return cls(device_type=device_type, min_value=low, max_value=high)


@functools.cache
def _state_fields() -> tuple[str, ...]:
    """:class:`DetectorState`'s field names (``dataclasses.fields`` scans them per call)."""
    return tuple(f.name for f in fields(DetectorState))


@njit("(f8[:], f8[:], f8, f8, i8, f8, f8, f8[:], b1)", cache=True)
def _spike_ratios(
    xs: Float64s,
    decays: Float64s,
    before2: float,
    before1: float,
    known: int,
    variance: float,
    peak: float,
    floors: Float64s,
    judged: bool,
) -> tuple[Float64s, float, float]:  # pragma: no cover - compiled; run by the tests
    """For each reading t, how far reading t - 1 stood out from both its neighbours (a
    spike or dip, known once t came back), over its threshold (1 = at it); and the steps'
    variance and the bar's peak after the readings.

    The evidence is the smaller of the steps into and out of t - 1, less the step from
    t - 2 to t (a level that moved is not a spike), in deviations of one step: the spread
    of steps is blind to level shifts and slow drifts, which inflate a level's variance for
    hundreds of readings. A step teaches that variance no more than STEP_CLIP deviations,
    and a spike teaches the bar (a peak decaying by PEAK_DECAY, never below SPIKE_Z_MIN) no
    more than SPIKE_CLIP times itself, so anomalies do not hide the next ones, while spikes
    that are a stream's habit still raise its bar. A loop per reading, compiled: each step
    depends on the variance the clipped ones left. ``known`` counts earlier readings
    (``before1`` and ``before2`` the last two); ``floors`` are the squared resolution."""
    out = np.zeros(xs.size)
    cap = STEP_CLIP * STEP_CLIP
    for i in range(xs.size):
        x = xs[i]
        spread = max(variance, floors[i])
        learnt = 0.0
        if judged and known >= 2 and spread > 0.0:
            into, out_of = before1 - before2, before1 - x
            size = min(abs(into), abs(out_of)) - abs(x - before2)
            z = size / math.sqrt(spread) if into * out_of > 0.0 and size > 0.0 else 0.0
            bar = max(peak * decays[i], SPIKE_Z_MIN)
            out[i] = z / bar
            learnt = min(z, SPIKE_CLIP * bar)
        peak = max(peak * decays[i], learnt)
        if known >= 1:
            square = (x - before1) ** 2
            if judged:
                square = min(square, cap * spread)
            variance += ALPHA * (square - variance)
        before2, before1 = before1, x
        known += 1
    return out, variance, peak


def _or(value: float | None, otherwise: float) -> float:
    """``value`` unless it is None (a reading of 0.0 is a reading)."""
    return float(otherwise if value is None else value)


def ratio_score(ratio: Float64s) -> Float64s:
    """Evidence over its threshold (1 = at it) to a score: r / 2 below 1, 1 - 1 / (2r) above."""
    r = np.maximum(ratio, 0.0)
    return np.where(r < 1.0, 0.5 * r, 1.0 - 0.5 / np.maximum(r, 1.0))


class StreamDetector:
    """The detector of one stream; see the module docstring."""

    def __init__(self, state: DetectorState) -> None:
        self.state = state

    def process(
        self, timestamps: Int64s, values: Float64s, *, sampling_period_us: float = 0.0
    ) -> BatchResult:
        """Analyse the next batch (readings in arrival order, normally ascending)."""
        s = self.state
        timestamps = np.asarray(timestamps, dtype=np.int64)
        values = np.asarray(values, dtype=np.float64)
        findings: list[Finding] = []
        if not values.size:
            return BatchResult(findings, timestamps[:0], np.zeros(0))
        newest = np.maximum.accumulate(
            np.concatenate(
                [[s.last_ts if s.last_ts is not None else np.iinfo(np.int64).min], timestamps]
            )
        )[:-1]
        keep = (timestamps > newest) & (np.abs(values) <= MAX_MAGNITUDE)  # False for NaN
        late = int(values.size - np.count_nonzero(keep))
        if late:
            stale = ~keep & np.isfinite(values)
            findings += self._late_bounds(timestamps[stale], values[stale])
            s.late += late
            timestamps, values = timestamps[keep], values[keep]
        scores = np.zeros(values.size)
        if values.size:
            # Warm-up and judged readings are two phases; a batch may straddle them.
            split = max(0, min(values.size, WARMUP - s.readings))
            if split:
                scores[:split] = self._advance(
                    timestamps[:split], values[:split], sampling_period_us, findings
                )
            if split < values.size:
                scores[split:] = self._advance(
                    timestamps[split:], values[split:], sampling_period_us, findings
                )
        findings.sort(key=lambda f: (f.found_us, f.timestamp_us))
        return BatchResult(findings, timestamps, scores, late)

    # -- one phase of a batch ------------------------------------------------------

    def _advance(
        self, ts: Int64s, xs: Float64s, period_us: float, findings: list[Finding]
    ) -> Float64s:
        s = self.state
        if s.first_us is None:  # the stream's first reading, in range or not
            s.first_us = int(ts[0])
        judged = s.readings >= WARMUP
        size = xs.size
        inside = (xs >= s.min_value) & (xs <= s.max_value)
        score = np.where(inside, 0.0, 1.0)
        kinds = np.zeros(size, dtype=np.int8)  # 0 none, 1 deviation, 2 novelty, 3 gap, 4 flat
        gap_score, gap_from, typical_log = self._gaps(ts, period_us, judged)
        run_before = s.run_start_us
        flat_score, run_start = self._flatline(ts, xs, judged, typical_log)
        # Where a run ended: at a reading that began a new one, the start of the one before.
        ended = np.concatenate([[run_before], run_start[:-1]])
        ended = np.where((run_start == ts) & (ended != run_start), ended, NO_RUN)
        stat_score = np.zeros(size)
        novel_score = np.zeros(size)
        spike_score = np.zeros((2, size))
        base = np.full(size, s.level)
        spike_ts = np.zeros(size, dtype=np.int64)
        spike_at = np.zeros(size)
        spike_from = np.zeros(size)
        if inside.any():
            xi = xs[inside]
            earlier = [0.0, 0.0, *s.short.recent[-2:].tolist()][-2:]  # before _deviation
            stat_score[inside], base[inside], spike_score[:, inside] = self._deviation(
                ts[inside], xi, judged, typical_log[inside]
            )
            # What a spike score is about: the in-range reading before, and the one before it.
            tsi = ts[inside]
            spike_ts[inside] = np.concatenate([[s.inside_ts], tsi[:-1]])
            chain = np.concatenate([earlier, xi])
            spike_at[inside], spike_from[inside] = chain[1:-1], chain[:-2]
            s.inside_ts = int(tsi[-1])
            if judged:
                novel_score[inside] = self._novelty(tsi, xi, typical_log[inside])
        if not judged:
            self._warm(xs[inside], size)
        for kind, part in ((1, stat_score), (2, novel_score), (3, gap_score), (4, flat_score)):
            higher = part > score
            score = np.where(higher, part, score)
            kinds[higher] = kind
        raised, recovering = self._raise(
            ts, xs, inside, score, kinds, base, gap_from, (run_start, ended), findings
        )
        self._settle(ts, xs, raised, findings)
        self._raise_steps(ts, spike_score, (spike_ts, spike_at, spike_from), recovering, findings)
        score = np.maximum(score, spike_score.max(axis=0))
        s.readings += size
        s.last_ts, s.last_value = int(ts[-1]), float(xs[-1])
        s.outside = not bool(inside[-1])
        return score

    def _raise(
        self,
        ts: Int64s,
        xs: Float64s,
        inside: Bools,
        score: Float64s,
        kinds: npt.NDArray[np.int8],
        base: Float64s,
        gap_from: Int64s,
        runs: tuple[Int64s, Int64s],
        findings: list[Finding],
    ) -> tuple[list[tuple[int, Pending]], Bools | None]:
        """Findings where the score reaches the threshold, one per event (see REST); the
        sudden departures among them are answered (with their index) to be typed later,
        with which readings are in a stuck sensor's recovery (see RECOVERY; None for none).
        ``runs``: where each reading's run started, and where the run that ended at it did
        (NO_RUN where none did)."""
        s = self.state
        run_start, ended = runs
        previous_outside = np.concatenate([[s.outside], ~inside[:-1]])
        bound_starts = ~inside & ~previous_outside
        # Nor in the REST readings after the warm-up: the slow scales are still settling.
        reaching = (score >= s.threshold) & (s.readings + np.arange(xs.size) >= WARMUP + REST)
        # A flatline is one event however long the run: found at the first of its readings
        # that may raise one (the run may have been stuck since the warm-up, or a rest after
        # another finding held it back), then never again for the same run.
        flat = kinds == 4
        found_us = -1 if s.flat_found_us is None else s.flat_found_us
        reaching &= ~flat | (run_start != found_us)
        reaching |= bound_starts
        # A departure lasts while its score keeps reaching the threshold: one that reached
        # it within REST readings or EVENT_US before is the same event (a slow drift creeps
        # past its own decayed peak at every step, and would otherwise be found every REST
        # readings; a vibration growing for seconds at 1 kHz reaches it at every cycle).
        departure = ((kinds == 1) | (kinds == 2)) & ~bound_starts
        departing = reaching & departure
        held = departure & (score >= s.threshold * HOLD)
        same_event, s.since_departure, s.held_us, s.in_event = recurrences.events(
            departing, held, ts, REST, EVENT_US, s.since_departure, s.held_us, s.in_event
        )
        since = s.since_finding
        last = -1
        raised: list[tuple[int, Pending]] = []
        recoveries: list[int] = []
        # The ends of runs that are or may be found stuck (most readings end a run).
        stuck = run_start[reaching & flat]
        if s.flat_found_us is not None:
            stuck = np.append(stuck, s.flat_found_us)
        steps = np.flatnonzero(reaching)
        if stuck.size:
            steps = np.union1d(steps, np.flatnonzero(np.isin(ended, stuck)))
        for at in steps.tolist():
            if s.flat_found_us is not None and ended[at] == s.flat_found_us:
                recoveries.append(at)  # the run found stuck ended here
            if not reaching[at]:
                continue
            recovered = (
                s.recovery_since + at + 1 if not recoveries else at - recoveries[-1]
            ) <= RECOVERY
            gap = since + at - last if last < 0 else at - last
            stronger = score[at] >= s.last_finding_score + REST_BREAK
            if flat[at] and run_start[at] == s.flat_found_us:
                continue  # found earlier in this batch
            if not bound_starts[at] and gap <= REST and not stronger:
                continue
            if departing[at] and (recovered or same_event[at]) and not stronger:
                continue
            if flat[at]:
                s.flat_found_us = int(run_start[at])
            found = self._finding(at, ts, xs, score, kinds, base, gap_from, run_start)
            if isinstance(found, Pending):
                raised.append((at, found))
            else:
                findings.append(found)
            last = at
            s.last_finding_score = float(score[at])
        s.since_finding = since + xs.size if last < 0 else xs.size - 1 - last
        if not recoveries and s.recovery_since >= RECOVERY:
            s.recovery_since += xs.size
            return raised, None  # most batches: none recovering
        marks = np.zeros(xs.size, dtype=np.bool_)
        marks[recoveries] = True
        after, s.recovery_since = _readings_since(marks, s.recovery_since)
        # The readings up to RECOVERY after the recovery itself (its own included: the
        # step into it is judged with the reading after).
        return raised, (after <= RECOVERY) | marks

    def _raise_steps(
        self,
        ts: Int64s,
        scores: Float64s,
        about: tuple[Int64s, Float64s, Float64s],
        recovering: Bools | None,
        findings: list[Finding],
    ) -> None:
        """Spike, dip and level-shift findings where their own scores (``scores``: spikes,
        then shifts) reach the threshold, at most one per SPIKE_REST (spikes) or REST
        (shifts) readings unless stronger (as in :meth:`_raise`); apart from the other
        findings, as each is about one reading and tells its type itself: a spike just
        after a jump or a gap is an event of its own. Dated at the reading that stood out
        (``about``: its time, its value, and the one before it), known with the one after;
        one the deviation already typed there is not raised again, but lends it its score
        when higher (the finding ranks by all the evidence about its reading)."""
        s = self.state
        typed = {(f.anomaly_type, f.timestamp_us): i for i, f in enumerate(findings)}
        s.spike_since, s.spike_score = self._raise_family(
            ts, scores[0], about, findings, typed, ("spike", s.spike_since, s.spike_score)
        )
        shifts = scores[1]
        if recovering is not None:
            # Unless stronger than the finding before (the flatline's), as in _raise.
            weaker = scores[1] < s.last_finding_score + REST_BREAK
            shifts = np.where(recovering & weaker, 0.0, shifts)
        s.shift_since, s.shift_score = self._raise_family(
            ts,
            shifts,
            about,
            findings,
            typed,
            ("shift", s.shift_since, s.shift_score),
        )

    def _raise_family(
        self,
        ts: Int64s,
        score: Float64s,
        about: tuple[Int64s, Float64s, Float64s],
        findings: list[Finding],
        typed: dict[tuple[str, int], int],
        rest: tuple[str, int, float],
    ) -> tuple[int, float]:
        """One family of :meth:`_raise_steps` (``rest``: "spike" or "shift", the readings
        since its last finding and that finding's score); answers the last two after."""
        s = self.state
        at_us, values, earlier = about
        family, since, last_score = rest
        shift = family == "shift"
        pause = REST if shift else SPIKE_REST
        reaching = (score >= s.threshold) & (s.readings + np.arange(ts.size) >= WARMUP + REST)
        last = -1
        for at in np.flatnonzero(reaching).tolist():
            gap = since + at - last if last < 0 else at - last
            if gap <= pause and score[at] < last_score + REST_BREAK:
                continue
            value, expected = float(values[at]), float(earlier[at])
            kind = "rate_of_change" if shift else ("spike" if value > expected else "dip")
            last, last_score = at, float(score[at])
            confidence = round(float(score[at]), 4)
            same = typed.get((kind, int(at_us[at])))
            if same is not None:  # typed by the deviation: one finding, the higher score
                if confidence > findings[same].confidence:
                    findings[same] = replace(findings[same], confidence=confidence)
                continue
            findings.append(Finding(kind, int(at_us[at]), value, confidence, expected, int(ts[at])))
        return (since + ts.size if last < 0 else ts.size - 1 - last), last_score

    def _settle(
        self, ts: Int64s, xs: Float64s, raised: list[tuple[int, Pending]], findings: list[Finding]
    ) -> None:
        """Type the sudden departures (waiting ones, then those ``raised`` at their index in
        this phase) whose ``TYPE_AFTER`` next readings are known; the others wait."""
        s = self.state
        if not s.pending and not raised:
            return
        waiting = [(-1, pending) for pending in s.pending] + raised
        s.pending = []
        for at, pending in waiting:
            need = TYPE_AFTER - len(pending.after)
            after = pending.after + tuple(xs[at + 1 : at + 1 + need].tolist())
            if len(after) < TYPE_AFTER:
                s.pending.append(replace(pending, after=after))
                continue
            # Known with the last of the readings that typed it, not before.
            findings.append(pending.typed(np.asarray(after), int(ts[at + need])))

    def _finding(
        self,
        at: int,
        ts: Int64s,
        xs: Float64s,
        score: Float64s,
        kinds: npt.NDArray[np.int8],
        base: Float64s,
        gap_from: Int64s,
        run_start: Int64s,
    ) -> Finding | Pending:
        """The finding raised at ``at``; a sudden departure is typed once the readings after
        it are known (see :class:`Pending`)."""
        s = self.state
        value, when, confidence = float(xs[at]), int(ts[at]), round(float(score[at]), 4)
        if not s.min_value <= value <= s.max_value:
            bound = s.max_value if value > s.max_value else s.min_value
            return Finding("out_of_range", when, value, confidence, bound, when)
        kind = int(kinds[at])
        if kind == 3:
            before = float(xs[at - 1]) if at else _or(s.last_value, value)
            return Finding("gap", int(gap_from[at]), before, confidence, 0.0, when)
        expected = float(base[at])
        if kind == 4:
            return Finding("flatline", int(run_start[at]), value, confidence, expected, when)
        previous = float(xs[at - 1]) if at else _or(s.last_value, expected)
        if abs(value - previous) >= 0.5 * abs(value - expected):
            return Pending(when, value, confidence, expected)
        # It drifted there over several readings.
        return Finding("rate_of_change", when, value, confidence, expected, when)

    # -- evidences -----------------------------------------------------------------

    def _deviation(
        self, ts: Int64s, xs: Float64s, judged: bool, typical_log: Float64s
    ) -> tuple[Float64s, Float64s, Float64s]:
        """Deviation scores of in-range readings (the higher of the time scales), the
        level each was judged against (that of the scale that judged it higher), and the
        spike and level-shift scores (two rows: of the reading before each, see
        :func:`_spike_ratios` and :func:`recurrences.shifts`)."""
        s = self.state
        previous = float(s.short.recent[-1]) if s.short.recent.size else float(xs[0])
        floor, decays, s.min_step = recurrences.resolutions(
            xs, previous, s.min_step, typical_log, PEAK_HALF_LIFE, PEAK_MEMORY_US
        )
        squared_floor = floor * floor
        recent = s.short.recent  # the last in-range readings, before these
        spike, s.step_variance, s.step_peak = _spike_ratios(
            xs,
            decays,
            float(recent[-2]) if recent.size > 1 else 0.0,
            float(recent[-1]) if recent.size else 0.0,
            min(recent.size, 2),
            s.step_variance,
            s.step_peak,
            squared_floor,
            judged,
        )
        shift, s.shift_variance, s.shift_peak, s.shift_skip = recurrences.shifts(
            xs,
            np.array([0.0, 0.0, 0.0, *recent[-3:].tolist()][-3:]),
            min(recent.size, 3),
            s.shift_variance,
            s.shift_peak,
            s.shift_skip,
            squared_floor,
            ALPHA,
            SHIFT_Z_MIN,
            SPIKE_CLIP,
            decays,
            SHIFT_SPIKE,
            judged,
        )
        best = np.zeros(xs.size)
        base = np.zeros(xs.size)
        for scale, track in zip(SCALES, (s.short, s.long), strict=True):
            ratio, level = _judge(scale, track, xs, floor, decays, judged)
            higher = ratio >= best
            best = np.where(higher, ratio, best)
            base = np.where(higher, level, base)
        # The profile's weight per reading: from the warm-up's typical interval once it is
        # over, from the typical interval so far during it.
        alphas = np.full(xs.size, s.profile_alpha) if judged else _profile_alpha(typical_log)
        residual = self._deseasoned(ts, xs, alphas)
        ratio, level = _judge(SCALES[1], s.daily, residual, floor, decays, judged)
        higher = ratio > best
        best = np.where(higher, ratio, best)
        # What the profile expected, plus the residual's own level.
        base = np.where(higher, xs - residual + level, base)
        if not judged:
            return np.zeros(xs.size), base, np.zeros((2, xs.size))
        return ratio_score(best), base, ratio_score(np.stack([spike, shift]))

    def _deseasoned(self, ts: Int64s, xs: Float64s, alphas: Float64s) -> Float64s:
        """Each reading less its hour's profile; moves the profile past them, each reading
        weighing ``alphas`` (see :func:`recurrences.deseason`). An hour seen for the first
        time starts where the hour of the reading before it stood, not at its own first
        reading: one noisy reading would otherwise anchor the hour, and every step into it
        would shift the residual by the difference of two noise samples (seen as weak
        findings at the turn of the hour)."""
        s = self.state
        profile = np.array([np.nan if p is None else p for p in s.profile])
        residual, last = recurrences.deseason(
            ts,
            xs,
            alphas,
            DAY_US,
            DAY_BUCKETS,
            profile,
            -1 if s.profile_hour is None else s.profile_hour,
        )
        s.profile = [None if math.isnan(p) else p for p in profile.tolist()]
        s.profile_hour = last
        return residual

    def _warm(self, xs: Float64s, readings: int) -> None:
        """Gather the in-range values of ``readings`` warm-up readings; with the last warm-up
        reading (in range or not), lay out the novelty bands."""
        s = self.state
        s.warm += xs.tolist()
        if s.readings + readings < WARMUP or not s.warm:
            return
        warm = np.asarray(s.warm)
        low, high = float(warm.min()), float(warm.max())
        # No narrower than the sensor's step: a coarse sensor's quiet warm-up spans a few
        # steps, and each step its level drifts would be a band never visited.
        width = max((high - low) / BINS, s.min_step if math.isfinite(s.min_step) else 0.0)
        if not width > 0:  # a constant warm-up: any change is new
            width = max(abs(low) * 1e-3, 1e-9)
        s.bin_low, s.bin_width = low, width
        s.seen_bins = sorted({int(b) for b in np.floor((warm - low) / width).tolist()})
        s.seen_low, s.seen_high = low, high
        self._anchor(float(warm.mean()))
        s.warm = []
        s.profile_alpha = float(
            _profile_alpha(np.array([s.log_interval if s.intervals else 0.0]))[0]
        )

    def _anchor(self, mean: float) -> None:
        """Move the levels, and the daily profile, to the warm-up's ``mean``.

        An exponential level starts at the stream's first reading and moves towards the
        others by ``1 / span`` of the way each: after the warm-up the slow level (and the
        profile, which moves by a tenth a day) still stood near that one reading. A first
        reading a few deviations off its neighbours then made the warm-up's level look
        like a departure: at 1 kHz, four in a hundred simulated devices raised a finding
        (score 0.50-0.51) within 100 ms of the warm-up."""
        s = self.state
        for track in (s.short, s.long):
            track.level = mean
            track.recent_levels = np.full(track.recent_levels.size, mean)
        anchor = None if s.profile_hour is None else s.profile[s.profile_hour]
        if anchor is None:
            return
        # The residuals move by what the profile moves; their level starts again at 0.
        moved = mean - anchor
        s.profile = [None if p is None else mean for p in s.profile]
        daily = s.daily
        daily.level = 0.0
        daily.recent = daily.recent - moved
        daily.recent_levels = np.zeros(daily.recent_levels.size)
        daily.total -= moved * min(daily.recent.size, SCALES[1].window)

    def _novelty(self, ts: Int64s, xs: Float64s, typical_log: Float64s) -> Float64s:
        """Scores of values in bands never visited before.

        When the range seen grows past ``MAX_BANDS`` bands, the bands double in
        width (merging exactly, as they are aligned), so a stream whose warm-up
        was narrower than its life does not find every later value new. A stream
        that found more than ``NOVELTY_HABIT`` bands lately (over ~``NOVELTY_SPAN``
        readings or ``NOVELTY_SPAN_US``, the longer) finds new ones as a
        habit, as a slow drift does in its first hours:
        the bare news of a new band is divided by how far past that habit it is, while
        the distance past everything seen counts whole (a spike far out stays news).
        """
        s = self.state
        if not s.bin_width > 0:
            return np.zeros(xs.size)
        score, seen, s.bin_width, s.seen_low, s.seen_high, s.discoveries = recurrences.novelty(
            ts,
            xs,
            typical_log,
            np.array(s.seen_bins, dtype=np.int64),
            s.bin_low,
            s.bin_width,
            s.seen_low,
            s.seen_high,
            s.discoveries,
            (s.first_us if s.first_us is not None else int(ts[0])) + NOVELTY_WARMUP_US,
            MAX_BANDS,
            BINS,
            NOVELTY_SPAN,
            NOVELTY_SPAN_US,
            NOVELTY_HABIT,
        )
        s.seen_bins = seen.tolist()
        return score

    def _gaps(
        self, ts: Int64s, period_us: float, judged: bool
    ) -> tuple[Float64s, Int64s, Float64s]:
        """Gap scores (on the reading after each interval), where each interval began, and
        the log of the typical interval before each reading (0 while unknown); see
        :func:`recurrences.gaps`."""
        s = self.state
        score, began, typical, s.log_interval, s.intervals, s.gap_peak = recurrences.gaps(
            ts,
            s.last_ts if s.last_ts is not None else 0,
            s.last_ts is not None,
            s.log_interval,
            s.intervals,
            s.gap_peak,
            period_us,
            ALPHA,
            PEAK_DECAY,
            GAP_FACTOR,
            GAP_PEAK_FACTOR,
            judged,
        )
        return score, began, typical

    def _flatline(
        self, ts: Int64s, xs: Float64s, judged: bool, typical_log: Float64s
    ) -> tuple[Float64s, Int64s]:
        """Flatline scores, and where each reading's run started (see
        :func:`recurrences.flatline`).

        How often a reading repeats the one before, as the run began, is what a healthy run
        of this stream may last; the run's own repeats do not excuse it. A run teaches its
        length, but no more than the bar it had to reach to be found: a stuck run lifts the
        bar only to what it was when the run was found, so the next stuck run is found too,
        while a stream whose long runs are its habit raises it, doubling at each."""
        s = self.state
        score, starts, runs = recurrences.flatline(
            ts,
            xs,
            typical_log,
            _or(s.last_value, 0.0),
            s.last_value is not None,
            s.readings,
            s.run_length,
            s.run_start_us,
            s.run_share,
            s.run_peak,
            s.run_floor,
            s.repeat_share,
            ALPHA,
            PEAK_DECAY,
            FLAT_CHANCE,
            FLAT_MIN_READINGS,
            FLAT_MIN_SECONDS * 1e6,
            FLAT_FACTOR,
            _SETTLED,
            judged,
        )
        s.run_length, s.run_start_us, s.run_share, s.run_peak, s.run_floor, s.repeat_share = runs
        return score, starts

    def _late_bounds(self, ts: Int64s, xs: Float64s) -> list[Finding]:
        """Late readings are judged against the bounds only."""
        s = self.state
        found = []
        for when, value in zip(ts.tolist(), xs.tolist(), strict=True):
            if not s.min_value <= value <= s.max_value:
                bound = s.max_value if value > s.max_value else s.min_value
                found.append(Finding("out_of_range", when, value, 1.0, bound, when))
        return found


def _judge(
    scale: Scale, track: Track, xs: Float64s, floor: Float64s, decays: Float64s, judged: bool
) -> tuple[Float64s, Float64s]:
    """One time scale's deviation ratios (z over the decayed peak, 1 = at the threshold)
    for ``xs``, and the level each was judged against; moves ``track`` past them."""
    (
        ratios,
        base,
        track.level,
        track.variance,
        track.peak,
        track.recent,
        track.recent_levels,
        track.recent_variances,
        track.total,
        track.taken,
    ) = recurrences.judge(
        np.ascontiguousarray(xs, dtype=np.float64),
        np.ascontiguousarray(floor, dtype=np.float64),
        scale.window,
        2.0 / (scale.span + 1),
        scale.z_min,
        decays,
        Z_CAP,
        judged,
        track.level,
        track.variance,
        track.peak,
        track.recent,
        track.recent_levels,
        track.recent_variances,
        track.total,
        track.taken,
    )
    return ratios, base


def _readings_since(marks: Bools, carried: int) -> tuple[Int64s, int]:
    """For each reading, how many readings since the last marked one before it (``carried``:
    since the last before the batch, as of its last reading); and that count after all."""
    index = np.arange(marks.size)
    latest = np.maximum.accumulate(np.where(marks, index, -1))
    previous = np.concatenate([[-1], latest[:-1]])
    since = np.where(previous >= 0, index - previous, carried + index + 1)
    return since, (marks.size - 1 - int(latest[-1]) if latest[-1] >= 0 else carried + marks.size)


def _profile_alpha(typical_log: Float64s) -> Float64s:
    """The daily profile's weight per reading, from the log of the typical interval (0 when
    unknown), so that each day moves it by DAY_WEIGHT whatever the sampling."""
    interval_us = np.where(typical_log != 0.0, np.exp(typical_log), DAY_US / DAY_BUCKETS)
    per_hour = np.maximum(DAY_US / DAY_BUCKETS / interval_us, 1.0)
    return 1.0 - (1.0 - DAY_WEIGHT) ** (1.0 / per_hour)
