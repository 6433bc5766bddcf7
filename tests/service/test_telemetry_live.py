"""A stream's readings live (WatchStreamReadings) over real gRPC, on SQLite and PostgreSQL.

A watcher sees the batches stored after it subscribed, in order; one that
resumes after a position gets exactly the readings stored after it, then the
live ones; another user's stream is not found. A watcher that falls behind
is caught up from the store (with a real store and writer, no server): its
queue stays bounded and it still sends every reading once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from iot.auth.v1 import auth_pb2
from iot.telemetry.v1 import telemetry_pb2
from iotkit.notices import NoticeChannel, NoticeListener, parse, payloads
from iotkit.streams import OPEN_HEADER
from services.telemetry.telemetry import live
from services.telemetry.telemetry.live import LiveEvent, ReadingHub, watch_readings
from services.telemetry.telemetry.store import TelemetryStore
from services.telemetry.telemetry.writer import GroupWriter, Prepared
from tests.conftest import Backend, open_backend
from tests.service.test_telemetry import Env, batch, credential, device, env, series, stream, user
from tests.support import telemetry_stream

__all__ = ["env"]  # the fixture, shared with the telemetry tests

WAIT = 10.0


async def events(
    env: Env, who: list[tuple[str, str]], stream_id: str, after: int = 0
) -> tuple[grpc.aio.UnaryStreamCall, AsyncIterator[telemetry_pb2.StreamReadingsEvent]]:
    """A watch, once the server has accepted it (its headers came), and its events."""
    call = env.telemetry.WatchStreamReadings(
        telemetry_pb2.WatchStreamReadingsRequest(stream_id=stream_id, last_event_id=after),
        metadata=who,
    )
    assert OPEN_HEADER in tuple(await asyncio.wait_for(call.initial_metadata(), WAIT))
    return call, call.__aiter__()


async def take(
    replies: AsyncIterator[telemetry_pb2.StreamReadingsEvent], readings: int
) -> list[telemetry_pb2.StreamReadingsEvent]:
    """Events until they hold ``readings`` readings."""
    got: list[telemetry_pb2.StreamReadingsEvent] = []
    while sum(len(e.timestamps) for e in got) < readings:
        got.append(await asyncio.wait_for(anext(replies), WAIT))
    return got


def flat(got: list[telemetry_pb2.StreamReadingsEvent]) -> tuple[list[int], list[float]]:
    return [t for e in got for t in e.timestamps], [v for e in got for v in e.values]


async def test_a_watcher_sees_stored_batches_in_order_and_resumes_without_gap(
    env: Env,
) -> None:
    ann = await user(env)
    sensor = await device(env, ann)
    token = await credential(env, ann, sensor.device_id)
    timestamps, values = series(60)
    (ack,) = await stream(env, token, [batch(0, sensor.device_id, timestamps[:20], values[:20])])
    stream_id = ack.stream_ids[0]

    call, replies = await events(env, ann, stream_id)
    # Readings stored before the watch began are not sent: only what is stored from now on.
    await stream(
        env,
        token,
        [
            batch(
                n, sensor.device_id, timestamps[n * 10 : n * 10 + 10], values[n * 10 : n * 10 + 10]
            )
            for n in (2, 3)
        ],
    )
    got = await take(replies, 20)
    assert flat(got) == (timestamps[20:40], values[20:40])
    assert [e.event_id for e in got] == [e.timestamps[-1] for e in got]
    assert all(e.stream_id == stream_id for e in got)
    call.cancel()

    # The client went away after its first event; meanwhile more was stored.
    await stream(env, token, [batch(4, sensor.device_id, timestamps[40:50], values[40:50])])
    call, replies = await events(env, ann, stream_id, after=got[0].event_id)
    resumed = await take(replies, 20)
    assert flat(resumed) == (timestamps[30:50], values[30:50])
    # Then the live ones follow, without a repeat.
    await stream(env, token, [batch(5, sensor.device_id, timestamps[45:60], values[45:60])])
    live = await take(replies, 10)
    assert flat(live) == (timestamps[50:60], values[50:60])
    call.cancel()


async def test_another_users_stream_is_not_found(env: Env) -> None:
    ann, bob = await user(env), await user(env)
    sensor = await device(env, ann)
    timestamps, values = series(3)
    (ack,) = await stream(env, ann, [batch(1, sensor.device_id, timestamps, values)])
    call = env.telemetry.WatchStreamReadings(
        telemetry_pb2.WatchStreamReadingsRequest(stream_id=ack.stream_ids[0]), metadata=bob
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(anext(call.__aiter__()), WAIT)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_the_watch_ends_with_the_session(env: Env) -> None:
    ann = await user(env)
    sensor = await device(env, ann)
    token = await credential(env, ann, sensor.device_id)
    timestamps, values = series(100)
    (ack,) = await stream(env, token, [batch(0, sensor.device_id, timestamps[:1], values[:1])])
    call, replies = await events(env, ann, ack.stream_ids[0])
    await env.auth.Logout(auth_pb2.LogoutRequest(), metadata=ann)
    # Services learn of a revocation within a second; each event is sent only to a live session.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        for n in range(1, 100):
            await stream(
                env, token, [batch(n, sensor.device_id, timestamps[n : n + 1], values[n : n + 1])]
            )
            await asyncio.wait_for(anext(replies), WAIT)
            await asyncio.sleep(0.1)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    call.cancel()


def _prepared(stream_id: str, start: int, count: int) -> Prepared:
    timestamps = np.arange(start, start + count, dtype=np.int64)
    return Prepared(stream_id, timestamps, timestamps.astype(np.float64))


async def test_a_slow_watcher_is_told_to_catch_up_instead_of_buffering() -> None:
    hub = ReadingHub(queue_size=4)
    slow = hub.subscribe("s")
    for n in range(10):
        hub.publish([_prepared("s", n * 10, 10), _prepared("other", n * 10, 10)])
    # Its queue was emptied once full, and nothing more kept: it reads the store instead.
    assert await slow.next() is None
    hub.publish([_prepared("s", 100, 10)])
    later = await slow.next()
    assert later is not None and int(later.timestamps[0]) == 100
    slow.close()
    assert hub.watchers("s") == 0


async def test_a_watcher_that_fell_behind_catches_up_from_the_store_exactly(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "CATCHUP_READINGS", 15)  # catching up takes several windows
    database = await backend.open("telemetry")
    store = TelemetryStore(database.sessions)
    hub = ReadingHub(queue_size=2)
    writer = GroupWriter(store, on_commit=hub.publish)
    writer.start()
    try:
        stream_id = (await store.add_stream(stream=telemetry_stream())).id
        await writer.write([_prepared(stream_id, 1, 10)])
        watching = await watch_readings(store=store, hub=hub, stream_id=stream_id, after=0)
        # Subscribed once it returns, before any event is asked for: a servicer tells its
        # client the watch is open here, and the client may store readings at once.
        assert hub.watchers(stream_id)

        async def next_event() -> LiveEvent:
            return await anext(watching)

        first = asyncio.create_task(next_event())
        while not hub.watchers(stream_id):
            await asyncio.sleep(0.01)
        # Eight batches while the watcher reads nothing: its queue of two overflows.
        for n in range(8):
            await writer.write([_prepared(stream_id, 11 + n * 10, 10)])
        got = [await asyncio.wait_for(first, WAIT)]
        while got[-1].position < 90:
            got.append(await asyncio.wait_for(anext(watching), WAIT))
        sent = np.concatenate([event.timestamps for event in got]).tolist()
        assert sent == list(range(11, 91))  # every one after the history, once, in order
        # Read back in windows of two chunks, not a batch at a time: the catching up ran.
        assert max(len(event.timestamps) for event in got) == 20
        await writer.write([_prepared(stream_id, 91, 5)])
        assert (await asyncio.wait_for(anext(watching), WAIT)).timestamps.tolist() == [
            91,
            92,
            93,
            94,
            95,
        ]
        await watching.aclose()
        assert hub.watchers(stream_id) == 0
    finally:
        await writer.stop()
        await database.close()


async def test_a_watcher_hears_what_another_replica_commits(tmp_path: Path) -> None:
    """Two telemetry replicas on one PostgreSQL schema, each with its store, writer and
    hub: a watcher of one sees, in order and once, what a device writes through the other
    (its commits are told through NOTIFY), and its own replica's commits as before."""
    with open_backend("postgresql", tmp_path) as backend:
        databases = [await backend.open("telemetry") for _ in range(2)]
        stores = [TelemetryStore(database.sessions) for database in databases]
        hubs = [ReadingHub(), ReadingHub()]
        schema = backend.schema("telemetry")
        assert schema is not None and backend.settings.database_url
        listeners = []
        writers = []
        for store, hub in zip(stores, hubs, strict=True):
            store.notices = NoticeChannel.of(schema, "commits")
            writers.append(GroupWriter(store, on_commit=hub.publish))
            listeners.append(
                NoticeListener(
                    database_url=backend.settings.database_url,
                    channel=store.notices,
                    on_ids=hub.nudge,
                )
            )
        try:
            for writer in writers:
                writer.start()
            for listener in listeners:
                listener.start()
            for listener in listeners:
                await asyncio.wait_for(listener.listening.wait(), WAIT)
            stream_id = (await stores[0].add_stream(stream=telemetry_stream())).id
            watching = await watch_readings(
                store=stores[1], hub=hubs[1], stream_id=stream_id, after=0
            )
            first = asyncio.create_task(anext(watching))
            while not hubs[1].watchers(stream_id):
                await asyncio.sleep(0.01)
            await writers[0].write([_prepared(stream_id, 1_000, 10)])  # the other replica
            await writers[0].write([_prepared(stream_id, 1_010, 10)])
            got = [await asyncio.wait_for(first, WAIT)]
            while got[-1].position < 1_019:
                got.append(await asyncio.wait_for(anext(watching), WAIT))
            await writers[1].write([_prepared(stream_id, 1_020, 5)])  # its own replica
            while got[-1].position < 1_024:
                got.append(await asyncio.wait_for(anext(watching), WAIT))
            sent = np.concatenate([event.timestamps for event in got]).tolist()
            assert sent == list(range(1_000, 1_025))
            await watching.aclose()
        finally:
            for listener in listeners:
                await listener.stop()
            for writer in writers:
                await writer.stop()
            for database in databases:
                await database.close()


def test_commit_payloads_stay_under_the_notification_limit() -> None:
    ids = [f"{n:036d}" for n in range(1_000)]
    told = payloads(ids, sender="me")
    assert all(len(payload.encode()) <= 8_000 for payload in told) and len(told) > 1
    assert [stream for payload in told for stream in parse(payload)[1]] == ids
    assert {parse(payload)[0] for payload in told} == {"me"}
