"""Evaluating alert rules: anomalies and readings as analysis stores them, silence on a clock;
grouping events into one message per period, holding them through quiet hours.

Analysis hands over what it stored (anomalies, and the analysed chunks of
readings) without waiting: both go on a queue that one task drains, so
evaluating rules never slows analysis. That task matches them against the
enabled rules (cached, read again when a rule changes here and on every
tick, so a replica sees another's changes within a tick) and records each
match on its rule under the rule's row lock.

A rule's alert is open while some subject is in alarm: a stream with recent
anomalies (until a period, at least a minute, passes without one), a stream
whose latest reading is past the value, a device silent too long. A subject
entering alarm begins a new alert (which ends an acknowledgement); the alert
clears when no subject is left. Events of an acknowledged alert are not counted.

Every tick (``IOT_ALERTS_CHECK_SECONDS``) stores when devices were last heard
from (so a restart keeps it, to within a tick), finds silent devices and
closes quiet anomaly alerts, and sends what is due. A rule with events
waiting sends one message with their count as soon as its period since the
last message has passed and it is outside its quiet hours; the first event
after a quiet period goes out at once. A live rule's message reaches this
replica's watchers through ``hub``, and the other replicas' through the store
(``AlertStore.notices``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from iotkit.convert import epoch_micros
from iotkit.hub import Hub
from iotkit.outages import log_failed_round
from iotkit.sqltypes import utcnow
from iotkit.tasks import cancel, finish
from services.analytics.alerts.delivery import DeliveryWorker
from services.analytics.alerts.store import AlertRuleRow, AlertStore, DeliveryRow, Taken
from services.analytics.alerts.values import (
    ABOVE,
    ANOMALY,
    EMAIL,
    PENDING,
    SILENCE,
    THRESHOLD,
    WEBHOOK,
    AlertMessage,
    Event,
    Rule,
)
from services.analytics.analytics.analysis import ChunkIn
from services.analytics.analytics.values import Anomaly

log = logging.getLogger(__name__)

QUEUE_LIMIT = 10_000
ROUND_LIMIT = 1_000  # anomalies and chunks evaluated together at most
MIN_CLEAR_SECONDS = 60.0
STOP_SECONDS = 10.0  # the longest a stop waits for the evaluation or tick in flight
LIVE_KEPT = timedelta(minutes=5)  # how long live messages stay readable by other replicas


@dataclass(frozen=True, slots=True)
class Hit:
    """Events of one subject for one rule: ``count`` of them, the latest as ``event``;
    ``holds`` says whether the subject is still in alarm after them."""

    subject: str
    event: Event
    count: int
    holds: bool = True


def in_quiet_hours(rule: Rule, now: datetime) -> bool:
    """True when ``now`` falls in the rule's quiet hours, in its time zone."""
    spec = rule.spec
    if not spec.quiet_start or not spec.quiet_end:
        return False
    local = now.astimezone(ZoneInfo(spec.time_zone or "UTC")).time()
    start, end = time.fromisoformat(spec.quiet_start), time.fromisoformat(spec.quiet_end)
    if start <= end:
        return start <= local < end
    return local >= start or local < end  # over midnight


def _matches(rule: Rule, *, stream_id: str, device_id: str) -> bool:
    spec = rule.spec
    return (not spec.stream_ids or stream_id in spec.stream_ids) and (
        not spec.device_ids or device_id in spec.device_ids
    )


def anomaly_hits(rule: Rule, anomalies: Sequence[Anomaly]) -> list[Hit]:
    """The anomalies an anomaly rule takes, one hit each."""
    spec = rule.spec
    return [
        Hit(
            subject=a.stream_id,
            count=1,
            event=Event(
                device_id=a.device_id,
                stream_id=a.stream_id,
                at_us=a.detected_us,
                value=a.raw_value,
                anomaly_id=a.id,
                summary=(
                    f"{a.anomaly_type} on stream {a.stream_id}: value {a.raw_value:g} "
                    f"(expected {a.expected_value:g}), confidence {a.confidence:.2f}"
                ),
            ),
        )
        for a in anomalies
        if a.owner_id == rule.owner_id
        and _matches(rule, stream_id=a.stream_id, device_id=a.device_id)
        and (not spec.anomaly_types or a.anomaly_type in spec.anomaly_types)
        and a.confidence >= spec.min_confidence
    ]


def threshold_hits(rule: Rule, chunks: Sequence[ChunkIn]) -> tuple[list[Hit], set[str]]:
    """A threshold rule's hits in ``chunks`` (one per chunk with readings past the value)
    and the streams whose latest reading is back on the right side."""
    spec = rule.spec
    hits: list[Hit] = []
    cleared: set[str] = set()
    for chunk in chunks:
        if chunk.owner_id != rule.owner_id or not _matches(
            rule, stream_id=chunk.stream_id, device_id=chunk.device_id
        ):
            continue
        values = chunk.values
        finite = np.isfinite(values)
        past = finite & (
            (values > spec.value) if spec.direction == ABOVE else (values < spec.value)
        )
        last_finite = np.flatnonzero(finite)
        holds = bool(past[last_finite[-1]]) if last_finite.size else False
        if not past.any():
            if last_finite.size:
                cleared.add(chunk.stream_id)
            continue
        latest = int(np.flatnonzero(past)[-1])
        value = float(values[latest])
        hits.append(
            Hit(
                subject=chunk.stream_id,
                count=int(past.sum()),
                holds=holds,
                event=Event(
                    device_id=chunk.device_id,
                    stream_id=chunk.stream_id,
                    at_us=int(chunk.timestamps[latest]),
                    value=value,
                    summary=(
                        f"stream {chunk.stream_id} read {value:g}, {spec.direction} {spec.value:g}"
                    ),
                ),
            )
        )
    return hits, cleared


def record(row: AlertRuleRow, hits: Sequence[Hit], cleared: set[str], now: datetime) -> None:
    """Apply a rule's hits and cleared subjects to its locked row."""
    before = set(row.subjects)
    entering = {h.subject for h in hits} - before
    after = (before - cleared) | {h.subject for h in hits if h.holds}
    after -= {h.subject for h in hits if not h.holds}
    if entering:
        row.acknowledged = False  # a new alert begins
    counted = [h for h in hits if not row.acknowledged]
    if counted:
        if row.pending_events == 0:
            row.first_pending_us = min(h.event.at_us for h in counted)
        row.pending_events += sum(h.count for h in counted)
        row.last_event = counted[-1].event.as_json()
    if hits:
        row.last_event_at = now
    if not after:
        row.acknowledged = False  # the condition cleared
    if after != before:
        row.subjects = sorted(after)


class AlertEngine:
    """Matches what analysis stores against the rules, and sends what is due."""

    def __init__(
        self,
        *,
        store: AlertStore,
        worker: DeliveryWorker,
        hub: Hub[AlertMessage],
        anomalies: Hub[Anomaly],
        retired: Callable[[set[str]], Awaitable[set[str]]],
        check_interval: float = 5.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        """``hub`` takes the messages of live rules; ``anomalies`` is where analysis
        publishes the anomalies it stored; ``retired`` answers which of some devices were
        decommissioned (they are not silent: they are gone)."""
        self._store = store
        self._retired = retired
        self._anomalies = anomalies
        self._worker = worker
        self._hub = hub
        self._check_interval = check_interval
        self._clock = clock
        self._queue: asyncio.Queue[tuple[Sequence[Anomaly], Sequence[ChunkIn]]] = asyncio.Queue(
            maxsize=QUEUE_LIMIT
        )
        self._rules: dict[str, list[Rule]] = {}
        self._reading_owners: frozenset[str] = frozenset()  # owners of rules that read readings
        self._stale = True
        # Rule changes made here, and how many of them the cache holds.
        self._changes, self._loaded_changes = 0, -1
        self._seen: dict[str, tuple[str, datetime]] = {}
        self._lock = asyncio.Lock()  # evaluation, ticks and dispatch change rule rows in turn
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    # What analysis hands over (never waits)

    def anomalies_stored(self, anomalies: Sequence[Anomaly]) -> None:
        """Evaluate newly stored anomalies."""
        if anomalies:
            self._offer((anomalies, ()))

    def readings_analysed(self, chunks: Sequence[ChunkIn], at: datetime) -> None:
        """Note when each device was heard from, and evaluate the readings of owners with
        threshold or silence rules (every owner's while the rules are being read again)."""
        for chunk in chunks:
            self._seen[chunk.device_id] = (chunk.owner_id, at)
        if self._loaded_changes == self._changes:
            # Readings hold arrays: only those a rule reads wait on the queue (once the
            # cache holds every change made here).
            chunks = [c for c in chunks if c.owner_id in self._reading_owners]
        if chunks:
            self._offer(((), chunks))

    def rules_changed(self) -> None:
        """A rule changed: read the rules again before the next evaluation."""
        self._stale = True
        self._changes += 1

    def _offer(self, item: tuple[Sequence[Anomaly], Sequence[ChunkIn]]) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            # Analysis goes on; what overflows is not evaluated (anomalies stay listable).
            log.warning("alert evaluation queue full: a batch was not evaluated")

    # Background work

    def start(self) -> None:
        """Start evaluating and ticking."""
        self._stopping.clear()
        self._tasks = [
            asyncio.create_task(self._follow_anomalies(), name="alert-anomalies"),
            asyncio.create_task(self._evaluate_loop(), name="alert-evaluation"),
            asyncio.create_task(self._tick_loop(), name="alert-ticks"),
        ]

    async def stop(self) -> None:
        """Stop after the evaluation or tick in flight (cancelled mid-query, a database
        connection could be left inside its transaction), storing device activity."""
        self._stopping.set()
        follow, *loops = self._tasks
        await cancel(follow)  # it waits on the hub only
        for task in loops:
            await finish(task, within=STOP_SECONDS)
        self._tasks = []
        with contextlib.suppress(Exception):
            await self._flush_seen()

    async def _follow_anomalies(self) -> None:
        async with contextlib.aclosing(self._anomalies.watch(lambda _: True)) as anomalies:
            async for anomaly in anomalies:
                self.anomalies_stored([anomaly])

    async def _next(self) -> tuple[Sequence[Anomaly], Sequence[ChunkIn]] | None:
        """The next batch to evaluate, or None once stopping."""
        getting = asyncio.ensure_future(self._queue.get())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not getting.done():
                getting.cancel()
        return getting.result() if getting.done() and not getting.cancelled() else None

    async def _evaluate_loop(self) -> None:
        while (item := await self._next()) is not None:
            # What queued up meanwhile is evaluated with it, in one round: a round costs a
            # write per matching rule, not per anomaly, so evaluation keeps up however
            # many arrive while a round waits for the database.
            anomalies, chunks = list(item[0]), list(item[1])
            while not self._queue.empty() and len(anomalies) + len(chunks) < ROUND_LIMIT:
                more = self._queue.get_nowait()
                anomalies += more[0]
                chunks += more[1]
            try:
                await self.evaluate(anomalies, chunks)
            except Exception as exc:  # one bad round must not stop alerting
                log_failed_round(log, "alert evaluation failed", exc)

    async def _tick_loop(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._check_interval)
            if self._stopping.is_set():
                return
            try:
                await self.tick()
            except Exception as exc:
                log_failed_round(log, "alert tick failed", exc)

    async def _rules_of(self, owner_ids: set[str]) -> list[Rule]:
        if self._stale:
            self._stale = False
            changes = self._changes
            by_owner: dict[str, list[Rule]] = defaultdict(list)
            try:
                enabled = await self._store.enabled_rules()
            except BaseException:
                self._stale = True  # read them again next time
                raise
            for rule in enabled:
                by_owner[rule.owner_id].append(rule)
            self._rules = dict(by_owner)
            self._reading_owners = frozenset(
                owner
                for owner, rules in by_owner.items()
                if any(rule.spec.kind in (THRESHOLD, SILENCE) for rule in rules)
            )
            self._loaded_changes = changes
        return [rule for owner in owner_ids for rule in self._rules.get(owner, ())]

    async def evaluate(self, anomalies: Sequence[Anomaly], chunks: Sequence[ChunkIn]) -> None:
        """Match stored anomalies and analysed readings against the rules; send what is due."""
        owners = {a.owner_id for a in anomalies} | {c.owner_id for c in chunks}
        async with self._lock:
            rules = await self._rules_of(owners)
            now = self._clock()
            for rule in rules:
                cleared: set[str] = set()
                if rule.spec.kind == ANOMALY:
                    hits = anomaly_hits(rule, anomalies)
                elif rule.spec.kind == THRESHOLD:
                    hits, cleared = threshold_hits(rule, chunks)
                else:  # silence: a device heard from is not silent any more
                    hits = []
                    cleared = {
                        c.device_id
                        for c in chunks
                        if c.owner_id == rule.owner_id
                        and _matches(rule, stream_id=c.stream_id, device_id=c.device_id)
                    } & set(rule.state.subjects)
                if hits or cleared:
                    await self._record(rule, hits, cleared, now)

    async def _record(
        self, rule: Rule, hits: Sequence[Hit], cleared: set[str], now: datetime
    ) -> None:
        """Record hits on the rule's row and, in the same transaction, take its waiting
        events into a message if one is due: one write per rule and round, which matters
        on SQLite, where each write waits for analysis's commits. The cache takes the
        rule as stored, so the next evaluation sees its subjects."""
        sent: list[tuple[AlertMessage, bool]] = []
        take = _taker(now, sent)

        def change(row: AlertRuleRow) -> Taken | None:
            if not row.enabled:
                return None
            record(row, hits, cleared, now)
            return take(row)

        stored = await self._store.dispatch(rule_id=rule.id, change=change)
        if stored is not None:
            cached = self._rules.get(stored.owner_id, [])
            self._rules[stored.owner_id] = [stored if r.id == stored.id else r for r in cached]
        self._sent(sent)

    async def tick(self) -> None:
        """Store device activity, find silent devices, close quiet anomaly alerts, send what
        is due."""
        await self._flush_seen()
        async with self._lock:
            self._stale = True  # another replica may have changed rules
            await self._rules_of(set())
            rules = [rule for owned in self._rules.values() for rule in owned]
            now = self._clock()
            silence = [r for r in rules if r.spec.kind == SILENCE]
            if silence:
                await self._check_silence(silence, now)
            for rule in rules:
                if rule.spec.kind == ANOMALY and rule.state.firing:
                    quiet_for = max(float(rule.spec.period_seconds), MIN_CLEAR_SECONDS)
                    last = rule.state.last_event_at
                    if last is None or now - last > timedelta(seconds=quiet_for):
                        await self._record(rule, [], set(rule.state.subjects), now)
            await self._dispatch(await self._store.due_rules(), now)
        await self._store.forget_live_messages(before=now - LIVE_KEPT)

    async def _flush_seen(self) -> None:
        seen, self._seen = self._seen, {}
        try:
            await self._store.record_seen(seen=seen)
        except Exception:
            # Kept for the next tick, unless newer news came meanwhile.
            self._seen = {**seen, **self._seen}
            raise

    async def _check_silence(self, rules: Sequence[Rule], now: datetime) -> None:
        seen = await self._store.devices_seen(owner_ids={r.owner_id for r in rules})
        gone = await self._retired({device_id for device_id, _, _ in seen})
        if gone:
            await self._store.forget_seen(device_ids=gone)
            seen = [entry for entry in seen if entry[0] not in gone]
        for rule in rules:
            limit = now - timedelta(seconds=rule.spec.silence_seconds)
            silent: list[Hit] = []
            heard: set[str] = set()
            for device_id, owner_id, seen_at in seen:
                if owner_id != rule.owner_id or (
                    rule.spec.device_ids and device_id not in rule.spec.device_ids
                ):
                    continue
                if seen_at >= limit:
                    heard.add(device_id)
                elif device_id not in rule.state.subjects:
                    silent.append(_silence_hit(device_id, seen_at, now))
            cleared = heard | (gone & set(rule.state.subjects))
            if silent or cleared & set(rule.state.subjects):
                await self._record(rule, silent, cleared, now)

    async def _dispatch(self, rule_ids: Sequence[str], now: datetime) -> None:
        """Send a message for each rule whose period has passed, outside quiet hours."""
        sent: list[tuple[AlertMessage, bool]] = []
        for rule_id in dict.fromkeys(rule_ids):
            await self._store.dispatch(rule_id=rule_id, change=_taker(now, sent))
        self._sent(sent)

    def _sent(self, messages: Sequence[tuple[AlertMessage, bool]]) -> None:
        """Messages were queued (each with whether its rule is live): live ones go to this
        replica's watchers, and the delivery worker is woken."""
        live = [message for message, is_live in messages if is_live]
        if live:
            self._hub.publish(live)
        if messages:
            self._worker.notify()


def _taker(
    now: datetime, sent: list[tuple[AlertMessage, bool]]
) -> Callable[[AlertRuleRow], Taken | None]:
    """A change that takes a locked rule's waiting events into one message when its period
    has passed and it is outside quiet hours (None: not due); each message taken is added
    to ``sent``, with whether its rule is live."""

    def take(row: AlertRuleRow) -> Taken | None:
        rule = row.to_value()
        if not row.enabled or row.pending_events == 0 or in_quiet_hours(rule, now):
            return None
        last = row.last_sent_at
        if last is not None and now < last + timedelta(seconds=rule.spec.period_seconds):
            return None
        event = row.last_event
        message = AlertMessage(
            id=str(uuid.uuid4()),
            rule_id=row.id,
            rule_name=rule.spec.name,
            owner_id=row.owner_id,
            kind=row.kind,
            event_count=row.pending_events,
            first_us=row.first_pending_us or epoch_micros(now),
            last_event=Event(**event),  # type: ignore[arg-type]
        )
        row.pending_events, row.first_pending_us, row.last_sent_at = 0, 0, now
        live = rule.spec.live
        sent.append((message, live))
        return Taken(_deliveries(rule, message, now), message if live else None)

    return take


def _silence_hit(device_id: str, seen_at: datetime, now: datetime) -> Hit:
    silent_for = math.floor((now - seen_at).total_seconds())
    return Hit(
        subject=device_id,
        count=1,
        event=Event(
            device_id=device_id,
            stream_id="",
            at_us=epoch_micros(now),
            value=float(silent_for),
            summary=f"device {device_id} silent for {silent_for} s",
        ),
    )


def _deliveries(rule: Rule, message: AlertMessage, now: datetime) -> list[DeliveryRow]:
    """The deliveries of ``message``: one per email or webhook channel of the rule."""
    common = {
        "rule_id": rule.id,
        "owner_id": rule.owner_id,
        "status": PENDING,
        "attempts": 0,
        "last_error": "",
        "event_count": message.event_count,
        "created_at": now,
        "delivered_at": None,
        "next_attempt_at": now,
    }
    rows = []
    if rule.spec.webhook_url:
        rows.append(
            DeliveryRow(
                id=str(uuid.uuid4()),
                channel=WEBHOOK,
                target=rule.spec.webhook_url,
                body=message.body(),
                **common,
            )
        )
    if rule.spec.email_to:
        count = f" ({message.event_count} events)" if message.event_count > 1 else ""
        rows.append(
            DeliveryRow(
                id=str(uuid.uuid4()),
                channel=EMAIL,
                target=rule.spec.email_to,
                body={
                    "subject": f"iotsuite alert: {rule.spec.name}{count}",
                    "text": message.text(),
                },
                **common,
            )
        )
    return rows
