"""Analysis of forwarded chunks: run each stream's detector, checkpoint, store anomalies
and scores.

Chunks arrive in telemetry's position order. A request's chunks of one stream are
joined and run through its detector in one call (the detector's findings do not
depend on how readings are batched), and each stream is checkpointed once per
request: behind a backlog, telemetry sends larger requests and analysis catches
up at a lower cost per reading. A chunk at or below a stream's
stored position was analysed before (a resend after a restart) and is
skipped, so nothing is analysed twice into a second anomaly or score. Detector
state, positions, anomalies and the readings' scores of a request are stored
in one transaction before the request is acknowledged.

With several replicas a stream may be analysed by another replica between
two requests this one gets (its streams moved while this replica was away),
so the detectors cached here can be stale. The store commits an analysis only
if every detector it used is as this replica read it; when one is not,
nothing was stored, those detectors are read again and the request analysed
again from them, skipping what the other replica analysed. Reviews and
settings change the stored detector under a row lock, never a cached copy.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np

from iotkit.sqltypes import utcnow
from iotkit.validation import Violations, check_uuid
from services.analytics.analytics.detectors import THRESHOLD_RANGE, DetectorState, StreamDetector
from services.analytics.analytics.hub import AnomalyHub
from services.analytics.analytics.store import (
    AnalyticsStore,
    StaleDetectors,
    Version,
    version_of,
)
from services.analytics.analytics.values import Anomaly, Checkpoint, Detector, ScoreSeries

# A dismissal raises the score a finding needs by 10% (at most to 1.8 times the base),
# a confirmation lowers it by 5% back towards the base.
MAX_THRESHOLD_FACTOR = 1.8
DISMISS_STEP, CONFIRM_STEP = 1.1, 1.05
# A request is analysed again from fresh detectors when another replica changed some of
# them; each attempt rereads those, so more than a few conflicts in a row means a fault.
COMMIT_ATTEMPTS = 5


class CrossedBounds(Exception):
    """A change of bounds would leave the lowest possible value not below the highest:
    nothing was changed. Carries the stored bounds it was checked against."""

    def __init__(self, *, min_value: float, max_value: float) -> None:
        super().__init__(f"bounds {min_value} to {max_value}")
        self.min_value = min_value
        self.max_value = max_value


@dataclass(frozen=True, slots=True)
class ChunkIn:
    """One forwarded chunk of one stream."""

    position: int
    stream_id: str
    device_id: str
    owner_id: str
    device_type: str
    sampling_period_us: float  # expected interval; 0 when irregular
    timestamps: np.ndarray
    values: np.ndarray


@dataclass
class _Detector:
    """A stream's detector at work: its stored checkpoint's fields, with the state decoded."""

    stream_id: str
    owner_id: str
    device_id: str
    position: int
    state: DetectorState
    updated_at: datetime
    read_as: Version | None  # the stored version it was read at; None when new

    def checkpoint(self) -> Checkpoint:
        """What the store keeps of it."""
        return Checkpoint(
            stream_id=self.stream_id,
            owner_id=self.owner_id,
            device_id=self.device_id,
            position=self.position,
            state=self.state.to_json(),
            updated_at=self.updated_at,
        )

    def shown(self) -> Detector:
        """The detector as a value, with a copy of its state."""
        return Detector(
            stream_id=self.stream_id,
            owner_id=self.owner_id,
            device_id=self.device_id,
            state=self.state.copy(),
        )


class AnalysisService:
    """Runs detectors over forwarded chunks and keeps their state."""

    def __init__(
        self,
        *,
        store: AnalyticsStore,
        hub: AnomalyHub,
        clock: Callable[[], datetime] = utcnow,
        on_analyzed: Callable[[Sequence[ChunkIn], datetime], None] | None = None,
    ) -> None:
        """``on_analyzed`` is told each analysed request's chunks and the time it was
        analysed (metrics)."""
        self._store = store
        self._hub = hub
        self._clock = clock
        self._on_analyzed = on_analyzed
        self._cache: dict[str, _Detector] = {}
        # Analysis and reviews both change detector state; one at a time keeps them consistent.
        self._lock = asyncio.Lock()

    async def analyze(self, chunks: Sequence[ChunkIn]) -> tuple[int, list[Anomaly]]:
        """Analyse chunks in order; answers the watermark reached and the anomalies stored."""
        if not chunks:
            return 0, []
        async with self._lock:
            for attempt in range(COMMIT_ATTEMPTS):
                try:
                    stored = await self._analyze_once(chunks)
                    break
                except StaleDetectors as stale:
                    # Another replica moved these streams on: read them again and redo.
                    for stream_id in stale.stream_ids:
                        self._cache.pop(stream_id, None)
                    if attempt == COMMIT_ATTEMPTS - 1:
                        raise
        self._hub.publish(stored)
        if self._on_analyzed is not None:
            self._on_analyzed(chunks, self._clock())
        return max(chunk.position for chunk in chunks), stored

    async def _analyze_once(self, chunks: Sequence[ChunkIn]) -> list[Anomaly]:
        now = self._clock()
        working: dict[str, _Detector] = {}
        found: list[Anomaly] = []
        scored: list[ScoreSeries] = []
        # Chunks telemetry read before it purged a decommissioned device may still arrive.
        retired = await self._store.retired_among(device_ids={c.device_id for c in chunks})
        for stream_chunks in _by_stream(chunks):
            first = stream_chunks[0]
            if first.device_id in retired:
                continue
            detector = working[first.stream_id] = await self._working_copy(first, now)
            # Analysed before (a resend, or by another replica): skipped.
            fresh = [chunk for chunk in stream_chunks if chunk.position > detector.position]
            for run in _runs(fresh):
                findings, scores = self._process(detector, run, now)
                found += findings
                scored.append(scores)
        checkpoints = []
        for detector in working.values():
            detector.updated_at = now
            checkpoints.append(detector.checkpoint())
        stored = await self._store.commit_analysis(
            detectors=checkpoints,
            read_as={d.stream_id: d.read_as for d in working.values()},
            anomalies=found,
            scores=scored,
        )
        # Only now, with everything durable, does the cache move on (at the version stored).
        for detector in working.values():
            detector.read_as = (detector.position, detector.updated_at)
        self._cache.update(working)
        return stored

    @staticmethod
    def _process(
        detector: _Detector, run: _Run, now: datetime
    ) -> tuple[list[Anomaly], ScoreSeries]:
        """Run ``detector`` over ``run``: its findings as anomalies, and its scores."""
        result = StreamDetector(detector.state).process(
            run.timestamps, run.values, sampling_period_us=run.sampling_period_us
        )
        detector.position = run.position
        scores = ScoreSeries(run.stream_id, run.device_id, result.timestamps, result.scores)
        anomalies = [
            Anomaly(
                id=str(uuid.uuid4()),
                stream_id=run.stream_id,
                device_id=run.device_id,
                owner_id=run.owner_id,
                detected_us=f.timestamp_us,
                known_us=f.found_us or f.timestamp_us,
                anomaly_type=f.anomaly_type,
                raw_value=f.raw_value,
                expected_value=f.expected_value,
                confidence=round(f.confidence, 4),
                status="pending",
                found_at=now,
                reviewed_by=None,
                reviewed_at=None,
                review_note="",
            )
            for f in result.findings
        ]
        return anomalies, scores

    async def forget_device(self, *, device_id: str) -> int:
        """Delete a decommissioned device's anomalies and detectors; answers the anomalies removed.

        Telemetry calls this once it has purged the device's readings, as it
        follows the devices event log. That costs one call per decommission;
        following the event log here too would poll devices for ever, and asking
        devices while listing would cost a call (or a cache) per listing.
        """
        violations = Violations()
        device_id = check_uuid(violations, device_id, field="device_id")
        violations.raise_if_any()
        async with self._lock:
            removed = await self._store.forget_device(device_id=device_id, now=self._clock())
            for stream_id in [s for s, d in self._cache.items() if d.device_id == device_id]:
                del self._cache[stream_id]
            return removed

    async def feedback(self, *, stream_id: str, status: str) -> None:
        """Feed a review back: dismissals raise the threshold, confirmations lower it."""

        def review(state: DetectorState) -> None:
            if status == "dismissed":
                state.dismissed += 1
                state.threshold = min(
                    state.threshold * DISMISS_STEP,
                    state.base_threshold * MAX_THRESHOLD_FACTOR,
                    THRESHOLD_RANGE[1],
                )
            elif status == "confirmed":
                state.confirmed += 1
                state.threshold = max(state.threshold / CONFIRM_STEP, state.base_threshold)

        await self._change(stream_id, review)

    async def detector(self, *, stream_id: str) -> Detector | None:
        """A stream's detector, whoever owns the stream (the caller's service checks that).

        Read from the store, not the cache: another replica may be analysing the stream.
        """
        async with self._lock:
            detector = await self._load(stream_id)
            return None if detector is None else detector.shown()

    async def configure(
        self,
        *,
        stream_id: str,
        min_value: float | None,
        max_value: float | None,
        threshold: float | None,
    ) -> Detector | None:
        """Change a stream's bounds or base threshold.

        Bounds are checked against the stored ones under the detector's row lock: a change
        that would leave the lowest not below the highest raises :class:`CrossedBounds`
        and changes nothing (a bound given alone is checked against the other as stored,
        so two requests each moving one bound cannot cross them)."""

        def settle(state: DetectorState) -> None:
            if min_value is not None or max_value is not None:
                low = state.min_value if min_value is None else min_value
                high = state.max_value if max_value is None else max_value
                if not low < high:
                    raise CrossedBounds(min_value=state.min_value, max_value=state.max_value)
                state.min_value, state.max_value = low, high
            if threshold is not None:
                state.base_threshold = state.threshold = threshold

        detector = await self._change(stream_id, settle)
        return None if detector is None else detector.shown()

    async def _change(
        self, stream_id: str, change: Callable[[DetectorState], None]
    ) -> _Detector | None:
        """Apply ``change`` to the stored detector under its row lock; cache the result."""
        now = self._clock()

        def changed(stored: Checkpoint) -> Checkpoint:
            state = DetectorState.from_json(stored.state)
            change(state)
            return replace(stored, state=state.to_json(), updated_at=now)

        async with self._lock:
            stored = await self._store.change_detector(stream_id=stream_id, change=changed)
            if stored is None:
                return None
            detector = _detector_of(stored)
            self._cache[stream_id] = detector
            return detector

    async def _load(self, stream_id: str) -> _Detector | None:
        stored = await self._store.detector(stream_id=stream_id)
        if stored is None:
            return None
        detector = _detector_of(stored)
        self._cache[stream_id] = detector
        return detector

    async def _working_copy(self, chunk: ChunkIn, now: datetime) -> _Detector:
        cached = self._cache.get(chunk.stream_id) or await self._load(chunk.stream_id)
        if cached is None:
            return _Detector(
                stream_id=chunk.stream_id,
                owner_id=chunk.owner_id,
                device_id=chunk.device_id,
                position=0,
                state=DetectorState.for_type(chunk.device_type),
                updated_at=now.astimezone(UTC),
                read_as=None,
            )
        # Work on a copy so that a failed commit leaves the cache as the database has it.
        return replace(cached, state=cached.state.copy())


def _detector_of(stored: Checkpoint) -> _Detector:
    """A stored detector at work, remembering the version it was read at."""
    return _Detector(
        stream_id=stored.stream_id,
        owner_id=stored.owner_id,
        device_id=stored.device_id,
        position=stored.position,
        state=DetectorState.from_json(stored.state),
        updated_at=stored.updated_at,
        read_as=version_of(stored),
    )


@dataclass(frozen=True, slots=True)
class _Run:
    """Consecutive chunks of one stream with the same expected interval, joined: the
    detector gives the same findings and scores for them in one call as chunk by chunk
    (its state carries everything between batches), for one call's overhead."""

    stream_id: str
    device_id: str
    owner_id: str
    position: int  # the last chunk's
    sampling_period_us: float
    timestamps: np.ndarray
    values: np.ndarray


def _by_stream(chunks: Sequence[ChunkIn]) -> list[list[ChunkIn]]:
    """``chunks`` grouped by stream, each group in position order (streams are analysed
    independently, so only the order within a stream matters)."""
    groups: dict[str, list[ChunkIn]] = {}
    for chunk in sorted(chunks, key=lambda c: c.position):
        groups.setdefault(chunk.stream_id, []).append(chunk)
    return list(groups.values())


def _runs(chunks: Sequence[ChunkIn]) -> list[_Run]:
    """One stream's chunks joined into runs of the same expected interval."""
    runs: list[list[ChunkIn]] = []
    for chunk in chunks:
        if runs and runs[-1][-1].sampling_period_us == chunk.sampling_period_us:
            runs[-1].append(chunk)
        else:
            runs.append([chunk])
    return [
        _Run(
            stream_id=run[-1].stream_id,
            device_id=run[-1].device_id,
            owner_id=run[-1].owner_id,
            position=run[-1].position,
            sampling_period_us=run[-1].sampling_period_us,
            timestamps=np.concatenate([c.timestamps for c in run])
            if len(run) > 1
            else run[0].timestamps,
            values=np.concatenate([c.values for c in run]) if len(run) > 1 else run[0].values,
        )
        for run in runs
    ]
