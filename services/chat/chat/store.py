"""The chat service's tables and queries (SQLAlchemy 2, async).

Chat owns sessions, their messages and the numbered events that live
watchers replay from. Rows stay here: every method takes and answers the
domain values of :mod:`services.chat.chat.values`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from iotkit.convert import epoch_micros, micros_datetime
from iotkit.listing import fetch_page
from iotkit.sqltypes import SEQUENCE, UtcDateTime
from iotkit.validation import INT64_MAX
from services.chat.chat.values import (
    ChatEvent,
    ChatMessage,
    ChatSession,
    Facts,
    NewEvent,
)


class Base(DeclarativeBase):
    """Declarative base of the chat tables."""


class SessionRow(Base):
    """A chat session; an anonymous visitor's has no user and a hashed token instead."""

    __tablename__ = "chat_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0, index=True)
    unsure_streak: Mapped[int] = mapped_column(Integer, default=0)
    escalated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    message_count: Mapped[int] = mapped_column(Integer, default=0)


class MessageRow(Base):
    """One message; ``seq`` keeps a session's messages in the order they were stored."""

    __tablename__ = "chat_messages"

    seq: Mapped[int] = mapped_column(SEQUENCE, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("chat_sessions.id"), index=True)
    author: Mapped[str] = mapped_column(String(8))
    author_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    content: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime)
    intent: Mapped[str] = mapped_column(String(64), default="")
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    # The bot's Facts as JSON (times in epoch microseconds); None on other messages.
    facts: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class EventRow(Base):
    """One event of a session, numbered for watchers that resume after the last they saw."""

    __tablename__ = "chat_events"

    id: Mapped[int] = mapped_column(SEQUENCE, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("chat_sessions.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    escalation_level: Mapped[int] = mapped_column(Integer)
    message_id: Mapped[str | None] = mapped_column(ForeignKey("chat_messages.id"), nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)


def _facts_json(facts: Facts | None) -> dict[str, Any] | None:
    if facts is None:
        return None
    return {
        "device_ids": list(facts.device_ids),
        "stream_ids": list(facts.stream_ids),
        "start": None if facts.start is None else epoch_micros(facts.start),
        "end": None if facts.end is None else epoch_micros(facts.end),
        "articles": list(facts.articles),
    }


def _facts(value: dict[str, Any] | None) -> Facts | None:
    if value is None:
        return None
    start, end = value.get("start"), value.get("end")
    return Facts(
        device_ids=tuple(value.get("device_ids", ())),
        stream_ids=tuple(value.get("stream_ids", ())),
        start=None if start is None else micros_datetime(start),
        end=None if end is None else micros_datetime(end),
        articles=tuple(value.get("articles", ())),
    )


def _session(row: SessionRow) -> ChatSession:
    return ChatSession(
        id=row.id,
        user_id=row.user_id,
        started_at=row.started_at,
        ended_at=row.ended_at,
        escalation_level=row.escalation_level,
        unsure_streak=row.unsure_streak,
        escalated_at=row.escalated_at,
        resolved_at=row.resolved_at,
        message_count=row.message_count,
        token_hash=row.token_hash,
    )


def _message(row: MessageRow) -> ChatMessage:
    return ChatMessage(
        id=row.id,
        session_id=row.session_id,
        author=row.author,
        content=row.content,
        sent_at=row.sent_at,
        intent=row.intent,
        confidence=row.confidence,
        facts=_facts(row.facts),
        author_id=row.author_id,
    )


def _message_row(message: ChatMessage) -> MessageRow:
    return MessageRow(
        id=message.id,
        session_id=message.session_id,
        author=message.author,
        author_id=message.author_id,
        content=message.content,
        sent_at=message.sent_at,
        intent=message.intent,
        confidence=message.confidence,
        facts=_facts_json(message.facts),
    )


def _event(row: EventRow, message: ChatMessage | None) -> ChatEvent:
    return ChatEvent(
        id=row.id,
        session_id=row.session_id,
        kind=row.kind,
        escalation_level=row.escalation_level,
        occurred_at=row.occurred_at,
        message=message,
    )


# What a caller may change on a session through ``record``.
SESSION_CHANGES = frozenset(
    {"ended_at", "escalation_level", "unsure_streak", "escalated_at", "resolved_at"}
)


class ChatStore:
    """Queries over the chat tables; every method runs in its own transaction."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def add_session(self, *, session: ChatSession) -> None:
        """Insert a new session."""
        async with self._sessions.begin() as db:
            db.add(
                SessionRow(
                    id=session.id,
                    user_id=session.user_id,
                    token_hash=session.token_hash,
                    started_at=session.started_at,
                    ended_at=session.ended_at,
                    escalation_level=session.escalation_level,
                    unsure_streak=session.unsure_streak,
                    message_count=0,
                )
            )

    async def session(self, *, session_id: str) -> ChatSession | None:
        """The session ``session_id``, or None."""
        async with self._sessions() as db:
            row = await db.get(SessionRow, session_id)
            return None if row is None else _session(row)

    async def list_sessions(
        self, *, user_id: str, offset: int, limit: int
    ) -> tuple[list[ChatSession], int]:
        """A page of a user's sessions, newest first, and how many they have."""
        statement = (
            select(SessionRow)
            .where(SessionRow.user_id == user_id)
            .order_by(SessionRow.started_at.desc(), SessionRow.id.desc())
        )
        async with self._sessions() as db:
            rows, total = await fetch_page(db, statement, offset=offset, limit=limit)
            return [_session(row) for row in rows], total

    async def escalated(self, *, offset: int, limit: int) -> tuple[list[ChatSession], int]:
        """A page of the open sessions at level 2, longest waiting first, and how many wait."""
        statement = (
            select(SessionRow)
            .where(SessionRow.escalation_level == 2, SessionRow.ended_at.is_(None))
            .order_by(SessionRow.escalated_at.asc(), SessionRow.id.asc())
        )
        async with self._sessions() as db:
            rows, total = await fetch_page(db, statement, offset=offset, limit=limit)
            return [_session(row) for row in rows], total

    async def messages(
        self, *, session_ids: Sequence[str], last: int | None = None
    ) -> dict[str, list[ChatMessage]]:
        """The messages of each session, oldest first; only the ``last`` few when given
        (for one session)."""
        found: dict[str, list[ChatMessage]] = {session_id: [] for session_id in session_ids}
        if not session_ids:
            return found
        statement = select(MessageRow).where(MessageRow.session_id.in_(session_ids))
        if last is not None:
            statement = statement.order_by(MessageRow.seq.desc()).limit(last)
        async with self._sessions() as db:
            rows = sorted(await db.scalars(statement), key=lambda row: row.seq)
        for row in rows:
            found[row.session_id].append(_message(row))
        return found

    async def record(
        self,
        *,
        session_id: str,
        messages: Sequence[ChatMessage] = (),
        events: Sequence[NewEvent] = (),
        changes: dict[str, Any] | None = None,
        now: datetime,
    ) -> tuple[ChatSession, list[ChatEvent]]:
        """Store messages, session changes and events together, all or none.

        Answers the session as changed and the events with their ids, in order.
        """
        changes = dict(changes or {})
        unknown = set(changes) - SESSION_CHANGES
        if unknown:
            raise ValueError(f"cannot change {sorted(unknown)} of a session")
        async with self._sessions.begin() as db:
            values: dict[str, Any] = dict(changes)
            if messages:
                values["message_count"] = SessionRow.message_count + len(messages)
            if values:
                await db.execute(
                    update(SessionRow).where(SessionRow.id == session_id).values(**values)
                )
            db.add_all(_message_row(message) for message in messages)
            await db.flush()
            rows = [
                EventRow(
                    session_id=session_id,
                    kind=event.kind,
                    escalation_level=event.escalation_level,
                    message_id=event.message.id if event.message else None,
                    occurred_at=now,
                )
                for event in events
            ]
            # One by one, so that ids increase in the order the events were given.
            for row in rows:
                db.add(row)
                await db.flush()
            session = await db.get(SessionRow, session_id, populate_existing=True)
            assert session is not None
            return _session(session), [
                _event(row, event.message) for row, event in zip(rows, events, strict=True)
            ]

    async def events_after(self, *, session_id: str, after: int) -> list[ChatEvent]:
        """The session's events numbered above ``after``, in order, with their messages."""
        # A client's id past any 64-bit row id (last_event_id is a uint64) asks for nothing
        # yet; the databases refuse to compare with it at all.
        after = min(after, INT64_MAX)
        statement = (
            select(EventRow, MessageRow)
            .outerjoin(MessageRow, MessageRow.id == EventRow.message_id)
            .where(EventRow.session_id == session_id, EventRow.id > after)
            .order_by(EventRow.id.asc())
        )
        async with self._sessions() as db:
            rows = (await db.execute(statement)).all()
        return [
            _event(event, None if message is None else _message(message)) for event, message in rows
        ]
