"""Live readings: each committed batch handed to the watchers of its stream.

The group writer tells the :class:`ReadingHub` what it committed; each watcher
of a stream holds a bounded queue of those batches. A watcher that falls
behind is not buffered further: its queue is emptied and it is told to catch
up, which it does from the store after the last reading it sent (see
:func:`watch_readings`), a window at a time. So a slow watcher costs at most
its queue or one window, and still misses nothing.

With several telemetry replicas, the others' commits arrive as nudges
(``iotkit.notices``): the watchers of those streams catch up from the store.

A watcher sends a stream in time order: its position is the newest reading
time it sent, and it sends only newer readings. A late reading (stored after a
newer one of its stream) is therefore not sent live; charts read it with the
range queries.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass

import numpy as np

from iotkit.codec import Float64s, Int64s
from iotkit.streams import Watch
from services.telemetry.telemetry import query
from services.telemetry.telemetry.store import TelemetryStore
from services.telemetry.telemetry.writer import Prepared

QUEUE_SIZE = 64
"""Committed batches a watcher may have waiting before it must catch up from the store."""
EVENT_MAX_READINGS = 10_000
"""Readings per event read back from the store, so that one event stays small."""
CATCHUP_READINGS = 100_000
"""Readings read back from the store at a time (plus at most a chunk), while catching up."""
CATCHUP_CHUNKS = 1_000
"""Chunk spans looked at to plan a window of catching up."""


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """Readings of one stream to send, oldest first; ``position`` is the newest one's time."""

    position: int
    stream_id: str
    timestamps: Int64s
    values: Float64s


class Subscription:
    """One watcher's queue of committed batches; ``None`` in it means "catch up"."""

    def __init__(self, hub: ReadingHub, stream_id: str, size: int) -> None:
        self._hub = hub
        self._stream_id = stream_id
        self._queue: asyncio.Queue[Prepared | None] = asyncio.Queue(maxsize=size)
        self._behind = False

    def offer(self, batch: Prepared) -> None:
        """Queue a committed batch, or mark the watcher behind when its queue is full."""
        if self._behind:
            return  # committed before the watcher reads the store: it will find it there
        if self._queue.full():
            while not self._queue.empty():
                self._queue.get_nowait()
            self._behind = True
            self._queue.put_nowait(None)
            return
        self._queue.put_nowait(batch)

    def catch_up(self) -> None:
        """Have the watcher read the store after what it sent (another replica committed):
        batches offered until it does are in the store by then, so they are not queued."""
        if self._behind:
            return
        while not self._queue.empty():
            self._queue.get_nowait()
        self._behind = True
        self._queue.put_nowait(None)

    async def next(self) -> Prepared | None:
        """The next committed batch, or None when the watcher must catch up from the store."""
        batch = await self._queue.get()
        if batch is None:
            # From here on batches are queued again; those committed before are in the store.
            self._behind = False
        return batch

    def close(self) -> None:
        """Stop receiving."""
        self._hub.remove(self._stream_id, self)


class ReadingHub:
    """Publishes committed readings to whoever watches their stream."""

    def __init__(self, *, queue_size: int = QUEUE_SIZE) -> None:
        self._queue_size = queue_size
        self._watchers: defaultdict[str, set[Subscription]] = defaultdict(set)

    def publish(self, batches: Sequence[Prepared]) -> None:
        """Hand committed readings (sorted, one entry per stream) to their watchers."""
        for batch in batches:
            for subscription in list(self._watchers.get(batch.stream_id, ())):
                subscription.offer(batch)

    def nudge(self, stream_ids: Sequence[str] | None) -> None:
        """Tell the watchers of ``stream_ids`` (of every stream, for None) to catch up from
        the store: another replica committed readings of them (``iotkit.notices``)."""
        for stream_id in list(self._watchers) if stream_ids is None else stream_ids:
            for subscription in list(self._watchers.get(stream_id, ())):
                subscription.catch_up()

    def subscribe(self, stream_id: str) -> Subscription:
        """Start collecting the stream's committed readings now."""
        subscription = Subscription(self, stream_id, self._queue_size)
        self._watchers[stream_id].add(subscription)
        return subscription

    def remove(self, stream_id: str, subscription: Subscription) -> None:
        """Forget a subscription (its watcher stopped)."""
        watchers = self._watchers.get(stream_id)
        if watchers is not None:
            watchers.discard(subscription)
            if not watchers:
                del self._watchers[stream_id]

    def watchers(self, stream_id: str) -> int:
        """How many watch ``stream_id``."""
        return len(self._watchers.get(stream_id, ()))


async def _newest(store: TelemetryStore, stream_id: str) -> int:
    stream = await store.stream(stream_id=stream_id)
    return int(stream.last_ts or 0) if stream is not None else 0


async def _stored_after(
    store: TelemetryStore, stream_id: str, after: int
) -> AsyncIterator[LiveEvent]:
    """What is stored after ``after``, oldest first, a window of about CATCHUP_READINGS at a
    time, so that a watcher far behind does not load all it missed at once."""
    while True:
        spans = await store.chunk_spans(stream_id=stream_id, after=after, limit=CATCHUP_CHUNKS)
        if not spans:
            return
        # The window ends after the chunks that fill the budget: every reading before its
        # end is read (chunks of late data overlapping it too), so the next window
        # starts right after the last reading sent.
        total, high = 0, after
        for _, ts_max, count in spans:
            high = max(high, ts_max)
            total += count
            if total >= CATCHUP_READINGS:
                break
        timestamps, values = await query.read_range(
            store, stream_id=stream_id, start=after + 1, end=high + 1
        )
        for offset in range(0, timestamps.size, EVENT_MAX_READINGS):
            part = timestamps[offset : offset + EVENT_MAX_READINGS]
            yield LiveEvent(
                int(part[-1]), stream_id, part, values[offset : offset + EVENT_MAX_READINGS]
            )
        after = high


async def watch_readings(
    *, store: TelemetryStore, hub: ReadingHub, stream_id: str, after: int
) -> Watch[LiveEvent]:
    """The stream's readings newer than ``after`` (µs; 0 for only those stored from now
    on): stored ones first, then each committed batch, in time order, until closed.

    Subscribed, with its starting point read, when this returns: a caller that then tells
    its client the watch is open (``open_stream``) misses no batch the client stores next.
    """
    # Subscribe before reading the store, so that nothing committed between the two is lost
    # (what both hold is newer than nothing the watch sends: it starts after the store's).
    subscription = hub.subscribe(stream_id)
    try:
        # From now on: newer than what is stored; and a watcher that falls behind before it
        # sent anything catches up from there, not from the stream's first reading.
        last = after or await _newest(store, stream_id)
    except BaseException:
        subscription.close()
        raise
    return Watch(_watched(store, subscription, stream_id, after, last), subscription.close)


async def _watched(
    store: TelemetryStore, subscription: Subscription, stream_id: str, after: int, last: int
) -> AsyncGenerator[LiveEvent, None]:
    try:
        if after:
            async for event in _stored_after(store, stream_id, last):
                last = event.position
                yield event
        while True:
            batch = await subscription.next()
            if batch is None:
                async for event in _stored_after(store, stream_id, last):
                    last = event.position
                    yield event
                continue
            newer = batch.timestamps > last
            if not np.any(newer):
                continue  # read back from the store already, or late data
            timestamps, values = batch.timestamps[newer], batch.values[newer]
            last = int(timestamps[-1])
            yield LiveEvent(last, stream_id, timestamps, values)
    finally:
        subscription.close()
