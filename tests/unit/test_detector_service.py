"""Analytics' detector service without gRPC: the owner sees and changes a stream's detector,
anyone else finds no such stream, and bad settings are refused before anything changes.

The service runs over a real store, on a SQLite file as the process does by default and on
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest

from iotkit.context import Caller
from iotkit.convert import micros_datetime
from iotkit.db import open_database
from iotkit.errors import NotFound, ValidationFailed
from services.analytics.analytics.analysis import AnalysisService, ChunkIn
from services.analytics.analytics.detectors import (
    DEFAULT_THRESHOLD,
    THRESHOLD_RANGE,
    BatchResult,
    Float64s,
    Int64s,
    StreamDetector,
)
from services.analytics.analytics.hub import AnomalyHub
from services.analytics.analytics.service import DetectorService
from services.analytics.analytics.store import AnalyticsStore
from services.analytics.analytics.values import Anomaly, Detector
from services.analytics.wiring import MIGRATIONS
from tests.conftest import Backend

OWNER = str(uuid.uuid4())
SECOND = 1_000_000


def caller(subject: str, role: str = "user") -> Caller:
    return Caller(subject=subject, role=role, scopes=frozenset(), token_type="access")


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[AnalyticsStore]:
    database = await open_database(
        service="analytics",
        settings=backend.settings,
        tables=MIGRATIONS,
        schema=backend.schema("analytics"),
    )
    yield AnalyticsStore(database.sessions, dialect=database.kind)
    await database.close()


@pytest.fixture
def analysis(store: AnalyticsStore) -> AnalysisService:
    return AnalysisService(store=store, hub=AnomalyHub())


async def a_stream(analysis: AnalysisService) -> str:
    """A stream of ``OWNER``'s whose detector has seen 300 quiet readings."""
    stream = str(uuid.uuid4())
    values = np.full(300, 21.0) + np.random.default_rng(3).normal(0, 0.05, 300)
    await analysis.analyze(
        [
            ChunkIn(
                position=1,
                stream_id=stream,
                device_id=stream,
                owner_id=OWNER,
                device_type="temperature",
                sampling_period_us=1e6,
                timestamps=np.arange(300, dtype=np.int64) * SECOND,
                values=values,
            )
        ]
    )
    return stream


async def test_the_owner_and_an_admin_see_a_detector_and_nobody_else(
    analysis: AnalysisService, store: AnalyticsStore
) -> None:
    stream = await a_stream(analysis)
    detectors = DetectorService(analysis=analysis, store=store)
    mine = await detectors.get(caller=caller(OWNER), stream_id=stream)
    assert isinstance(mine, Detector)  # a domain value, not a stored row
    assert (mine.stream_id, mine.owner_id, mine.state.readings) == (stream, OWNER, 300)
    admin = await detectors.get(caller=caller(str(uuid.uuid4()), "admin"), stream_id=stream)
    assert admin.owner_id == OWNER
    for stranger_stream in (stream, str(uuid.uuid4())):  # another's and unknown alike
        with pytest.raises(NotFound) as caught:
            await detectors.get(caller=caller(str(uuid.uuid4())), stream_id=stranger_stream)
        assert caught.value.reason == "STREAM_NOT_FOUND"
    with pytest.raises(ValidationFailed) as invalid:
        await detectors.get(caller=caller(OWNER), stream_id="not-a-uuid")
    assert [v.field for v in invalid.value.violations] == ["stream_id"]


async def test_the_owner_changes_a_detector_within_its_rules(
    analysis: AnalysisService, store: AnalyticsStore
) -> None:
    stream = await a_stream(analysis)
    detectors = DetectorService(analysis=analysis, store=store)
    owner = caller(OWNER)

    changed = await detectors.update(
        caller=owner, stream_id=stream, min_value=-10.0, max_value=60.0, threshold=None
    )
    assert (changed.state.min_value, changed.state.max_value) == (-10.0, 60.0)
    changed = await detectors.update(
        caller=owner, stream_id=stream, min_value=None, max_value=None, threshold=0.8
    )
    assert (changed.state.threshold, changed.state.base_threshold) == (0.8, 0.8)
    assert changed.state.min_value == -10.0  # an absent setting stays as it was
    for edge in THRESHOLD_RANGE:  # the range's ends are in it
        await detectors.update(
            caller=owner, stream_id=stream, min_value=None, max_value=None, threshold=edge
        )
    await detectors.update(
        caller=owner, stream_id=stream, min_value=None, max_value=None, threshold=0.8
    )

    for low, high, threshold, field in (
        (None, None, 0.049, "threshold"),
        (None, None, 1.0, "threshold"),  # a score never reaches 1: nothing would be found
        (None, None, 8.0, "threshold"),  # the old scale, in deviations
        (None, None, math.nan, "threshold"),
        (5.0, 5.0, None, "max_value"),
    ):
        with pytest.raises(ValidationFailed) as caught:
            await detectors.update(
                caller=owner, stream_id=stream, min_value=low, max_value=high, threshold=threshold
            )
        assert [v.field for v in caught.value.violations] == [field]
    # Another user learns nothing, not even that the settings were bad; nothing changes.
    with pytest.raises(NotFound):
        await detectors.update(
            caller=caller(str(uuid.uuid4())),
            stream_id=stream,
            min_value=None,
            max_value=None,
            threshold=0.6,
        )
    kept = await detectors.get(caller=owner, stream_id=stream)
    assert (kept.state.threshold, kept.state.min_value, kept.state.max_value) == (0.8, -10.0, 60.0)


async def test_bounds_stay_in_order_and_are_numbers_or_none(
    analysis: AnalysisService, store: AnalyticsStore
) -> None:
    """A temperature stream's bounds (-40 to 85): a bound given alone is checked against the
    stored other, NaN and the wrong infinity are refused, and -Infinity / Infinity (what
    the console sends for an emptied field) clear a bound. A refusal changes nothing."""
    stream = await a_stream(analysis)
    detectors = DetectorService(analysis=analysis, store=store)
    owner = caller(OWNER)

    async def bounds() -> tuple[float, float]:
        shown = await detectors.get(caller=owner, stream_id=stream)
        return shown.state.min_value, shown.state.max_value

    async def refused(low: float | None, high: float | None) -> list[tuple[str, str]]:
        with pytest.raises(ValidationFailed) as caught:
            await detectors.update(
                caller=owner, stream_id=stream, min_value=low, max_value=high, threshold=None
            )
        return [(v.field, v.message) for v in caught.value.violations]

    assert await bounds() == (-40.0, 85.0)
    [(field, message)] = await refused(200.0, None)
    assert field == "min_value" and "below max_value (85)" in message
    [(field, message)] = await refused(None, -500.0)
    assert field == "max_value" and "above min_value (-40)" in message
    assert [f for f, _ in await refused(85.0, None)] == ["min_value"]  # equal is not below
    assert await refused(math.nan, None) == [("min_value", "min_value must be a number")]
    assert await refused(None, math.nan) == [("max_value", "max_value must be a number")]
    assert [f for f, _ in await refused(math.inf, None)] == ["min_value"]
    assert [f for f, _ in await refused(None, -math.inf)] == ["max_value"]
    assert [f for f, _ in await refused(math.nan, 10.0)] == ["min_value"]
    assert [f for f, _ in await refused(math.inf, -math.inf)] == ["min_value", "max_value"]
    assert [f for f, _ in await refused(10.0, 5.0)] == ["max_value"]
    assert await bounds() == (-40.0, 85.0)

    async def change(low: float | None, high: float | None) -> tuple[float, float]:
        changed = await detectors.update(
            caller=owner, stream_id=stream, min_value=low, max_value=high, threshold=None
        )
        return changed.state.min_value, changed.state.max_value

    assert await change(-math.inf, math.inf) == (-math.inf, math.inf)  # the console's "none"
    stored = await store.detector(stream_id=stream)
    assert stored is not None and (stored.state["min_value"], stored.state["max_value"]) == (
        None,
        None,
    )
    assert await change(None, -500.0) == (-math.inf, -500.0)  # below no bound is fine
    assert [f for f, _ in await refused(-400.0, None)] == ["min_value"]
    assert await change(-600.0, None) == (-600.0, -500.0)
    assert await change(10.0, 60.0) == (10.0, 60.0)  # both at once, past the stored ones
    assert await change(-math.inf, None) == (-math.inf, 60.0)
    assert await change(None, math.inf) == (-math.inf, math.inf)
    assert await change(0.0, None) == (0.0, math.inf)

    # Two requests each moving one bound, at once: checked under the detector's lock, so
    # at most one is taken and the bounds never cross.
    await change(0.0, 100.0)
    results = await asyncio.gather(
        detectors.update(
            caller=owner, stream_id=stream, min_value=70.0, max_value=None, threshold=None
        ),
        detectors.update(
            caller=owner, stream_id=stream, min_value=None, max_value=30.0, threshold=None
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(r, ValidationFailed) for r in results) == 1
    low, high = await bounds()
    assert low < high and (low, high) in ((70.0, 100.0), (0.0, 30.0))


async def test_analysis_answers_values_and_checks_a_device_to_forget(
    analysis: AnalysisService,
) -> None:
    stream = await a_stream(analysis)
    # A spike after the quiet readings is found and answered as anomaly values.
    _, found = await analysis.analyze(
        [
            ChunkIn(
                position=2,
                stream_id=stream,
                device_id=stream,
                owner_id=OWNER,
                device_type="temperature",
                sampling_period_us=1e6,
                timestamps=np.arange(300, 320, dtype=np.int64) * SECOND,
                values=np.array([21.0] * 10 + [30.0] + [21.0] * 9),
            )
        ]
    )
    assert found and all(isinstance(anomaly, Anomaly) for anomaly in found)
    with pytest.raises(ValidationFailed) as caught:
        await analysis.forget_device(device_id="not-a-uuid")
    assert [v.field for v in caught.value.violations] == ["device_id"]
    assert await analysis.forget_device(device_id=stream) == len(found)
    assert await analysis.detector(stream_id=stream) is None


def chunk_in(stream: str, position: int, timestamps: list[int]) -> ChunkIn:
    return ChunkIn(
        position=position,
        stream_id=stream,
        device_id=stream,
        owner_id=OWNER,
        device_type="generic",
        sampling_period_us=1e6,
        timestamps=np.array(timestamps, dtype=np.int64) * SECOND,
        values=np.full(len(timestamps), 21.0),
    )


def scoring(monkeypatch: pytest.MonkeyPatch, score: Callable[[Int64s], Float64s]) -> None:
    """The detector scores each reading ``score(timestamps)`` and finds nothing."""

    def process(
        self: StreamDetector, timestamps: Int64s, values: Float64s, *, sampling_period_us: float
    ) -> BatchResult:
        return BatchResult([], timestamps, score(timestamps))

    monkeypatch.setattr(StreamDetector, "process", process)


async def test_scores_are_stored_with_the_analysis_and_paged_back(
    analysis: AnalysisService, store: AnalyticsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Score of the reading at t seconds: t / 1000, so every score says which reading it is.
    scoring(monkeypatch, lambda t: (t // SECOND) / 1000)
    stream = str(uuid.uuid4())
    chunks = [chunk_in(stream, n + 1, list(range(n * 100, n * 100 + 100))) for n in range(5)]
    # Late readings arrive in chunks of their own, overlapping the earlier ones in time.
    chunks.append(chunk_in(stream, 6, [150, 250, 251]))
    chunks[2] = chunk_in(stream, 3, [t for t in range(200, 300) if t not in (250, 251)])
    chunks[1] = chunk_in(stream, 2, [t for t in range(100, 200) if t != 150])
    for chunk in chunks:  # one request each: a score row per chunk, overlapping in time
        await analysis.analyze([chunk])
    detectors = DetectorService(analysis=analysis, store=store)
    owner = caller(OWNER)

    whole = await detectors.scores(caller=owner, stream_id=stream, start=None, end=None, limit=0)
    assert whole.timestamps.tolist() == [t * SECOND for t in range(500)]
    assert np.abs(whole.scores - np.arange(500) / 1000).max() <= 0.5 / 65535
    assert whole.next_us is None

    for limit in (1, 7, 100, 101, 250):
        pages, start, rounds = [], None, 0
        while True:
            page = await detectors.scores(
                caller=owner, stream_id=stream, start=start, end=None, limit=limit
            )
            assert page.timestamps.size <= limit
            pages.append(page.timestamps)
            rounds += 1
            if page.next_us is None:
                break
            start = micros_datetime(page.next_us)
        assert np.concatenate(pages).tolist() == whole.timestamps.tolist(), limit
        assert rounds <= 500 // limit + 6  # rows overlap at most a few times

    inside = await detectors.scores(
        caller=owner,
        stream_id=stream,
        start=micros_datetime(140 * SECOND),
        end=micros_datetime(160 * SECOND),
        limit=0,
    )
    assert inside.timestamps.tolist() == [t * SECOND for t in range(140, 160)]

    admin = await detectors.scores(
        caller=caller(str(uuid.uuid4()), "admin"), stream_id=stream, start=None, end=None, limit=3
    )
    assert admin.timestamps.tolist() == [0, SECOND, 2 * SECOND]
    for who, asked in ((caller(str(uuid.uuid4())), stream), (owner, str(uuid.uuid4()))):
        with pytest.raises(NotFound) as caught:
            await detectors.scores(caller=who, stream_id=asked, start=None, end=None, limit=0)
        assert caught.value.reason == "STREAM_NOT_FOUND"
    for limit, start, end, field in (
        (1_000_001, None, None, "limit"),
        (-1, None, None, "limit"),
        (0, micros_datetime(SECOND), micros_datetime(SECOND), "end"),
    ):
        with pytest.raises(ValidationFailed) as invalid:
            await detectors.scores(
                caller=owner, stream_id=stream, start=start, end=end, limit=limit
            )
        assert [v.field for v in invalid.value.violations] == [field]

    # A decommissioned device's scores go with its detector.
    await analysis.forget_device(device_id=stream)
    assert (
        await store.scores(stream_id=stream, start_us=0, end_us=None, limit=10)
    ).timestamps.size == 0


async def test_a_streams_chunks_in_one_request_are_analysed_as_if_one_by_one(
    analysis: AnalysisService, store: AnalyticsStore
) -> None:
    """A request joins each stream's chunks into one detector call: the same anomalies,
    scores and detector state as a request per chunk, whatever else the request holds."""
    rng = np.random.default_rng(7)
    values = 20 + rng.normal(0, 0.1, 2000)
    values[1200] += 4  # a spike
    values[1600:] += 3  # a jump
    timestamps = np.arange(2000, dtype=np.int64) * SECOND

    def chunks(stream: str) -> list[ChunkIn]:
        return [
            ChunkIn(
                position=n + 1,
                stream_id=stream,
                device_id=stream,
                owner_id=OWNER,
                device_type="generic",
                sampling_period_us=1e6,
                timestamps=timestamps[n * 100 : (n + 1) * 100],
                values=values[n * 100 : (n + 1) * 100],
            )
            for n in range(20)
        ]

    apart, joined, beside = (str(uuid.uuid4()) for _ in range(3))
    found: dict[str, list[Anomaly]] = {apart: [], joined: [], beside: []}
    for chunk in chunks(apart):
        found[apart] += (await analysis.analyze([chunk]))[1]
    # Two requests of ten chunks each, the chunks of two streams interleaved.
    mixed = [c for pair in zip(chunks(joined), chunks(beside), strict=True) for c in pair]
    for request in (mixed[:20], mixed[20:]):
        for anomaly in (await analysis.analyze(request))[1]:
            found[anomaly.stream_id].append(anomaly)

    def seen(anomalies: list[Anomaly]) -> list[tuple[str, int, int, float]]:
        return sorted((a.anomaly_type, a.detected_us, a.known_us, a.confidence) for a in anomalies)

    assert {a.anomaly_type for a in found[apart]} >= {"spike"}
    for stream in (joined, beside):
        assert seen(found[stream]) == seen(found[apart])
        scores = await store.scores(stream_id=stream, start_us=0, end_us=None, limit=10_000)
        expected = await store.scores(stream_id=apart, start_us=0, end_us=None, limit=10_000)
        assert scores.timestamps.tolist() == expected.timestamps.tolist() == timestamps.tolist()
        assert scores.scores.tolist() == expected.scores.tolist()
        detector, reference = (
            await store.detector(stream_id=stream),
            await store.detector(stream_id=apart),
        )
        assert detector is not None and reference is not None
        assert detector.position == reference.position
        # Equal up to rounding: a sum over a longer batch adds in another order.
        assert leaves(detector.state).keys() == leaves(reference.state).keys()
        for path, value in leaves(detector.state).items():
            other = leaves(reference.state)[path]
            if isinstance(value, float):
                assert value == pytest.approx(other, rel=1e-9), path
            else:
                assert value == other, path


def leaves(state: Any, path: str = "") -> dict[str, Any]:
    """Every scalar of a JSON document by its path."""
    if isinstance(state, dict):
        return {
            k: v for key, item in state.items() for k, v in leaves(item, f"{path}.{key}").items()
        }
    if isinstance(state, list):
        return {
            k: v for i, item in enumerate(state) for k, v in leaves(item, f"{path}[{i}]").items()
        }
    return {path: state}


async def test_only_finite_scores_are_stored_within_zero_and_one(
    analysis: AnalysisService, store: AnalyticsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    scoring(monkeypatch, lambda t: np.array([0.25, np.nan, 1.7, -0.2, np.inf])[: t.size])
    stream = str(uuid.uuid4())
    await analysis.analyze([chunk_in(stream, 1, [1, 2, 3, 4, 5])])
    found = await store.scores(stream_id=stream, start_us=0, end_us=None, limit=10)
    assert found.timestamps.tolist() == [SECOND, 3 * SECOND, 4 * SECOND]
    assert found.scores.tolist() == [round(0.25 * 65535) / 65535, 1.0, 0.0]
    # A resent chunk (at or below the stream's position) is not analysed, nor scored, again.
    await analysis.analyze([chunk_in(stream, 1, [1, 2, 3, 4, 5])])
    again = await store.scores(stream_id=stream, start_us=0, end_us=None, limit=10)
    assert again.timestamps.tolist() == found.timestamps.tolist()


async def test_dismissals_raise_the_threshold_and_confirmations_lower_it_within_limits(
    analysis: AnalysisService,
) -> None:
    stream = await a_stream(analysis)

    async def threshold() -> float:
        detector = await analysis.detector(stream_id=stream)
        assert detector is not None
        return detector.state.threshold

    assert await threshold() == DEFAULT_THRESHOLD
    await analysis.feedback(stream_id=stream, status="dismissed")
    assert await threshold() == pytest.approx(0.55)
    for _ in range(20):
        await analysis.feedback(stream_id=stream, status="dismissed")
    assert await threshold() == pytest.approx(0.9)  # at most 1.8 times the base
    await analysis.feedback(stream_id=stream, status="confirmed")
    assert await threshold() == pytest.approx(0.9 / 1.05)
    for _ in range(30):
        await analysis.feedback(stream_id=stream, status="confirmed")
    assert await threshold() == DEFAULT_THRESHOLD  # never below the base
    # A high base: dismissals stop at 0.99, below the score's ceiling of 1.
    await analysis.configure(stream_id=stream, min_value=None, max_value=None, threshold=0.7)
    for _ in range(20):
        await analysis.feedback(stream_id=stream, status="dismissed")
    assert await threshold() == pytest.approx(THRESHOLD_RANGE[1])
    detector = await analysis.detector(stream_id=stream)
    assert detector is not None
    assert (detector.state.dismissed, detector.state.confirmed) == (41, 31)
