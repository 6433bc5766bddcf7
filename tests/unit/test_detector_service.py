"""Analytics' detector service without gRPC: the owner sees and changes a stream's detector,
anyone else finds no such stream, and bad settings are refused before anything changes.

The service runs over a real store on a SQLite file, as the process does by default.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from iotkit.context import Caller
from iotkit.errors import NotFound, ValidationFailed
from services.analytics.analytics.analysis import AnalysisService, ChunkIn
from services.analytics.analytics.detectors import DEFAULT_THRESHOLD, THRESHOLD_RANGE
from services.analytics.analytics.hub import AnomalyHub
from services.analytics.analytics.service import DetectorService
from services.analytics.analytics.store import AnalyticsStore, Base
from services.analytics.analytics.values import Anomaly, Detector

OWNER = str(uuid.uuid4())
SECOND = 1_000_000


def caller(subject: str, role: str = "user") -> Caller:
    return Caller(subject=subject, role=role, scopes=frozenset(), token_type="access")


@pytest.fixture
async def analysis(tmp_path: Path) -> AsyncIterator[AnalysisService]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'analytics.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    store = AnalyticsStore(async_sessionmaker(engine, expire_on_commit=False), dialect="sqlite")
    yield AnalysisService(store=store, hub=AnomalyHub())
    await engine.dispose()


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
    analysis: AnalysisService,
) -> None:
    stream = await a_stream(analysis)
    detectors = DetectorService(analysis=analysis)
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


async def test_the_owner_changes_a_detector_within_its_rules(analysis: AnalysisService) -> None:
    stream = await a_stream(analysis)
    detectors = DetectorService(analysis=analysis)
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
