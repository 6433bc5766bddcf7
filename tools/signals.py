"""Realistic sensor signals for the device simulator and the benchmarks.

A :class:`SignalSource` produces the readings of one simulated device on a
regular time grid: a temperature sensor (°C, 0.01 resolution) with a daily
cycle, a slow drift and noise; a barometer (hPa, 0.1 resolution) with the
twice-daily atmospheric tide and weather; an accelerometer on a moving
device (g, 0.001 resolution) with bursts of vibration. Values are rounded to
the sensor's resolution, as a real sensor reports them; that is also what
lets telemetry store them in a few bits each.

Anomalies are injected on purpose and labelled, so that detectors can be
scored on them: spikes and dips (one reading far off), a stuck sensor
(the same value repeated), a jump (a sudden level shift, so a rate of change
no physical process has) and gaps (readings missing). They happen at random
with rates per hour, or at chosen times (:class:`Scheduled`).

Everything is deterministic for a seed: the signal is a function of time
plus noise drawn per fixed segment of the grid from a generator seeded by
(seed, segment), and random anomalies are drawn per hour of absolute time.
So the readings do not depend on how they are taken (one block or many).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Int64s = npt.NDArray[np.int64]
Float64s = npt.NDArray[np.float64]

DEVICE_TYPES = ("temperature", "pressure", "motion")
"""The device types the simulator models, in its round-robin order: those of the devices
service with a physical quantity. A "generic" device measures whatever it is given, so there
is no one signal to simulate for it (and the benchmarks' series stay the same)."""

ANOMALY_KINDS = ("spike", "dip", "stuck", "jump", "gap")
"""Every kind of injected anomaly."""

SEGMENT = 4096
"""Grid positions generated at a time; noise is drawn per segment."""

_HOUR_US = 3_600_000_000
_DAY_S = 86_400.0
# Streams of the same seed differ by kind of draw: these keep the draws apart.
_PARAMS, _NOISE, _EVENTS, _MOTION = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class SensorModel:
    """What a device type measures, in which unit and at which resolution."""

    device_type: str
    metric: str
    unit: str
    decimals: int
    # Size of an anomaly in the sensor's unit: spikes and dips, and jumps.
    spike_range: tuple[float, float]
    jump_range: tuple[float, float]

    @property
    def resolution(self) -> float:
        """The smallest step between two readings, e.g. 0.01 (°C)."""
        return 10.0**-self.decimals


MODELS: dict[str, SensorModel] = {
    "temperature": SensorModel("temperature", "temperature", "°C", 2, (4.0, 12.0), (2.0, 6.0)),
    "pressure": SensorModel("pressure", "pressure", "hPa", 1, (3.0, 10.0), (2.0, 5.0)),
    "motion": SensorModel("motion", "acceleration", "g", 3, (0.8, 3.0), (0.05, 0.2)),
}
"""The sensor model of each device type."""


@dataclass(frozen=True, slots=True)
class AnomalyRates:
    """How often each anomaly happens, per hour of signal, and how long the long ones last."""

    spikes_per_hour: float = 2.0
    dips_per_hour: float = 2.0
    stuck_per_hour: float = 0.25
    jumps_per_hour: float = 0.25
    gaps_per_hour: float = 0.25
    stuck_seconds: tuple[float, float] = (30.0, 300.0)
    jump_seconds: tuple[float, float] = (60.0, 600.0)
    gap_seconds: tuple[float, float] = (5.0, 60.0)

    def per_hour(self, kind: str) -> float:
        """The rate of one kind of anomaly."""
        return {
            "spike": self.spikes_per_hour,
            "dip": self.dips_per_hour,
            "stuck": self.stuck_per_hour,
            "jump": self.jumps_per_hour,
            "gap": self.gaps_per_hour,
        }[kind]

    def seconds(self, kind: str) -> tuple[float, float]:
        """How long one anomaly of ``kind`` lasts (spikes and dips are one reading)."""
        return {
            "stuck": self.stuck_seconds,
            "jump": self.jump_seconds,
            "gap": self.gap_seconds,
        }.get(kind, (0.0, 0.0))

    @property
    def longest_us(self) -> int:
        """The longest any random anomaly lasts, in microseconds."""
        return int(max(self.stuck_seconds[1], self.jump_seconds[1], self.gap_seconds[1]) * 1e6)


NO_ANOMALIES = AnomalyRates(0.0, 0.0, 0.0, 0.0, 0.0)
"""Rates that inject nothing at random (scheduled anomalies still happen)."""


@dataclass(frozen=True, slots=True)
class Scheduled:
    """An anomaly at a chosen time, in microseconds since the epoch."""

    kind: str
    start_us: int
    duration_us: int = 0
    # Offset for spikes, dips and jumps, in the sensor's unit; a typical one when None.
    magnitude: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ANOMALY_KINDS:
            raise ValueError(f"unknown anomaly kind {self.kind!r}")


@dataclass(frozen=True, slots=True)
class Anomaly:
    """An injected anomaly, as a label: what, and over which readings' times."""

    kind: str
    # Time of the first reading affected (for a gap: the first reading missing).
    start_us: int
    # Just after the last reading affected (exclusive).
    end_us: int
    # The offset added for spikes, dips and jumps; the held value for a stuck sensor.
    magnitude: float


@dataclass(frozen=True, slots=True)
class Block:
    """Readings taken from a source, with the anomalies that start among them."""

    timestamps: Int64s
    values: Float64s
    anomalies: tuple[Anomaly, ...]
    # Grid positions covered, including readings dropped by gaps.
    positions: int


@dataclass(frozen=True, slots=True)
class _Event:
    kind: str
    first: int  # first grid index affected
    stop: int  # grid index after the last one affected
    magnitude: float


@dataclass(frozen=True, slots=True)
class _Params:
    """Per-device constants of a signal, drawn from the seed."""

    level: float
    daily: float
    phase: float
    drift: tuple[tuple[float, float, float], ...]  # (amplitude, period s, phase)
    noise: float


def _params(model: SensorModel, rng: np.random.Generator) -> _Params:
    def drift(
        count: int, amplitude: float, shortest: float, longest: float
    ) -> tuple[tuple[float, float, float], ...]:
        return tuple(
            (
                float(rng.uniform(0.3, 1.0) * amplitude),
                float(rng.uniform(shortest, longest)),
                float(rng.uniform(0, 2 * math.pi)),
            )
            for _ in range(count)
        )

    if model.device_type == "temperature":
        # Indoor-ish: 18-24 °C, warmest mid-afternoon, a few tenths of drift, 0.03 °C noise.
        return _Params(
            level=float(rng.uniform(18.0, 24.0)),
            daily=float(rng.uniform(1.5, 4.0)),
            phase=float(rng.uniform(-1.5, 1.5)),
            drift=drift(3, 0.4, 300.0, 3 * 3600.0),
            noise=0.03,
        )
    if model.device_type == "pressure":
        # Sea-level pressure with the semi-diurnal tide (about 1 hPa) and days-long weather.
        return _Params(
            level=float(1013.25 + rng.normal(0.0, 6.0)),
            daily=float(rng.uniform(0.5, 1.2)),
            phase=float(rng.uniform(-1.0, 1.0)),
            drift=drift(3, 4.0, 6 * 3600.0, 3 * 86_400.0),
            noise=0.04,
        )
    # Acceleration magnitude of a mounted device: 1 g at rest, vibration when it moves.
    return _Params(level=1.0, daily=0.0, phase=0.0, drift=(), noise=0.002)


class SignalSource:
    """The readings of one simulated device on a regular grid; see the module docstring."""

    def __init__(
        self,
        device_type: str,
        *,
        rate_hz: float,
        start_us: int,
        seed: int,
        rates: AnomalyRates | None = None,
        scheduled: tuple[Scheduled, ...] = (),
    ) -> None:
        if device_type not in MODELS:
            raise ValueError(f"unknown device type {device_type!r}; one of {DEVICE_TYPES}")
        if not 0 < rate_hz <= 1_000_000:
            raise ValueError("rate_hz must be above 0 and at most 1,000,000")
        self.model = MODELS[device_type]
        self.period_us = max(1, round(1_000_000 / rate_hz))
        self.start_us = int(start_us)
        self.seed = seed
        self.rates = AnomalyRates() if rates is None else rates
        self._scheduled = scheduled
        self._params = _params(self.model, np.random.default_rng([seed, _PARAMS]))
        self._position = 0  # next grid index to hand out
        self._values: Float64s = np.empty(0)  # generated values from _base on, gaps included
        self._present = np.empty(0, dtype=bool)  # False where a gap drops the reading
        self._base = 0  # grid index of _values[0]
        self._generated = 0  # grid index after the last generated one
        self._last_value: float | None = None
        self._held: dict[_Event, float] = {}
        self._labels: list[tuple[int, Anomaly]] = []  # (first grid index, label), in order
        self._windows: dict[int, list[_Event]] = {}

    @property
    def position(self) -> int:
        """Grid positions handed out so far (readings dropped by gaps included)."""
        return self._position

    def time_of(self, index: int) -> int:
        """The time of grid position ``index``, in microseconds since the epoch."""
        return self.start_us + index * self.period_us

    def positions_until(self, t_us: int) -> int:
        """How many positions not yet handed out have a time at or before ``t_us``."""
        due = (t_us - self.start_us) // self.period_us + 1
        return max(0, due - self._position)

    def take(self, count: int) -> Block:
        """The next ``count`` grid positions; readings in gaps are left out."""
        if count < 0:
            raise ValueError("count must not be negative")
        first, stop = self._position, self._position + count
        self._generate_until(stop)
        lo, hi = first - self._base, stop - self._base
        present = self._present[lo:hi]
        index = np.arange(first, stop, dtype=np.int64)[present]
        timestamps = self.start_us + index * self.period_us
        values = self._values[lo:hi][present].copy()
        labels = tuple(label for at, label in self._labels if first <= at < stop)
        self._labels = [(at, label) for at, label in self._labels if at >= stop]
        self._position = stop
        self._discard_before(stop)
        return Block(timestamps, values, labels, count)

    def take_until(self, t_us: int, *, limit: int | None = None) -> Block:
        """Every position up to time ``t_us`` (at most ``limit`` of them)."""
        count = self.positions_until(t_us)
        return self.take(count if limit is None else min(count, limit))

    # -- generation ---------------------------------------------------------

    def _discard_before(self, index: int) -> None:
        drop = index - self._base
        if drop > 0:
            self._values = self._values[drop:]
            self._present = self._present[drop:]
            self._base = index

    def _generate_until(self, stop: int) -> None:
        while self._generated < stop:
            segment = self._generated // SEGMENT
            values, present = self._segment(segment)
            self._values = np.concatenate([self._values, values])
            self._present = np.concatenate([self._present, present])
            self._generated = (segment + 1) * SEGMENT

    def _segment(self, segment: int) -> tuple[Float64s, npt.NDArray[np.bool_]]:
        first, stop = segment * SEGMENT, (segment + 1) * SEGMENT
        index = np.arange(first, stop, dtype=np.int64)
        t_us = self.start_us + index * self.period_us
        noise = np.random.default_rng([self.seed, _NOISE, segment]).standard_normal(SEGMENT)
        raw = self._clean(t_us) + self._params.noise * noise
        events = self._events_between(first, stop)
        for event in events:
            if event.kind in ("spike", "dip", "jump"):
                raw[max(event.first, first) - first : min(event.stop, stop) - first] += (
                    event.magnitude
                )
        values = np.round(raw, self.model.decimals)
        present = np.ones(SEGMENT, dtype=bool)
        held_mask = np.zeros(SEGMENT, dtype=bool)
        for event in events:
            lo, hi = max(event.first, first) - first, min(event.stop, stop) - first
            if event.kind == "stuck":
                held = self._held.get(event)
                if held is None:
                    # The sensor keeps answering the last value it measured.
                    if lo > 0:
                        held = float(values[lo - 1])
                    elif self._last_value is not None:
                        held = self._last_value
                    else:
                        held = float(values[0])
                    self._held[event] = held
                values[lo:hi] = held
                held_mask[lo:hi] = True
            elif event.kind == "gap":
                present[lo:hi] = False
        for event in events:
            if not first <= event.first < stop:
                continue
            at = event.first - first
            if event.kind in ("spike", "dip") and (held_mask[at] or not present[at]):
                continue  # hidden by a stuck sensor or a gap: nothing to detect
            magnitude = self._held.get(event, event.magnitude)
            self._labels.append(
                (
                    event.first,
                    Anomaly(
                        event.kind, self.time_of(event.first), self.time_of(event.stop), magnitude
                    ),
                )
            )
        self._labels.sort(key=lambda pair: pair[0])
        self._last_value = float(values[-1])
        # Events that ended before this segment can be forgotten.
        self._held = {e: v for e, v in self._held.items() if e.stop > stop}
        return values, present

    def _clean(self, t_us: Int64s) -> Float64s:
        """The signal without noise or anomalies at times ``t_us``."""
        p = self._params
        seconds = t_us / 1e6
        if self.model.device_type == "temperature":
            # sin peaks a quarter period after its zero: 09:00 + 6 h = 15:00 UTC, shifted by phase.
            day = 2 * math.pi * ((seconds / _DAY_S) - (9.0 + p.phase) / 24.0)
            base = p.level + p.daily * np.sin(day)
        elif self.model.device_type == "pressure":
            tide = 2 * math.pi * (2 * seconds / _DAY_S - (4.0 + p.phase) / 24.0)
            base = p.level + p.daily * np.sin(tide)
        else:
            base = np.full(t_us.shape, p.level) + self._vibration(t_us)
        for amplitude, period, phase in p.drift:
            base = base + amplitude * np.sin(2 * math.pi * seconds / period + phase)
        return np.asarray(base, dtype=np.float64)

    def _vibration(self, t_us: Int64s) -> Float64s:
        """Bursts of vibration while the device moves: a few per hour, more by day."""
        out = np.zeros(t_us.shape)
        if not t_us.size:
            return out
        longest_us = 60_000_000
        for window in range((int(t_us[0]) - longest_us) // _HOUR_US, int(t_us[-1]) // _HOUR_US + 1):
            rng = np.random.default_rng([self.seed, _MOTION, window])
            hour_of_day = (window % 24) + 0.5
            busy = 8.0 if 7 <= hour_of_day <= 20 else 1.0
            for _ in range(int(rng.poisson(busy))):
                start = window * _HOUR_US + int(rng.integers(0, _HOUR_US))
                length = int(rng.uniform(2.0, 60.0) * 1e6)
                amplitude, hertz = float(rng.uniform(0.03, 0.4)), float(rng.uniform(2.0, 15.0))
                inside = (t_us >= start) & (t_us < start + length)
                if inside.any():
                    since = (t_us[inside] - start) / 1e6
                    envelope = np.sin(math.pi * since / (length / 1e6))
                    out[inside] += (
                        amplitude * envelope * np.abs(np.sin(2 * math.pi * hertz * since))
                    )
        return out

    def _first_index_at(self, t_us: int) -> int:
        """The first grid index whose time is at or after ``t_us``."""
        return -(-(t_us - self.start_us) // self.period_us)

    def _events_between(self, first: int, stop: int) -> list[_Event]:
        """Anomalies affecting grid positions [first, stop)."""
        t_first, t_stop = self.time_of(first), self.time_of(stop)
        found = [
            event
            for window in range(
                (t_first - self.rates.longest_us) // _HOUR_US, t_stop // _HOUR_US + 1
            )
            for event in self._window_events(window)
        ]
        found += [
            self._event_of(s.kind, s.start_us, s.duration_us, s.magnitude) for s in self._scheduled
        ]
        return [e for e in found if e.first >= 0 and e.first < stop and e.stop > first]

    def _window_events(self, window: int) -> list[_Event]:
        cached = self._windows.get(window)
        if cached is not None:
            return cached
        events = []
        for number, kind in enumerate(ANOMALY_KINDS):
            # One generator per kind, so that one kind's rate does not move the others.
            rng = np.random.default_rng([self.seed, _EVENTS, window, number])
            for _ in range(int(rng.poisson(self.rates.per_hour(kind)))):
                start = window * _HOUR_US + int(rng.integers(0, _HOUR_US))
                low, high = self.rates.seconds(kind)
                events.append(
                    self._event_of(kind, start, int(rng.uniform(low, high) * 1e6), None, rng)
                )
        if len(self._windows) > 64:
            self._windows.pop(min(self._windows))
        self._windows[window] = events
        return events

    def _event_of(
        self,
        kind: str,
        start_us: int,
        duration_us: int,
        magnitude: float | None,
        rng: np.random.Generator | None = None,
    ) -> _Event:
        first = self._first_index_at(start_us)
        stop = max(first + 1, self._first_index_at(start_us + duration_us))
        if kind in ("spike", "dip"):
            stop = first + 1
        if kind in ("stuck", "gap"):
            return _Event(kind, first, stop, 0.0)  # a stuck sensor's value is known only later
        if magnitude is None:
            draw = rng or np.random.default_rng([self.seed, _EVENTS, start_us])
            low, high = self.model.jump_range if kind == "jump" else self.model.spike_range
            size = float(draw.uniform(low, high))
            sign = {"spike": 1.0, "dip": -1.0}.get(kind) or float(draw.choice([-1.0, 1.0]))
            magnitude = round(sign * size, self.model.decimals)
        return _Event(kind, first, stop, float(magnitude))
