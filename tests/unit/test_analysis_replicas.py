"""Two analytics replicas on one database analyse each chunk once.

Each replica is an analysis service with its own connections and its own
cache of detectors, as two processes would be. When a stream moves between
them, the one whose cache is stale must find out as it commits, and skip what
the other analysed; when both get the same chunks at once, one analyses them
and the other skips them; a review made on one is not undone by the other.
On SQLite (one replica writes at a time there) and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence

import numpy as np
import pytest

from iotkit.db import open_database
from services.analytics.analytics.analysis import AnalysisService, ChunkIn
from services.analytics.analytics.hub import AnomalyHub
from services.analytics.analytics.store import AnalyticsStore
from services.analytics.wiring import MIGRATIONS
from tests.conftest import Backend

SIZE = 200
SECOND = 1_000_000


@pytest.fixture
async def replicas(backend: Backend) -> AsyncIterator[list[AnalysisService]]:
    """Two analysis services, each on connections of its own to the one database."""
    databases = [
        await open_database(
            service="analytics",
            settings=backend.settings,
            tables=MIGRATIONS,
            schema=backend.schema("analytics"),
        )
        for _ in range(2)
    ]
    yield [
        AnalysisService(
            store=AnalyticsStore(database.sessions, dialect=database.kind), hub=AnomalyHub()
        )
        for database in databases
    ]
    for database in databases:
        await database.close()


def chunk(stream: str, position: int) -> ChunkIn:
    """Chunk ``position`` (from 1) of a stream: the next ``SIZE`` readings, one a second."""
    first = (position - 1) * SIZE
    return ChunkIn(
        position=position,
        stream_id=stream,
        device_id=stream,
        owner_id=stream,
        device_type="temperature",
        sampling_period_us=SECOND,
        timestamps=np.arange(first, first + SIZE, dtype=np.int64) * SECOND,
        values=20 + np.sin(np.arange(first, first + SIZE) / 10),
    )


async def taken_in(service: AnalysisService, stream: str) -> int:
    """Readings the stream's stored detector has taken in (a second analysis counts late)."""
    detector = await service.detector(stream_id=stream)
    assert detector is not None
    return detector.state.readings + detector.state.late


async def score_rows(backend: Backend, streams: Sequence[str]) -> dict[str, int]:
    """Rows of scores per stream: one per analysed chunk."""
    rows = await backend.sql(
        "analytics", "SELECT stream_id, count(*) FROM scores GROUP BY stream_id"
    )
    counts = {str(stream): int(str(n)) for stream, n in rows}
    return {stream: counts.get(stream, 0) for stream in streams}


async def test_a_replica_with_a_stale_detector_skips_what_the_other_analysed(
    backend: Backend, replicas: list[AnalysisService]
) -> None:
    first, second = replicas
    stream = str(uuid.uuid4())
    await first.analyze([chunk(stream, 1)])
    # The stream moves to the second replica, which analyses chunk 2 ...
    await second.analyze([chunk(stream, 2)])
    # ... and back: the first still caches the detector at chunk 1, and gets 2 again with 3.
    watermark, _ = await first.analyze([chunk(stream, 2), chunk(stream, 3)])
    assert watermark == 3
    assert await taken_in(first, stream) == 3 * SIZE
    assert await score_rows(backend, [stream]) == {stream: 3}


async def test_a_review_on_one_replica_survives_analysis_on_the_other(
    replicas: list[AnalysisService],
) -> None:
    first, second = replicas
    stream = str(uuid.uuid4())
    await first.analyze([chunk(stream, 1)])
    await second.configure(stream_id=stream, min_value=None, max_value=None, threshold=0.7)
    await first.analyze([chunk(stream, 2)])
    detector = await second.detector(stream_id=stream)
    assert detector is not None
    assert detector.state.base_threshold == 0.7
    assert detector.state.readings == 2 * SIZE


async def test_two_replicas_given_the_same_chunks_at_once_analyse_each_once(
    backend: Backend, replicas: list[AnalysisService]
) -> None:
    if backend.kind == "sqlite":
        pytest.skip("replicas run on PostgreSQL only (iot up refuses them on SQLite)")
    streams = [str(uuid.uuid4()) for _ in range(8)]
    for position in range(1, 6):
        # Every stream's chunk at once on both replicas, in a different order on each.
        chunks = [chunk(stream, position) for stream in streams]
        await asyncio.gather(
            replicas[0].analyze(chunks), replicas[1].analyze(list(reversed(chunks)))
        )
    for stream in streams:
        assert await taken_in(replicas[0], stream) == 5 * SIZE
    assert await score_rows(backend, streams) == dict.fromkeys(streams, 5)
