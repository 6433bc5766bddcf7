"""The chat API's logic: sessions, their owners, messages, escalation and live events.

No gRPC and no SQL here: it takes and answers the domain values of
:mod:`services.chat.chat.values`. A signed-in user's session is theirs
alone; an anonymous visitor's is opened with the token it was created with
(another user's, or one without its token, is "not found"). The assistant
only answers; this service decides the escalation level from its replies:

- 0: the assistant answers;
- 1: a reply is unsure (or the user complains) and offers a person;
- 2: the user asked for a person, or two unsure replies came in a row: the
  session joins the agents' queue and the assistant stays quiet until an
  agent resolves it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import uuid
import weakref
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from iotkit import reasons
from iotkit.context import Caller
from iotkit.errors import Conflict, NotFound
from iotkit.listing import PageRequest, check_page
from iotkit.ownership import owned
from iotkit.sqltypes import utcnow
from iotkit.streams import Watch
from iotkit.validation import Violations, check_uuid
from services.chat.chat.fallback import FallbackAssistant
from services.chat.chat.hub import EventHub, Subscription
from services.chat.chat.store import ChatStore
from services.chat.chat.values import (
    AGENT,
    BOT,
    ENDED,
    ESCALATION,
    MESSAGE,
    TYPING,
    USER,
    Article,
    Asker,
    Assistant,
    ChatEvent,
    ChatMessage,
    ChatSession,
    Exchange,
    HelpArticles,
    NewEvent,
    NewSession,
    QueueChange,
    Reply,
    SessionWithMessages,
    Turn,
)

CONTENT_MAX = 4000
HISTORY_TURNS = 20
"""Earlier messages the assistant sees: enough for follow-ups, bounded in cost."""
HANDOVER_NOTE = "I've passed this conversation to a person; they will reply here."
COMPLAINT = "complaint"
_SESSION_MISSING = "Chat session not found"

log = logging.getLogger(__name__)


def token_hash(token: str) -> str:
    """The stored form of an anonymous session's token (a random 256-bit value, so a
    plain SHA-256 suffices: there is nothing to guess)."""
    return hashlib.sha256(token.encode()).hexdigest()


def next_level(session: ChatSession, reply: Reply) -> tuple[int, int]:
    """The escalation level and unsure streak after ``reply`` in ``session`` (below level 2)."""
    unsure = reply.unsure or reply.intent == COMPLAINT
    streak = session.unsure_streak + 1 if unsure else 0
    if reply.wants_person or streak >= 2:
        return 2, streak
    return (1 if unsure else 0), streak


@dataclass(frozen=True, slots=True)
class SessionPage:
    """One page of sessions, with their messages when the listing shows them."""

    sessions: list[SessionWithMessages]
    total: int
    request: PageRequest


class ChatService:
    """Chat sessions between users, the assistant and agents."""

    def __init__(
        self,
        *,
        store: ChatStore,
        assistant: Assistant,
        help: HelpArticles,
        hub: EventHub | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._assistant = assistant
        self._fallback = FallbackAssistant()
        self._help = help
        self._hub = hub or EventHub()
        self._clock = clock
        # One writer per session at a time, so that levels and event order stay consistent.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    # Sessions.

    async def create_session(self, *, caller: Caller | None) -> NewSession:
        """Start a session for the caller, or for an anonymous visitor with a new token."""
        token = None if caller else secrets.token_urlsafe(32)
        session = ChatSession(
            id=str(uuid.uuid4()),
            user_id=caller.subject if caller else None,
            started_at=self._clock(),
            token_hash=token_hash(token) if token else None,
        )
        await self._store.add_session(session=session)
        return NewSession(session, token)

    async def list_sessions(self, *, caller: Caller, page: int, limit: int) -> SessionPage:
        """A page of the caller's own sessions, newest first, without messages."""
        violations = Violations()
        request = check_page(violations, page, limit)
        violations.raise_if_any()
        rows, total = await self._store.list_sessions(
            user_id=caller.subject, offset=request.offset, limit=request.limit
        )
        return SessionPage([SessionWithMessages(row, ()) for row in rows], total, request)

    async def get_session(
        self, *, caller: Caller | None, session_id: str, token: str
    ) -> SessionWithMessages:
        """A session the caller may read, with its messages."""
        session = await self._readable(caller, session_id, token)
        return await self._with_messages(session)

    async def end_session(
        self, *, caller: Caller | None, session_id: str, token: str
    ) -> SessionWithMessages:
        """End a session (unchanged when it already ended); its watchers get "ended"."""
        session = await self._readable(caller, session_id, token)
        async with self._lock(session.id):
            session = await self._current(session.id)
            if session.ended_at is None:
                session, events = await self._store.record(
                    session_id=session.id,
                    events=[NewEvent(ENDED, session.escalation_level)],
                    changes={"ended_at": self._clock()},
                    now=self._clock(),
                )
                self._hub.publish(events)
        return await self._with_messages(session)

    # Messages.

    async def send_message(
        self, *, caller: Caller | None, session_id: str, token: str, content: str
    ) -> Exchange:
        """Store the user's message and, unless a person handles the session, the reply."""
        violations = Violations()
        content = _check_content(violations, content)
        session_id = check_uuid(violations, session_id, field="session_id")
        violations.raise_if_any()
        session = await self._readable(caller, session_id, token)
        async with self._lock(session.id):
            session = _open(await self._current(session.id))
            history = await self._history(session.id)
            now = self._clock()
            message = ChatMessage(str(uuid.uuid4()), session.id, USER, content, now)
            with_person = session.escalation_level >= 2
            events = [NewEvent(MESSAGE, session.escalation_level, message)]
            if not with_person:
                events.append(NewEvent(TYPING, session.escalation_level))
            session, stored = await self._store.record(
                session_id=session.id, messages=[message], events=events, now=now
            )
            self._hub.publish(stored)
            if with_person:
                return Exchange(message, None, session.escalation_level)
            # An anonymous session speaks for nobody, even when a signed-in user holds its token.
            own = caller is not None and session.user_id is not None
            asker = Asker(user_id=session.user_id, token=caller.token if own and caller else None)
            reply = await self._answer(content, asker, history)
            return await self._store_reply(session, message, reply)

    async def _answer(self, text: str, asker: Asker, history: list[Turn]) -> Reply:
        try:
            return await self._assistant.reply(text=text, asker=asker, history=history)
        except Exception:
            # The user still gets an answer (which offers a person) and the level rises.
            log.exception("the assistant failed; the fallback answers")
            return await self._fallback.reply(text=text, asker=asker, history=history)

    async def _store_reply(
        self, session: ChatSession, message: ChatMessage, reply: Reply
    ) -> Exchange:
        level, streak = next_level(session, reply)
        text = reply.text
        changes: dict[str, Any] = {"escalation_level": level, "unsure_streak": streak}
        now = self._clock()
        if level == 2:
            changes["escalated_at"] = now
            if not reply.wants_person:  # handed over on the assistant's say-so: tell the user
                text = f"{text}\n\n{HANDOVER_NOTE}"
        answer = ChatMessage(
            id=str(uuid.uuid4()),
            session_id=session.id,
            author=BOT,
            content=text,
            sent_at=now,
            intent=reply.intent,
            confidence=min(max(reply.confidence, 0.0), 1.0),
            facts=reply.facts,
        )
        events = [NewEvent(MESSAGE, level, answer)]
        if level != session.escalation_level:
            events.append(NewEvent(ESCALATION, level))
        session, stored = await self._store.record(
            session_id=session.id, messages=[answer], events=events, changes=changes, now=now
        )
        self._hub.publish(stored)
        return Exchange(message, answer, session.escalation_level)

    async def _history(self, session_id: str) -> list[Turn]:
        earlier = await self._store.messages(session_ids=[session_id], last=HISTORY_TURNS)
        return [Turn(m.author, m.content, m.intent) for m in earlier[session_id]]

    # Live events.

    async def watch(
        self, *, caller: Caller | None, session_id: str, token: str, after: int
    ) -> Watch[ChatEvent]:
        """The session's events after ``after`` (stored ones first; none for 0), then live
        ones; the stream ends after "ended". Stale typing events are not replayed.

        Subscribed when this returns: a caller that then tells its client the watch is open
        misses nothing the client causes next (with 0, a reply's typing event is live only)."""
        session = await self._readable(caller, session_id, token)
        # Subscribe before reading the store, so nothing falls between the two.
        subscription = self._hub.subscribe(session.id)
        return Watch(self._events(session.id, after, subscription), subscription.close)

    async def _events(
        self, session_id: str, after: int, subscription: Subscription[ChatEvent]
    ) -> AsyncGenerator[ChatEvent, None]:
        try:
            last = after
            stored = await self._store.events_after(session_id=session_id, after=after)
            for event in stored if after else ():  # 0: only what happens from now on
                last = event.id
                if event.kind != TYPING:
                    yield event
                if event.kind == ENDED:
                    return
            async for event in subscription.events():
                if event.id <= last:
                    continue  # already replayed from the store
                last = event.id
                yield event
                if event.kind == ENDED:
                    return
        finally:
            subscription.close()

    # Agents.

    def watch_queue(self, *, caller: Caller) -> Subscription[QueueChange]:
        """The agents' queue's changes from now on (sessions joining it, messages in it,
        sessions leaving it), collected from this call on; the caller closes it."""
        return self._hub.subscribe_queue()

    async def escalations(self, *, caller: Caller, page: int, limit: int) -> SessionPage:
        """A page of the sessions waiting for a person, longest waiting first, with history."""
        violations = Violations()
        request = check_page(violations, page, limit)
        violations.raise_if_any()
        rows, total = await self._store.escalated(offset=request.offset, limit=request.limit)
        messages = await self._store.messages(session_ids=[row.id for row in rows])
        return SessionPage(
            [SessionWithMessages(row, tuple(messages[row.id])) for row in rows], total, request
        )

    async def send_agent_message(
        self, *, caller: Caller, session_id: str, content: str
    ) -> ChatMessage:
        """An agent's reply to an escalated session; its watchers get it at once."""
        violations = Violations()
        content = _check_content(violations, content)
        session_id = check_uuid(violations, session_id, field="session_id")
        violations.raise_if_any()
        async with self._lock(session_id):
            session = _escalated(_open(await self._current(session_id)))
            message = ChatMessage(
                str(uuid.uuid4()), session.id, AGENT, content, self._clock(),
                author_id=caller.subject,
            )  # fmt: skip
            _, stored = await self._store.record(
                session_id=session.id,
                messages=[message],
                events=[NewEvent(MESSAGE, session.escalation_level, message)],
                now=message.sent_at,
            )
            self._hub.publish(stored)
            return message

    async def resolve(self, *, caller: Caller, session_id: str) -> SessionWithMessages:
        """Close a session's escalation: it leaves the queue and the assistant answers again."""
        violations = Violations()
        session_id = check_uuid(violations, session_id, field="session_id")
        violations.raise_if_any()
        async with self._lock(session_id):
            session = _escalated(await self._current(session_id))
            now = self._clock()
            session, stored = await self._store.record(
                session_id=session.id,
                events=[NewEvent(ESCALATION, 0)],
                changes={"escalation_level": 0, "unsure_streak": 0, "resolved_at": now},
                now=now,
            )
            self._hub.publish(stored, was_waiting=True)
        return await self._with_messages(session)

    # Help articles.

    def articles(self) -> list[Article]:
        """Every help article, by title."""
        return sorted(self._help.articles(), key=lambda article: article.title.lower())

    def article(self, *, slug: str) -> Article:
        """The help article ``slug``."""
        found = self._help.article(slug) if slug else None
        if found is None:
            raise NotFound("Help article not found", reason=reasons.ARTICLE_NOT_FOUND)
        return found

    # Helpers.

    def _lock(self, session_id: str) -> asyncio.Lock:
        lock = self._locks.get(session_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[session_id] = lock
        return lock

    async def _current(self, session_id: str) -> ChatSession:
        session = await self._store.session(session_id=session_id)
        if session is None:
            raise NotFound(_SESSION_MISSING, reason=reasons.SESSION_NOT_FOUND)
        return session

    async def _readable(self, caller: Caller | None, session_id: str, token: str) -> ChatSession:
        """The session when the caller may use it: their own, any for an admin, an
        anonymous one with its token; NOT_FOUND otherwise (nothing tells which)."""
        violations = Violations()
        session_id = check_uuid(violations, session_id, field="session_id")
        violations.raise_if_any()
        session = await self._store.session(session_id=session_id)
        if session is not None and session.user_id is None:
            if (
                token
                and session.token_hash
                and hmac.compare_digest(token_hash(token), session.token_hash)
            ):
                return session
            # An agent (an admin) takes anonymous sessions from the queue without their token.
            if caller is not None and caller.is_admin:
                return session
            session = None
        if caller is None:
            raise NotFound(_SESSION_MISSING, reason=reasons.SESSION_NOT_FOUND)
        return owned(session, caller, message=_SESSION_MISSING, reason=reasons.SESSION_NOT_FOUND)

    async def _with_messages(self, session: ChatSession) -> SessionWithMessages:
        messages = await self._store.messages(session_ids=[session.id])
        return SessionWithMessages(session, tuple(messages[session.id]))


def _check_content(violations: Violations, content: str) -> str:
    text = content.strip()
    if not text:
        violations.add("content", "Content is required")
    elif len(content) > CONTENT_MAX:
        violations.add("content", f"Content must be at most {CONTENT_MAX} characters")
    return text


def _open(session: ChatSession) -> ChatSession:
    if session.ended_at is not None:
        raise Conflict("This chat session has ended", reason=reasons.SESSION_ENDED)
    return session


def _escalated(session: ChatSession) -> ChatSession:
    if session.escalation_level < 2:
        raise Conflict(
            "This chat session is not waiting for a person", reason=reasons.NOT_ESCALATED
        )
    return session
