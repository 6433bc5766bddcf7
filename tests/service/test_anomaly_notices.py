"""Live anomaly lists across analytics replicas: an anomaly one replica stores reaches the
watchers of another (PostgreSQL notices, ``iotkit.notices``), once, and not its alert
engine's hub (each replica's engine takes only the anomalies it found)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from pathlib import Path

from iotkit.notices import NoticeChannel, NoticeListener
from iotkit.sqltypes import utcnow
from services.analytics.analytics.hub import AnomalyHub
from services.analytics.analytics.store import AnalyticsStore
from services.analytics.analytics.values import Anomaly
from tests.conftest import open_backend

WAIT = 10.0


def _anomaly(at: int) -> Anomaly:
    return Anomaly(
        id=str(uuid.uuid4()),
        stream_id="stream-1",
        device_id="device-1",
        owner_id="owner-1",
        detected_us=at,
        known_us=at,
        anomaly_type="spike",
        raw_value=9.0,
        expected_value=1.0,
        confidence=0.9,
        status="new",
        found_at=utcnow(),
        reviewed_by=None,
        reviewed_at=None,
        review_note="",
    )


async def test_an_anomaly_stored_by_one_replica_reaches_the_watchers_of_another(
    tmp_path: Path,
) -> None:
    with open_backend("postgresql", tmp_path) as backend:
        schema = backend.schema("analytics")
        assert schema is not None and backend.settings.database_url
        databases = [await backend.open("analytics") for _ in range(2)]
        stores = [AnalyticsStore(d.sessions, dialect="postgresql") for d in databases]
        local, watched = AnomalyHub(), AnomalyHub()  # the second replica's two hubs
        local.forward_to(watched)
        for store in stores:
            store.notices = NoticeChannel.of(schema, "anomalies")

        async def found_elsewhere(ids: Sequence[str] | None) -> None:
            if ids:
                watched.publish(await stores[1].anomalies_by_id(anomaly_ids=ids))

        listener = NoticeListener(
            database_url=backend.settings.database_url,
            channel=stores[1].notices,  # type: ignore[arg-type]
            on_ids=found_elsewhere,
        )
        listener.start()
        try:
            await asyncio.wait_for(listener.listening.wait(), WAIT)
            watching = watched.watch(lambda anomaly: True).__aiter__()
            engine = local.watch(lambda anomaly: True).__aiter__()
            first = asyncio.create_task(anext(watching))
            engine_first = asyncio.create_task(anext(engine))
            await asyncio.sleep(0)  # the watchers' queues are in place
            found = [_anomaly(1_000), _anomaly(2_000)]
            stored = await stores[0].commit_analysis(detectors=[], read_as={}, anomalies=found)
            assert [a.id for a in stored] == [a.id for a in found]
            got = [await asyncio.wait_for(first, WAIT)]
            got.append(await asyncio.wait_for(anext(watching), WAIT))
            assert [a.id for a in got] == [a.id for a in found]
            # Stored again (a replay): nothing new is stored, so nothing is told.
            assert await stores[0].commit_analysis(detectors=[], read_as={}, anomalies=found) == []
            # The second replica's own anomaly: heard in process, through its local hub.
            own = [_anomaly(3_000)]
            await stores[1].commit_analysis(detectors=[], read_as={}, anomalies=own)
            local.publish(own)
            assert (await asyncio.wait_for(anext(watching), WAIT)).id == own[0].id
            # The engine's hub had only this replica's anomaly, not the other's two.
            assert (await asyncio.wait_for(engine_first, WAIT)).id == own[0].id
            # Its own notice was skipped: nothing more arrives.
            extra = asyncio.create_task(anext(watching))
            await asyncio.sleep(0.5)
            assert not extra.done()
            extra.cancel()
            await asyncio.gather(extra, return_exceptions=True)
            await watching.aclose()
            await engine.aclose()
        finally:
            await listener.stop()
            for database in databases:
                await database.close()
