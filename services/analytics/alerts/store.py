"""Alert tables and queries: rules with their state, deliveries (analytics' outbox), and
when each device was last heard from.

Rules keep their settings as one JSON document beside the columns that
queries filter on. A rule's state (open subjects, acknowledgement, events
waiting) changes under a row lock, so replicas evaluating events of one
owner's streams never lose each other's counts. Deliveries are the outbox
of the email and webhook channels: claimed with a conditional UPDATE (one
sender per delivery, with a lease), retried, and kept with their attempts.
Webhook secrets are stored sealed (the server must recover them to sign).

A live rule's message is stored too when other replicas must hear of it
(PostgreSQL, several replicas: :attr:`AlertStore.notices`), in the
transaction that takes its events, whose commit tells them its id; they read
it back for their watchers. Such messages are kept a few minutes only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Integer,
    LargeBinary,
    String,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from iotkit.listing import fetch_page
from iotkit.notices import NoticeChannel
from iotkit.outbox import claim_due
from iotkit.sqltypes import SEQUENCE, UtcDateTime
from services.analytics.alerts.values import (
    DEAD,
    DELIVERED,
    FAILED,
    PENDING,
    AlertMessage,
    Attempt,
    Delivery,
    Event,
    Rule,
    RuleSpec,
    RuleState,
)
from services.analytics.analytics.store import Base


class AlertRuleRow(Base):
    """A user's alert rule and where its alert stands."""

    __tablename__ = "alert_rules"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    enabled: Mapped[bool] = mapped_column(Boolean)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    sealed_secret: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # The devices or streams in alarm now; the alert is open while any is.
    subjects: Mapped[list[str]] = mapped_column(JSON)
    acknowledged: Mapped[bool] = mapped_column(Boolean)
    pending_events: Mapped[int] = mapped_column(Integer)
    first_pending_us: Mapped[int] = mapped_column(BigInteger)
    last_event: Mapped[dict[str, Any]] = mapped_column(JSON)
    last_event_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    def to_value(self, dead: int = 0) -> Rule:
        """The rule as a domain value."""
        spec = dict(self.spec)
        for name in ("stream_ids", "device_ids", "anomaly_types"):
            spec[name] = tuple(spec.get(name, ()))
        return Rule(
            id=self.id,
            owner_id=self.owner_id,
            spec=RuleSpec(**spec),
            state=RuleState(
                firing=bool(self.subjects),
                subjects=tuple(self.subjects),
                acknowledged=self.acknowledged,
                pending_events=self.pending_events,
                first_pending_us=self.first_pending_us,
                last_event=dict(self.last_event),
                last_event_at=self.last_event_at,
                last_sent_at=self.last_sent_at,
            ),
            created_at=self.created_at,
            updated_at=self.updated_at,
            dead_deliveries=dead,
        )


class DeliveryRow(Base):
    """One alert message to one channel, with its attempts."""

    __tablename__ = "alert_deliveries"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(36), index=True)
    owner_id: Mapped[str] = mapped_column(String(36))
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(String(200))
    event_count: Mapped[int] = mapped_column(Integer)
    target: Mapped[str] = mapped_column(String(2000))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)

    def to_value(self) -> Delivery:
        """The delivery as a domain value (no next attempt once settled)."""
        return Delivery(
            id=self.id,
            rule_id=self.rule_id,
            owner_id=self.owner_id,
            channel=self.channel,
            status=self.status,
            attempts=self.attempts,
            last_error=self.last_error,
            event_count=self.event_count,
            created_at=self.created_at,
            delivered_at=self.delivered_at,
            next_attempt_at=self.next_attempt_at if self.status == PENDING else None,
            target=self.target,
            body=dict(self.body),
        )


class AttemptRow(Base):
    """One try at delivering a message, kept for the user to read."""

    __tablename__ = "alert_delivery_attempts"

    id: Mapped[int] = mapped_column(SEQUENCE, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(String(36), index=True)
    attempted_at: Mapped[datetime] = mapped_column(UtcDateTime)
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str] = mapped_column(String(200))


class LiveMessageRow(Base):
    """A live rule's message, kept a few minutes for the other replicas' watchers."""

    __tablename__ = "alert_live_messages"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    message: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class DeviceSeenRow(Base):
    """When analytics last received a reading of a device (for silence rules)."""

    __tablename__ = "alert_device_seen"

    device_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(36), index=True)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime)


def spec_json(spec: RuleSpec) -> dict[str, Any]:
    """A rule's settings as stored."""
    stored = asdict(spec)
    for name in ("stream_ids", "device_ids", "anomaly_types"):
        stored[name] = list(stored[name])
    return stored


async def _dead(session: AsyncSession, rule_ids: Sequence[str]) -> dict[str, int]:
    """Dead deliveries of each rule that has any."""
    result = await session.execute(
        select(DeliveryRow.rule_id, func.count())
        .where(DeliveryRow.rule_id.in_(rule_ids), DeliveryRow.status == DEAD)
        .group_by(DeliveryRow.rule_id)
    )
    return {rule_id: int(count) for rule_id, count in result.all()}


def message_json(message: AlertMessage) -> dict[str, Any]:
    """A message as stored for other replicas."""
    return asdict(message)


def message_of(stored: dict[str, Any]) -> AlertMessage:
    """A stored message back as a value."""
    return AlertMessage(**{**stored, "last_event": Event(**stored["last_event"])})


RuleChange = Callable[[AlertRuleRow], None]
"""Changes a locked rule row in place."""


@dataclass(frozen=True, slots=True)
class Taken:
    """What a dispatch took from a rule: its message's deliveries, and the message when the
    rule's live feed shows it."""

    deliveries: list[DeliveryRow]
    live: AlertMessage | None = None


class AlertStore:
    """Rules, deliveries and device activity."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, dialect: str) -> None:
        self._sessions = sessions
        self._insert = pg_insert if dialect == "postgresql" else sqlite_insert
        self.notices: NoticeChannel | None = None
        """Where a dispatch tells other replicas the live messages it stored (PostgreSQL
        notices, ``iotkit.notices``), so that their watchers hear of them; None stores
        none and tells no one."""

    # Rules

    async def add_rule(
        self,
        *,
        rule_id: str,
        owner_id: str,
        spec: RuleSpec,
        sealed_secret: bytes | None,
        now: datetime,
    ) -> Rule:
        """Store a new rule, not firing."""
        row = AlertRuleRow(
            id=rule_id,
            owner_id=owner_id,
            kind=spec.kind,
            enabled=not spec.paused,
            spec=spec_json(spec),
            sealed_secret=sealed_secret,
            subjects=[],
            acknowledged=False,
            pending_events=0,
            first_pending_us=0,
            last_event={},
            last_event_at=None,
            last_sent_at=None,
            created_at=now,
            updated_at=now,
        )
        async with self._sessions.begin() as session:
            session.add(row)
        return row.to_value()

    async def count_rules(self, *, owner_id: str) -> int:
        """How many rules ``owner_id`` has."""
        async with self._sessions() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(AlertRuleRow)
                .where(AlertRuleRow.owner_id == owner_id)
            )
        return int(count or 0)

    async def rule(self, *, rule_id: str) -> Rule | None:
        """One rule, with its dead deliveries counted."""
        async with self._sessions() as session:
            row = await session.get(AlertRuleRow, rule_id)
            if row is None:
                return None
            return row.to_value((await _dead(session, [rule_id])).get(rule_id, 0))

    async def list_rules(
        self, *, owner_id: str | None, offset: int, limit: int
    ) -> tuple[list[Rule], int]:
        """A page of rules (every owner's when ``owner_id`` is None), newest first."""
        statement = select(AlertRuleRow).order_by(AlertRuleRow.created_at.desc(), AlertRuleRow.id)
        if owner_id is not None:
            statement = statement.where(AlertRuleRow.owner_id == owner_id)
        async with self._sessions() as session:
            rows, total = await fetch_page(session, statement, offset=offset, limit=limit)
            dead = await _dead(session, [row.id for row in rows])
        return [row.to_value(dead.get(row.id, 0)) for row in rows], total

    async def enabled_rules(self) -> list[Rule]:
        """Every enabled rule (the evaluator's cache)."""
        async with self._sessions() as session:
            rows = await session.scalars(select(AlertRuleRow).where(AlertRuleRow.enabled))
            return [row.to_value() for row in rows]

    async def change_rule(self, *, rule_id: str, change: RuleChange) -> Rule | None:
        """Apply ``change`` to a rule under its row lock; None when it is gone."""
        async with self._sessions.begin() as session:
            row = await session.scalar(
                select(AlertRuleRow).where(AlertRuleRow.id == rule_id).with_for_update()
            )
            if row is None:
                return None
            change(row)
            await session.flush()
            return row.to_value()

    async def update_spec(
        self, *, rule_id: str, spec: RuleSpec, reset: bool, now: datetime
    ) -> Rule | None:
        """Store a rule's new settings; ``reset`` closes its alert (it was about another
        condition)."""

        def change(row: AlertRuleRow) -> None:
            row.spec, row.kind, row.enabled = spec_json(spec), spec.kind, not spec.paused
            if reset:
                row.subjects, row.acknowledged, row.pending_events = [], False, 0
            row.updated_at = now

        return await self.change_rule(rule_id=rule_id, change=change)

    async def set_secret(self, *, rule_id: str, sealed: bytes, now: datetime) -> Rule | None:
        """Replace a rule's sealed signing secret."""

        def change(row: AlertRuleRow) -> None:
            row.sealed_secret, row.updated_at = sealed, now

        return await self.change_rule(rule_id=rule_id, change=change)

    async def acknowledge(self, *, rule_id: str, now: datetime) -> Rule | None:
        """Acknowledge a rule's open alert: events already waiting belonged to it."""

        def change(row: AlertRuleRow) -> None:
            row.acknowledged = True
            row.pending_events, row.first_pending_us, row.updated_at = 0, 0, now

        return await self.change_rule(rule_id=rule_id, change=change)

    async def sealed_secret(self, *, rule_id: str) -> bytes | None:
        """A rule's sealed webhook secret."""
        async with self._sessions() as session:
            return await session.scalar(
                select(AlertRuleRow.sealed_secret).where(AlertRuleRow.id == rule_id)
            )

    async def delete_rule(self, *, rule_id: str) -> None:
        """Delete a rule, its deliveries and their attempts."""
        async with self._sessions.begin() as session:
            theirs = select(DeliveryRow.id).where(DeliveryRow.rule_id == rule_id)
            await session.execute(delete(AttemptRow).where(AttemptRow.delivery_id.in_(theirs)))
            await session.execute(delete(DeliveryRow).where(DeliveryRow.rule_id == rule_id))
            await session.execute(delete(AlertRuleRow).where(AlertRuleRow.id == rule_id))

    async def due_rules(self) -> list[str]:
        """Ids of enabled rules with events waiting for a message."""
        async with self._sessions() as session:
            return list(
                await session.scalars(
                    select(AlertRuleRow.id).where(
                        AlertRuleRow.enabled, AlertRuleRow.pending_events > 0
                    )
                )
            )

    # Deliveries

    async def dispatch(
        self, *, rule_id: str, change: Callable[[AlertRuleRow], Taken | None]
    ) -> Rule | None:
        """Under the rule's row lock, let ``change`` change the rule (record events) and take
        its waiting events, answering the deliveries of their message (None: none due),
        stored in the same transaction so that a message is queued exactly when its events
        leave the rule. A live message is stored and told to the other replicas at commit,
        when there are others to tell. Answers the rule as stored; None when it is gone."""
        async with self._sessions.begin() as session:
            row = await session.scalar(
                select(AlertRuleRow).where(AlertRuleRow.id == rule_id).with_for_update()
            )
            if row is None:
                return None
            taken = change(row)
            if taken is None:
                await session.flush()
                return row.to_value()
            session.add_all(taken.deliveries)
            if taken.live is not None and self.notices is not None:
                session.add(
                    LiveMessageRow(
                        id=taken.live.id,
                        message=message_json(taken.live),
                        created_at=row.last_sent_at or row.updated_at,
                    )
                )
                await self.notices.announce(session, [taken.live.id])  # sent at commit
            await session.flush()
            return row.to_value()

    async def live_messages(self, *, message_ids: Sequence[str]) -> list[AlertMessage]:
        """The stored live messages of ``message_ids`` that are still kept, oldest first."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(LiveMessageRow)
                .where(LiveMessageRow.id.in_(message_ids))
                .order_by(LiveMessageRow.created_at, LiveMessageRow.id)
            )
            return [message_of(row.message) for row in rows]

    async def forget_live_messages(self, *, before: datetime) -> None:
        """Drop the live messages stored before ``before`` (their notices are long read)."""
        if self.notices is None:
            return
        async with self._sessions.begin() as session:
            await session.execute(delete(LiveMessageRow).where(LiveMessageRow.created_at < before))

    async def claim_due(
        self, *, now: datetime, lease_until: datetime, limit: int
    ) -> list[Delivery]:
        """Claim up to ``limit`` due deliveries until ``lease_until`` (one sender each)."""
        rows = await claim_due(
            self._sessions,
            DeliveryRow,
            pending=PENDING,
            now=now,
            lease_until=lease_until,
            limit=limit,
        )
        return [row.to_value() for row in rows]

    async def delivered(self, *, delivery_id: str, now: datetime) -> None:
        """Record a delivered message, and the attempt that delivered it."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(DeliveryRow)
                .where(DeliveryRow.id == delivery_id)
                .values(status=DELIVERED, delivered_at=now, attempts=DeliveryRow.attempts + 1)
            )
            session.add(
                AttemptRow(delivery_id=delivery_id, attempted_at=now, outcome=DELIVERED, error="")
            )

    async def failed(
        self, *, delivery_id: str, error: str, now: datetime, retry_at: datetime | None
    ) -> None:
        """Record a failed attempt: due again at ``retry_at``, or dead when None."""
        values: dict[str, object] = {
            "attempts": DeliveryRow.attempts + 1,
            "last_error": error[:200],
        }
        if retry_at is None:
            values["status"] = DEAD
        else:
            values["next_attempt_at"] = retry_at
        async with self._sessions.begin() as session:
            await session.execute(
                update(DeliveryRow).where(DeliveryRow.id == delivery_id).values(**values)
            )
            session.add(
                AttemptRow(
                    delivery_id=delivery_id, attempted_at=now, outcome=FAILED, error=error[:200]
                )
            )

    async def list_deliveries(
        self, *, rule_id: str, offset: int, limit: int
    ) -> tuple[list[Delivery], int]:
        """A page of a rule's deliveries, newest first."""
        statement = (
            select(DeliveryRow)
            .where(DeliveryRow.rule_id == rule_id)
            .order_by(DeliveryRow.created_at.desc(), DeliveryRow.id)
        )
        async with self._sessions() as session:
            rows, total = await fetch_page(session, statement, offset=offset, limit=limit)
            attempts = await session.scalars(
                select(AttemptRow)
                .where(AttemptRow.delivery_id.in_([row.id for row in rows]))
                .order_by(AttemptRow.id)
            )
            log: dict[str, list[Attempt]] = {}
            for attempt in attempts:
                log.setdefault(attempt.delivery_id, []).append(
                    Attempt(at=attempt.attempted_at, outcome=attempt.outcome, error=attempt.error)
                )
        return [
            replace(row.to_value(), attempt_log=tuple(log.get(row.id, ()))) for row in rows
        ], total

    # Device activity

    async def record_seen(self, *, seen: dict[str, tuple[str, datetime]]) -> None:
        """Store when each device (by id: owner, time) was last heard from."""
        if not seen:
            return
        rows = [
            {"device_id": device, "owner_id": owner, "seen_at": at}
            for device, (owner, at) in seen.items()
        ]
        statement = self._insert(DeviceSeenRow).values(rows)
        statement = statement.on_conflict_do_update(
            index_elements=[DeviceSeenRow.device_id],
            set_={"seen_at": statement.excluded.seen_at},
        )
        async with self._sessions.begin() as session:
            await session.execute(statement)

    async def forget_seen(self, *, device_ids: Iterable[str]) -> None:
        """Forget decommissioned devices' activity."""
        async with self._sessions.begin() as session:
            await session.execute(
                delete(DeviceSeenRow).where(DeviceSeenRow.device_id.in_(list(device_ids)))
            )

    async def devices_seen(self, *, owner_ids: Iterable[str]) -> list[tuple[str, str, datetime]]:
        """(device, owner, last seen) of the given owners' devices."""
        async with self._sessions() as session:
            result = await session.execute(
                select(
                    DeviceSeenRow.device_id, DeviceSeenRow.owner_id, DeviceSeenRow.seen_at
                ).where(DeviceSeenRow.owner_id.in_(list(owner_ids)))
            )
            return [(d, o, s) for d, o, s in result.all()]
