"""The group-commit writer: many batches, one transaction, then every ack.

Batches from all device streams queue here. The writer takes whatever is
queued (up to a bound), drops readings already stored (same stream and
timestamp), encodes each stream's new readings into chunks, writes them in
one transaction and only then resolves every waiting batch. The queue is
bounded, so a writer that falls behind stops the streams from reading more
(gRPC flow control does the rest) instead of buffering without limit.

Small batches make small chunks, whose row would cost more than their
readings: between groups, the writer merges a stream's small chunks into one
(see COMPACT_BELOW), in a transaction of its own.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from iotkit.codec import Float64s, Int64s, decode, decode_many, encode
from iotkit.outages import is_passing, log_failed_round
from iotkit.tasks import cancel
from services.telemetry.telemetry.store import NewChunk, StreamAdvance, TelemetryStore

log = logging.getLogger(__name__)

CHUNK_MAX_READINGS = 50_000
# Small batches make small chunks, whose row costs more than their readings. Once a
# stream has written COMPACT_AFTER chunks of fewer than COMPACT_BELOW readings, they
# are merged into one; merged chunks grow until they are no longer small.
COMPACT_BELOW = 1000
COMPACT_AFTER = 32
COMPACT_STREAMS = 64  # streams merged per round, so that a round stays short
OUTAGE_LOG_SECONDS = 5.0
"""While the database is away every device's retry fails a group: one line this often says
so, with how many failed, rather than a line a group (hundreds a second under many devices)."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """Readings of one stream, checked, sorted and unique by timestamp."""

    stream_id: str
    timestamps: Int64s
    values: Float64s


@dataclass
class _Pending:
    entries: list[Prepared]
    done: asyncio.Future[list[int]]


def chunk_of(stream_id: str, timestamps: Int64s, values: Float64s) -> NewChunk:
    """Encode sorted readings of one stream as a chunk with its span and summary."""
    return NewChunk(
        stream_id=stream_id,
        ts_min=int(timestamps[0]),
        ts_max=int(timestamps[-1]),
        count=int(timestamps.size),
        v_min=float(values.min()),
        v_max=float(values.max()),
        v_sum=float(values.sum()),
        data=encode(timestamps, values),
    )


class GroupWriter:
    """Writes queued batches in groups; see the module docstring."""

    def __init__(
        self,
        store: TelemetryStore,
        *,
        queue_size: int = 256,
        max_group: int = 1024,
        merge_upto: Callable[[], int] | None = None,
        on_commit: Callable[[list[Prepared]], None] | None = None,
    ) -> None:
        """Build a writer; start it with :meth:`start` inside the serving loop.

        ``merge_upto`` answers the highest chunk id that may be merged: what a
        follower of chunk ids (the analytics forwarder) has acknowledged, so that
        merged readings never reach it a second time.
        """
        self._store = store
        self._merge_upto = merge_upto
        # Told what every committed group stored, per stream (the forwarder wakes, live
        # watchers receive the readings).
        self._on_commit = on_commit
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=queue_size)
        self._max_group = max_group
        self._newest: dict[str, int] = {}  # newest stored timestamp per stream, as far as we know
        # Per stream: small chunks written since its last merge, and the oldest one's start.
        self._small: dict[str, tuple[int, int]] = {}
        self._due: dict[str, None] = {}  # streams with COMPACT_AFTER small chunks, oldest first
        self._task: asyncio.Task[None] | None = None
        self._failed = 0  # groups failed since the last one written
        self._said_at = -math.inf  # when an outage's failures were last logged

    def start(self) -> None:
        """Start the writer task (inside the serving event loop)."""
        self._task = asyncio.create_task(self._run(), name="telemetry-writer")

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.join()
        await cancel(self._task)
        self._task = None

    @property
    def queued(self) -> int:
        """Batches waiting to be written."""
        return self._queue.qsize()

    def forget(self, stream_ids: set[str]) -> None:
        """Drop what the writer knows of streams whose data was deleted."""
        for stream_id in stream_ids:
            self._newest.pop(stream_id, None)
            self._small.pop(stream_id, None)
            self._due.pop(stream_id, None)

    async def write(self, entries: list[Prepared]) -> list[int]:
        """Store ``entries`` durably; answers how many readings of each were already stored."""
        if not entries:
            return []
        done: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(entries, done))
        return await done

    async def _run(self) -> None:
        while True:
            group = [await self._queue.get()]
            size = len(group[0].entries)
            while size < self._max_group and not self._queue.empty():
                item = self._queue.get_nowait()
                group.append(item)
                size += len(item.entries)
            try:
                duplicates = await self._write_group(group)
            except Exception as exc:  # every batch of the group fails alike; none was stored
                self._failed_group(exc, len(group))
                for pending in group:
                    if not pending.done.done():
                        pending.done.set_exception(exc)
            else:
                if self._failed:
                    log.info("write groups stored again", extra={"failed_groups": self._failed})
                    self._failed, self._said_at = 0, -math.inf
                for pending, counts in zip(group, duplicates, strict=True):
                    if not pending.done.done():
                        pending.done.set_result(counts)
            finally:
                for _ in group:
                    self._queue.task_done()
            try:
                await self._compact()
            except Exception as exc:  # the chunks stay as they are; the next round retries
                log_failed_round(log, "merging small chunks failed", exc)

    def _failed_group(self, exc: BaseException, batches: int) -> None:
        """Log a group that failed: each one for what may be a bug, an outage's now and then."""
        self._failed += 1
        now = time.monotonic()
        if is_passing(exc) and now - self._said_at < OUTAGE_LOG_SECONDS:
            return
        if is_passing(exc):
            self._said_at = now
        log_failed_round(
            log, "write group failed", exc, batches=batches, failed_groups=self._failed
        )

    async def _compact(self) -> None:
        """Merge the small chunks of streams that wrote COMPACT_AFTER of them."""
        if not self._due:
            return
        due: dict[str, int] = {}  # stream -> start of its oldest small chunk
        for stream_id in list(self._due)[:COMPACT_STREAMS]:
            del self._due[stream_id]
            due[stream_id] = self._small.pop(stream_id)[1]
        since = min(due.values())
        upto = self._merge_upto() if self._merge_upto is not None else None
        by_stream: dict[str, list[tuple[int, bytes]]] = defaultdict(list)
        for chunk_id, stream_id, data in await self._store.small_chunks(
            stream_ids=list(due), below=COMPACT_BELOW, since=since, upto=upto
        ):
            by_stream[stream_id].append((chunk_id, data))
        merges: list[tuple[list[int], NewChunk]] = []
        for stream_id, first in due.items():
            items = by_stream.get(stream_id, [])
            if len(items) < 2:  # nothing to merge yet (past ``upto``): try again later
                self._small[stream_id] = (0, first)
                continue
            timestamps, values = decode_many([data for _, data in items])
            if np.any(np.diff(timestamps) < 0):  # late data makes chunks overlap in time
                order = np.argsort(timestamps, kind="stable")
                timestamps, values = timestamps[order], values[order]
            merges.append(([i for i, _ in items], chunk_of(stream_id, timestamps, values)))
        if not merges:
            return
        merged = False
        try:
            merged = await self._store.merge_chunks(merges=merges)
        finally:
            if merged:
                self._count_small([chunk for _, chunk in merges])  # still small: merged again
            else:  # keep the chunks in view for a later round
                for _, chunk in merges:
                    self._small[chunk.stream_id] = (0, due[chunk.stream_id])

    def _count_small(self, chunks: list[NewChunk]) -> None:
        for chunk in chunks:
            if chunk.count < COMPACT_BELOW:
                count, since = self._small.get(chunk.stream_id, (0, chunk.ts_min))
                self._small[chunk.stream_id] = (count + 1, min(since, chunk.ts_min))
                if count + 1 >= COMPACT_AFTER:
                    self._due[chunk.stream_id] = None

    async def _stored_timestamps(self, stream_id: str, low: int, high: int) -> Int64s:
        """Stored timestamps of a stream within [low, high], unless it is sure there are none."""
        newest = self._newest.get(stream_id)
        if newest is not None and low > newest:
            return np.empty(0, dtype=np.int64)  # the common case: appends after everything stored
        parts = [
            decode(data)[0]
            for _, _, data in await self._store.chunks(stream_id=stream_id, start=low, end=high + 1)
        ]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)

    async def _write_group(self, group: list[_Pending]) -> list[list[int]]:
        duplicates = [[0] * len(p.entries) for p in group]
        by_stream: dict[str, list[tuple[int, int, Prepared]]] = defaultdict(list)
        for g, pending in enumerate(group):
            for e, entry in enumerate(pending.entries):
                if entry.timestamps.size:
                    by_stream[entry.stream_id].append((g, e, entry))
        chunks: list[NewChunk] = []
        advances: list[StreamAdvance] = []
        committed: list[Prepared] = []
        for stream_id, items in by_stream.items():
            low = min(int(p.timestamps[0]) for _, _, p in items)
            high = max(int(p.timestamps[-1]) for _, _, p in items)
            seen = await self._stored_timestamps(stream_id, low, high)
            seen_max = int(seen.max()) if seen.size else None
            kept_ts: list[Int64s] = []
            kept_values: list[Float64s] = []
            for g, e, entry in items:
                timestamps, values = entry.timestamps, entry.values
                if seen_max is not None and int(timestamps[0]) <= seen_max:
                    fresh = ~np.isin(timestamps, seen)
                    duplicates[g][e] = int(timestamps.size - fresh.sum())
                    timestamps, values = timestamps[fresh], values[fresh]
                if timestamps.size:
                    kept_ts.append(timestamps)
                    kept_values.append(values)
                    seen = np.concatenate([seen, timestamps])
                    seen_max = (
                        int(timestamps[-1])
                        if seen_max is None
                        else max(seen_max, int(timestamps[-1]))
                    )
            if not kept_ts:
                continue
            all_ts, all_values = np.concatenate(kept_ts), np.concatenate(kept_values)
            if np.any(np.diff(all_ts) < 0):
                order = np.argsort(all_ts, kind="stable")
                all_ts, all_values = all_ts[order], all_values[order]
            committed.append(Prepared(stream_id, all_ts, all_values))
            for start in range(0, all_ts.size, CHUNK_MAX_READINGS):
                stop = start + CHUNK_MAX_READINGS
                chunks.append(chunk_of(stream_id, all_ts[start:stop], all_values[start:stop]))
            newest = int(np.argmax(all_ts))
            advances.append(
                StreamAdvance(
                    stream_id, int(all_ts[newest]), float(all_values[newest]), int(all_ts.size)
                )
            )
        await self._store.write_group(chunks=chunks, advances=advances)
        if self._on_commit is not None and chunks:
            self._on_commit(committed)
        self._count_small(chunks)
        for advance in advances:
            known = self._newest.get(advance.stream_id)
            if known is not None:
                self._newest[advance.stream_id] = max(known, advance.last_ts)
            elif (
                stream := await self._store.stream(stream_id=advance.stream_id)
            ) and stream.last_ts:
                # First write by this process: the database knows the true newest.
                self._newest[advance.stream_id] = int(stream.last_ts)
        return duplicates
