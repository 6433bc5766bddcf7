"""Chunk positions with several writers: a follower of positions misses no chunk.

Two telemetry stores on one database (two replicas, each with its own engine)
write groups concurrently while a reader follows them as the analytics
forwarder does, moving its cursor to the last position it read. Every chunk
ever committed must be read: a chunk that commits at a position below one
already read would be skipped for ever. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio

import numpy as np

from services.telemetry.telemetry.store import StreamAdvance, TelemetryStore
from services.telemetry.telemetry.values import Stream
from services.telemetry.telemetry.writer import chunk_of
from tests.conftest import Backend
from tests.support import telemetry_stream

WRITERS_PER_REPLICA, GROUPS, STREAMS_PER_GROUP = 4, 25, 3


async def test_a_follower_of_positions_reads_every_chunk_of_concurrent_writers(
    backend: Backend,
) -> None:
    databases = [await backend.open("telemetry") for _ in range(2)]
    stores = [TelemetryStore(database.sessions) for database in databases]
    try:
        streams = [
            await stores[0].add_stream(stream=telemetry_stream())
            for _ in range(WRITERS_PER_REPLICA * 2 * STREAMS_PER_GROUP)
        ]
        writing = True
        seen: list[int] = []

        async def writer(store: TelemetryStore, mine: list[Stream]) -> None:
            for group in range(GROUPS):
                timestamps = np.arange(group * 10, group * 10 + 10, dtype=np.int64)
                values = np.ones(10)
                await store.write_group(
                    chunks=[chunk_of(s.id, timestamps, values) for s in mine],
                    advances=[StreamAdvance(s.id, int(timestamps[-1]), 1.0, 10) for s in mine],
                )

        async def follower() -> None:
            position = 0
            while True:
                done = not writing  # read once more after the writers finished
                chunks = await stores[1].chunks_after(position=position, limit=1000)
                seen.extend(chunk.position for chunk in chunks)
                if chunks:
                    position = chunks[-1].position
                elif done:
                    return

        reading = asyncio.create_task(follower())
        await asyncio.gather(
            *(
                writer(
                    stores[w % 2],
                    streams[w * STREAMS_PER_GROUP : (w + 1) * STREAMS_PER_GROUP],
                )
                for w in range(WRITERS_PER_REPLICA * 2)
            )
        )
        writing = False
        await reading
        stored = [
            int(str(row[0])) for row in await backend.sql("telemetry", "SELECT id FROM chunks")
        ]
        assert len(stored) == WRITERS_PER_REPLICA * 2 * STREAMS_PER_GROUP * GROUPS
        assert sorted(seen) == sorted(stored)  # each read once, none skipped
    finally:
        for database in databases:
            await database.close()


async def test_a_position_is_never_handed_out_twice(backend: Backend) -> None:
    database = await backend.open("telemetry")
    store = TelemetryStore(database.sessions)
    try:
        first, second = [await store.add_stream(stream=telemetry_stream()) for _ in range(2)]
        timestamps = np.arange(10, dtype=np.int64)

        async def write(stream: Stream) -> int:
            await store.write_group(
                chunks=[chunk_of(stream.id, timestamps, np.ones(10))], advances=[]
            )
            chunks = await store.chunks_after(position=0, limit=100)
            return max(chunk.position for chunk in chunks if chunk.stream_id == stream.id)

        newest = await write(first)
        # The newest chunk goes (its device decommissioned) after it was forwarded.
        await store.purge_device(device_id=first.device_id)
        assert await write(second) > newest  # else it sits below the cursor, never forwarded
    finally:
        await database.close()
