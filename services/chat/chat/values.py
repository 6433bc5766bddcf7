"""The chat API's domain values: what the service, the store and the assistant exchange.

The first classes (``Facts`` to ``Assistant``) are the contract between the
chat API and the assistant that answers; the rest are the API's own sessions,
messages and events. Plain frozen dataclasses: no gRPC and no SQL here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Facts:
    """What a reply used, so the console can link it."""

    device_ids: tuple[str, ...] = ()
    stream_ids: tuple[str, ...] = ()
    start: datetime | None = None  # time range the figures refer to
    end: datetime | None = None
    articles: tuple[str, ...] = ()  # help article slugs


@dataclass(frozen=True, slots=True)
class Reply:
    """The assistant's answer to one message."""

    text: str
    intent: str  # one of the NLU's INTENTS
    confidence: float  # 0..1
    facts: Facts = Facts()
    # The bot could not really help (low confidence, complaint, a service down):
    # escalation level >= 1, the reply offers a person.
    unsure: bool = False
    wants_person: bool = False  # the user asked for a person: escalation level 2


@dataclass(frozen=True, slots=True)
class Asker:
    """Who asks: the assistant reads other services on their behalf."""

    user_id: str | None  # None for an anonymous visitor
    # The caller's own bearer access token, to ask other services on their
    # behalf (None when anonymous).
    token: str | None
    timezone: str = "UTC"  # IANA name, from the user's profile metadata "timezone"


@dataclass(frozen=True, slots=True)
class Turn:
    """One earlier message of the session, oldest first."""

    author: str  # "user" | "bot" | "agent"
    content: str
    intent: str = ""


class Assistant(Protocol):
    """Answers one user message, knowing the session's earlier turns."""

    async def reply(self, *, text: str, asker: Asker, history: Sequence[Turn]) -> Reply:
        """The reply to ``text``."""
        ...


# The API's own values.

USER, BOT, AGENT = "user", "bot", "agent"
AUTHORS = (USER, BOT, AGENT)

# Event kinds of a session's live stream.
MESSAGE, TYPING, ESCALATION, ENDED = "message", "typing", "escalation", "ended"


@dataclass(frozen=True, slots=True)
class ChatSession:
    """A chat session; ``user_id`` is None for an anonymous visitor's."""

    id: str
    user_id: str | None
    started_at: datetime
    ended_at: datetime | None = None
    escalation_level: int = 0
    # Consecutive unsure replies of the assistant, for "two unsure in a row".
    unsure_streak: int = 0
    escalated_at: datetime | None = None
    resolved_at: datetime | None = None
    message_count: int = 0
    # SHA-256 of an anonymous session's token; never shown.
    token_hash: str | None = field(default=None, repr=False, compare=False)

    @property
    def owner_id(self) -> str:
        """The owning user for ownership checks; "" (nobody's) when anonymous."""
        return self.user_id or ""


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a session; ``intent``, ``confidence`` and ``facts`` are the bot's."""

    id: str
    session_id: str
    author: str
    content: str
    sent_at: datetime
    intent: str = ""
    confidence: float = 0.0
    facts: Facts | None = None
    # The agent who wrote it, for agents' messages.
    author_id: str | None = None

    @property
    def is_bot(self) -> bool:
        """True when the assistant wrote it."""
        return self.author == BOT


@dataclass(frozen=True, slots=True)
class ChatEvent:
    """Something that happened in a session, numbered in order for watchers."""

    id: int
    session_id: str
    kind: str
    escalation_level: int
    occurred_at: datetime
    message: ChatMessage | None = None


# Kinds of a change of the agents' queue.
JOINED, LEFT = "joined", "left"
WAITING_LEVEL = 2
"""A session at this escalation level (or above) waits in the agents' queue."""


@dataclass(frozen=True, slots=True)
class QueueChange:
    """A change of the agents' queue: a session joined it, got a message in it, or left it."""

    kind: str
    session_id: str
    escalation_level: int
    occurred_at: datetime


def queue_change(event: ChatEvent, *, was_waiting: bool) -> QueueChange | None:
    """What ``event`` changes in the agents' queue, if anything; ``was_waiting`` says the
    session waited before it (a level falling below 2 leaves the queue, one falling from
    1 to 0 was never in it)."""
    waiting = event.escalation_level >= WAITING_LEVEL
    if event.kind == ESCALATION:
        kind = JOINED if waiting else LEFT if was_waiting else ""
    elif event.kind == ENDED:
        kind = LEFT if waiting else ""
    elif event.kind == MESSAGE:
        # The assistant's reply that hands a session over comes with its joining.
        by_person = event.message is not None and event.message.author != BOT
        kind = MESSAGE if waiting and by_person else ""
    else:
        kind = ""
    if not kind:
        return None
    return QueueChange(kind, event.session_id, event.escalation_level, event.occurred_at)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to store: the store numbers it."""

    kind: str
    escalation_level: int
    message: ChatMessage | None = None


@dataclass(frozen=True, slots=True)
class SessionWithMessages:
    """A session and its messages, oldest first."""

    session: ChatSession
    messages: tuple[ChatMessage, ...]


@dataclass(frozen=True, slots=True)
class Exchange:
    """A user's message as stored, the reply (None while a person handles the session)
    and the session's level after them."""

    message: ChatMessage
    reply: ChatMessage | None
    escalation_level: int


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session just started, with the anonymous visitor's token (shown once)."""

    session: ChatSession
    token: str | None


class Article(Protocol):
    """A help article as the API shows it."""

    @property
    def slug(self) -> str:
        """Short name in URLs."""
        ...

    @property
    def title(self) -> str:
        """Its title."""
        ...

    @property
    def markdown(self) -> str:
        """Its text."""
        ...

    @property
    def url(self) -> str:
        """Where a browser reads it."""
        ...


class HelpArticles(Protocol):
    """The help library the API serves (satisfied by the help package's ``HelpLibrary``)."""

    def articles(self) -> Sequence[Article]:
        """Every article."""
        ...

    def article(self, slug: str) -> Article | None:
        """The article ``slug``, or None."""
        ...
