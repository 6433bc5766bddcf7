"""The chat service over real gRPC with auth beside it, on SQLite and PostgreSQL.

A scripted assistant stands in for the real one: it answers from a table of
replies, raises when told to, and records what it was asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import grpc
import pytest

from iot.auth.v1 import auth_pb2, auth_pb2_grpc
from iot.chat.v1 import chat_pb2, chat_pb2_grpc
from iotkit import reasons
from iotkit.errors import reason_of, violations_of
from services.chat.chat.fallback import HANDOVER, OFFER
from services.chat.chat.service import HANDOVER_NOTE
from services.chat.chat.values import Asker, Facts, Reply, Turn
from services.chat.wiring import build as build_chat
from tests.conftest import Backend, Suite, start_suite
from tests.support import PASSWORD, bearer, new_email, new_user

GREENHOUSE = "5b0d3a52-8f7e-4c59-9d0c-2f1f5b1c6a11"
FACTS = Facts(
    device_ids=(GREENHOUSE,),
    stream_ids=("s-1",),
    start=datetime(2026, 1, 1, 22, tzinfo=UTC),
    end=datetime(2026, 1, 2, 6, tzinfo=UTC),
    articles=("enable-two-factor",),
)


@dataclass
class ScriptedAssistant:
    """Answers by the first word of the message; "boom" raises."""

    asked: list[tuple[str, Asker, list[Turn]]] = field(default_factory=list)

    async def reply(self, *, text: str, asker: Asker, history: Sequence[Turn]) -> Reply:
        self.asked.append((text, asker, list(history)))
        word = text.split()[0].lower()
        if word == "boom":
            raise RuntimeError("the assistant broke")
        if word == "person":
            return Reply("Handing you over.", "human", 0.97, wants_person=True)
        if word == "useless":
            return Reply("Sorry about that.", "complaint", 0.9)
        if word == "hmm":
            return Reply("Not sure what you mean.", "out_of_scope", 0.2, unsure=True)
        return Reply("It is 21.5 °C.", "latest_reading", 0.91, facts=FACTS)


@dataclass(frozen=True)
class Article:
    slug: str
    title: str
    markdown: str
    url: str


class TinyLibrary:
    """Two articles in memory."""

    ITEMS = (
        Article("reset-password", "Resetting a password", "# Reset\nUse the link.", "/help/r"),
        Article("enable-two-factor", "Enabling two-factor", "# MFA\nScan the code.", "/help/m"),
    )

    def articles(self) -> Sequence[Article]:
        return self.ITEMS

    def article(self, slug: str) -> Article | None:
        return next((a for a in self.ITEMS if a.slug == slug), None)


@dataclass
class Clients:
    auth: auth_pb2_grpc.AuthServiceStub
    chat: chat_pb2_grpc.ChatServiceStub
    assistant: ScriptedAssistant
    backend: Backend


@pytest.fixture
async def clients(backend: Backend) -> AsyncIterator[Clients]:
    suite: Suite = await start_suite(backend, ("auth",))
    assistant = ScriptedAssistant()
    chat = await build_chat(
        suite.settings,
        address=suite.address("chat"),
        schema=backend.schema("chat"),
        assistant=assistant,
        help=TinyLibrary(),
    )
    await chat.built.start()
    suite.processes["chat"] = chat
    async with (
        grpc.aio.insecure_channel(suite.address("auth")) as auth_channel,
        grpc.aio.insecure_channel(suite.address("chat")) as chat_channel,
    ):
        yield Clients(
            auth_pb2_grpc.AuthServiceStub(auth_channel),
            chat_pb2_grpc.ChatServiceStub(chat_channel),
            assistant,
            backend,
        )
    await suite.aclose()


async def user(clients: Clients, *, admin: bool = False) -> list[tuple[str, str]]:
    """A new user's call metadata; an admin is promoted in auth's own database."""
    if not admin:
        return bearer((await new_user(clients.auth)).access_token)
    email = new_email()
    await clients.auth.Register(auth_pb2.RegisterRequest(email=email, password=PASSWORD))
    await clients.backend.sql("auth", "UPDATE users SET role = 'admin' WHERE email = ?", (email,))
    login = await clients.auth.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD))
    return bearer(login.access_token)


async def failure(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def start(clients: Clients, who: list[tuple[str, str]] | None) -> chat_pb2.ChatSession:
    created = await clients.chat.CreateSession(chat_pb2.CreateSessionRequest(), metadata=who)
    return created.session


async def say(
    clients: Clients, who: list[tuple[str, str]] | None, session_id: str, text: str, token: str = ""
) -> chat_pb2.SendMessageResponse:
    request = chat_pb2.SendMessageRequest(session_id=session_id, content=text, session_token=token)
    return await clients.chat.SendMessage(request, metadata=who)


async def test_a_signed_in_user_gets_answers_with_facts_and_history(clients: Clients) -> None:
    ann = await user(clients)
    me = await clients.auth.GetMe(auth_pb2.GetMeRequest(), metadata=ann)
    session = await start(clients, ann)
    assert session.user_id == me.user.uuid and session.escalation_level == 0
    first = await say(clients, ann, session.session_id, "  what is the greenhouse reading  ")
    assert first.message.content == "what is the greenhouse reading"
    assert (first.message.author, first.message.is_bot) == ("user", False)
    reply = first.reply
    assert (reply.author, reply.is_bot, reply.intent) == ("bot", True, "latest_reading")
    assert reply.content == "It is 21.5 °C." and reply.confidence == pytest.approx(0.91)
    assert list(reply.facts.device_ids) == [GREENHOUSE]
    assert list(reply.facts.articles) == ["enable-two-factor"]
    assert reply.facts.start.ToDatetime(tzinfo=UTC) == FACTS.start
    assert first.escalation_level == 0
    await say(clients, ann, session.session_id, "and now")
    text, asker, history = clients.assistant.asked[-1]
    # The assistant sees the earlier turns, oldest first, and speaks with the user's token.
    assert text == "and now" and asker.user_id == me.user.uuid
    assert asker.token == ann[0][1].removeprefix("Bearer ")
    assert [(t.author, t.intent) for t in history] == [("user", ""), ("bot", "latest_reading")]
    got = await clients.chat.GetSession(
        chat_pb2.GetSessionRequest(session_id=session.session_id), metadata=ann
    )
    assert [m.author for m in got.messages] == ["user", "bot", "user", "bot"]
    assert got.message_count == 4 and got.messages[1].facts.stream_ids == ["s-1"]


async def test_unsure_twice_in_a_row_hands_over_and_the_bot_goes_quiet(clients: Clients) -> None:
    ann = await user(clients)
    session = await start(clients, ann)
    once = await say(clients, ann, session.session_id, "hmm what")
    assert once.escalation_level == 1
    fine = await say(clients, ann, session.session_id, "temperature")
    assert fine.escalation_level == 0  # a good answer after all
    await say(clients, ann, session.session_id, "hmm one")
    twice = await say(clients, ann, session.session_id, "hmm two")
    assert twice.escalation_level == 2
    assert twice.reply.content.endswith(HANDOVER_NOTE)
    waiting = await say(clients, ann, session.session_id, "hello?")
    assert not waiting.HasField("reply") and waiting.escalation_level == 2
    assert clients.assistant.asked[-1][0] == "hmm two"


async def test_a_complaint_raises_the_level_to_one(clients: Clients) -> None:
    ann = await user(clients)
    session = await start(clients, ann)
    answer = await say(clients, ann, session.session_id, "useless bot")
    assert answer.escalation_level == 1 and answer.reply.intent == "complaint"


async def test_a_failing_assistant_is_answered_by_the_fallback(clients: Clients) -> None:
    ann = await user(clients)
    session = await start(clients, ann)
    answer = await say(clients, ann, session.session_id, "boom")
    assert answer.reply.content == OFFER and answer.reply.intent == "out_of_scope"
    assert answer.escalation_level == 1
    again = await say(clients, ann, session.session_id, "boom again, a person please")
    assert again.reply.content == HANDOVER and again.escalation_level == 2


async def test_anonymous_sessions_need_their_token(clients: Clients) -> None:
    created = await clients.chat.CreateSession(chat_pb2.CreateSessionRequest())
    session, token = created.session, created.session_token
    assert session.user_id == "" and len(token) >= 40
    answer = await say(clients, None, session.session_id, "temperature", token)
    assert clients.assistant.asked[-1][1] == Asker(user_id=None, token=None)
    assert answer.reply.is_bot
    got = await clients.chat.GetSession(
        chat_pb2.GetSessionRequest(session_id=session.session_id, session_token=token)
    )
    assert len(got.messages) == 2
    # The token is stored hashed: the database never holds it.
    stored = await clients.backend.sql("chat", "SELECT token_hash FROM chat_sessions")
    assert stored and all(token not in str(row) for row in stored)
    ann = await user(clients)
    for who, given in ((None, ""), (None, token[:-1] + "x"), (ann, "")):
        error = await failure(
            clients.chat.GetSession(
                chat_pb2.GetSessionRequest(session_id=session.session_id, session_token=given),
                metadata=who,
            )
        )
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert reason_of(error) == reasons.SESSION_NOT_FOUND
    # Anonymous visitors have no list of their own.
    error = await failure(clients.chat.ListSessions(chat_pb2.ListSessionsRequest()))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    # An agent (an admin) takes it from the queue without its token: reads it and its events.
    agent = await user(clients, admin=True)
    read = await clients.chat.GetSession(
        chat_pb2.GetSessionRequest(session_id=session.session_id), metadata=agent
    )
    assert next(m.content for m in read.messages) == "temperature"


async def test_another_users_session_is_not_found(clients: Clients) -> None:
    ann, bob = await user(clients), await user(clients)
    session = await start(clients, ann)
    for call in (
        clients.chat.GetSession(
            chat_pb2.GetSessionRequest(session_id=session.session_id), metadata=bob
        ),
        say(clients, bob, session.session_id, "mine now"),
        clients.chat.EndSession(
            chat_pb2.EndSessionRequest(session_id=session.session_id), metadata=bob
        ),
        say(clients, None, session.session_id, "hi"),
    ):
        error = await failure(call)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert reason_of(error) == reasons.SESSION_NOT_FOUND
    listed = await clients.chat.ListSessions(chat_pb2.ListSessionsRequest(), metadata=bob)
    assert list(listed.sessions) == [] and listed.pagination.total == 0


async def test_a_bad_token_is_refused_not_taken_for_anonymous(clients: Clients) -> None:
    error = await failure(
        clients.chat.CreateSession(chat_pb2.CreateSessionRequest(), metadata=bearer("nope"))
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "Content is required"),
        (" \n\t ", "Content is required"),
        ("x" * 4001, "Content must be at most 4000 characters"),
    ],
)
async def test_bad_content_names_the_field(clients: Clients, content: str, message: str) -> None:
    ann = await user(clients)
    session = await start(clients, ann)
    error = await failure(say(clients, ann, session.session_id, content))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [(v.field, v.message) for v in violations_of(error)] == [("content", message)]
    assert (await say(clients, ann, session.session_id, "x" * 4000)).reply.is_bot


async def test_a_malformed_session_id_is_a_field_error(clients: Clients) -> None:
    ann = await user(clients)
    error = await failure(say(clients, ann, "not-a-uuid", "hi"))
    assert [v.field for v in violations_of(error)] == ["session_id"]


async def test_an_ended_session_takes_no_more_messages(clients: Clients) -> None:
    ann = await user(clients)
    session = await start(clients, ann)
    request = chat_pb2.EndSessionRequest(session_id=session.session_id)
    ended = await clients.chat.EndSession(request, metadata=ann)
    assert ended.HasField("ended_at")
    again = await clients.chat.EndSession(request, metadata=ann)
    assert again.ended_at == ended.ended_at  # ending twice changes nothing
    error = await failure(say(clients, ann, session.session_id, "hello"))
    assert error.code() == grpc.StatusCode.ABORTED
    assert reason_of(error) == reasons.SESSION_ENDED


async def test_sessions_are_listed_newest_first_a_page_at_a_time(clients: Clients) -> None:
    ann = await user(clients)
    ids = [(await start(clients, ann)).session_id for _ in range(5)]
    first = await clients.chat.ListSessions(chat_pb2.ListSessionsRequest(limit=2), metadata=ann)
    assert (first.pagination.total, first.pagination.total_pages) == (5, 3)
    last = await clients.chat.ListSessions(
        chat_pb2.ListSessionsRequest(page=3, limit=2), metadata=ann
    )
    seen = [s.session_id for s in first.sessions] + [s.session_id for s in last.sessions]
    assert len(seen) == 3 and set(seen) <= set(ids)
    assert [s.session_id for s in last.sessions] == [ids[0]]
    error = await failure(
        clients.chat.ListSessions(chat_pb2.ListSessionsRequest(limit=101), metadata=ann)
    )
    assert [v.field for v in violations_of(error)] == ["limit"]


async def next_event(events: AsyncIterator[chat_pb2.SessionEvent]) -> chat_pb2.SessionEvent:
    return await asyncio.wait_for(anext(events), timeout=5)


async def test_the_escalation_flow_reaches_the_users_stream_at_once(clients: Clients) -> None:
    ann, agent = await user(clients), await user(clients, admin=True)
    session = await start(clients, ann)
    sid = session.session_id
    watch = clients.chat.WatchSession(chat_pb2.WatchSessionRequest(session_id=sid), metadata=ann)
    # Open (its headers came): from here on nothing the user causes is missed, the reply's
    # live-only typing event included.
    await watch.initial_metadata()
    events = watch.__aiter__()
    asked = await say(clients, ann, sid, "person please")
    assert asked.escalation_level == 2
    kinds = [(await next_event(events)) for _ in range(4)]
    assert [e.kind for e in kinds] == ["message", "typing", "message", "escalation"]
    assert kinds[0].message.message_id == asked.message.message_id
    assert kinds[2].message.message_id == asked.reply.message_id
    assert kinds[3].escalation_level == 2
    ids = [e.event_id for e in kinds]
    assert ids == sorted(ids) and len(set(ids)) == 4

    # Only an admin sees the queue, with the history.
    error = await failure(
        clients.chat.ListEscalations(chat_pb2.ListEscalationsRequest(), metadata=ann)
    )
    assert reason_of(error) == reasons.MISSING_SCOPE
    queue = await clients.chat.ListEscalations(chat_pb2.ListEscalationsRequest(), metadata=agent)
    (waiting,) = [s for s in queue.sessions if s.session_id == sid]
    assert [m.content for m in waiting.messages] == ["person please", "Handing you over."]
    assert waiting.HasField("escalated_at")

    sent = await clients.chat.SendAgentMessage(
        chat_pb2.SendAgentMessageRequest(session_id=sid, content="Hi, I'm Dana. How can I help?"),
        metadata=agent,
    )
    assert (sent.author, sent.is_bot) == ("agent", False)
    live = await next_event(events)
    assert live.kind == "message" and live.message.message_id == sent.message_id
    assert live.event_id > ids[-1]

    resolved = await clients.chat.ResolveEscalation(
        chat_pb2.ResolveEscalationRequest(session_id=sid), metadata=agent
    )
    assert resolved.escalation_level == 0 and resolved.HasField("resolved_at")
    change = await next_event(events)
    assert (change.kind, change.escalation_level) == ("escalation", 0)
    queue = await clients.chat.ListEscalations(chat_pb2.ListEscalationsRequest(), metadata=agent)
    assert sid not in [s.session_id for s in queue.sessions]
    # The bot answers again, and an agent may no longer write.
    assert (await say(clients, ann, sid, "thanks")).HasField("reply")
    error = await failure(
        clients.chat.SendAgentMessage(
            chat_pb2.SendAgentMessageRequest(session_id=sid, content="more"), metadata=agent
        )
    )
    assert error.code() == grpc.StatusCode.ABORTED
    assert reason_of(error) == reasons.NOT_ESCALATED
    await clients.chat.EndSession(chat_pb2.EndSessionRequest(session_id=sid), metadata=ann)
    rest = [e async for e in events]  # the stream ends after "ended"
    assert rest[-1].kind == "ended"
    watch.cancel()


async def test_the_agents_queue_changes_reach_its_watchers(clients: Clients) -> None:
    ann, bob, agent = await user(clients), await user(clients), await user(clients, admin=True)
    error = await failure(
        clients.chat.WatchQueue(chat_pb2.WatchQueueRequest(), metadata=ann).read()
    )
    assert (error.code(), reason_of(error)) == (
        grpc.StatusCode.PERMISSION_DENIED,
        reasons.MISSING_SCOPE,
    )
    watch = clients.chat.WatchQueue(chat_pb2.WatchQueueRequest(), metadata=agent)
    # The headers come once the watch is subscribed: nothing after them is missed.
    await watch.initial_metadata()
    changes = watch.__aiter__()

    # Unsure (level 1), sure again (0), then a person asked for (2): only the last is
    # a change of the queue, and the assistant's handing-over reply is not a message in it.
    sid = (await start(clients, ann)).session_id
    assert (await say(clients, ann, sid, "hmm")).escalation_level == 1
    assert (await say(clients, ann, sid, "temperature")).escalation_level == 0
    assert (await say(clients, ann, sid, "person please")).escalation_level == 2
    await say(clients, ann, sid, "still there?")
    await clients.chat.SendAgentMessage(
        chat_pb2.SendAgentMessageRequest(session_id=sid, content="Yes, Dana here."), metadata=agent
    )
    other = (await start(clients, bob)).session_id
    await say(clients, bob, other, "person now")
    await clients.chat.EndSession(chat_pb2.EndSessionRequest(session_id=other), metadata=bob)
    await clients.chat.ResolveEscalation(
        chat_pb2.ResolveEscalationRequest(session_id=sid), metadata=agent
    )
    seen = [await next_event(changes) for _ in range(6)]
    assert [(c.kind, c.session_id, c.escalation_level) for c in seen] == [
        ("joined", sid, 2),
        ("message", sid, 2),
        ("message", sid, 2),
        ("joined", other, 2),
        ("left", other, 2),
        ("left", sid, 0),
    ]
    assert all(c.HasField("occurred_at") for c in seen)
    watch.cancel()


async def test_an_agent_message_to_a_session_at_level_one_is_a_conflict(clients: Clients) -> None:
    ann, agent = await user(clients), await user(clients, admin=True)
    session = await start(clients, ann)
    await say(clients, ann, session.session_id, "hmm")
    for call in (
        clients.chat.SendAgentMessage(
            chat_pb2.SendAgentMessageRequest(session_id=session.session_id, content="hi"),
            metadata=agent,
        ),
        clients.chat.ResolveEscalation(
            chat_pb2.ResolveEscalationRequest(session_id=session.session_id), metadata=agent
        ),
    ):
        error = await failure(call)
        assert (error.code(), reason_of(error)) == (
            grpc.StatusCode.ABORTED,
            reasons.NOT_ESCALATED,
        )
    error = await failure(
        clients.chat.SendAgentMessage(
            chat_pb2.SendAgentMessageRequest(session_id=session.session_id, content=" "),
            metadata=agent,
        )
    )
    assert [v.field for v in violations_of(error)] == ["content"]


async def test_a_watcher_resumes_after_its_last_event(clients: Clients) -> None:
    created = await clients.chat.CreateSession(chat_pb2.CreateSessionRequest())
    sid, token = created.session.session_id, created.session_token
    request = chat_pb2.WatchSessionRequest(session_id=sid, session_token=token)
    live = clients.chat.WatchSession(request)
    await live.initial_metadata()
    events = live.__aiter__()
    await say(clients, None, sid, "temperature", token)
    await say(clients, None, sid, "person now", token)
    seen = [await next_event(events) for _ in range(7)]
    assert [e.kind for e in seen] == [
        "message",
        "typing",
        "message",
        "message",
        "typing",
        "message",
        "escalation",
    ]
    live.cancel()
    request.last_event_id = seen[1].event_id
    resumed = clients.chat.WatchSession(request)
    events = resumed.__aiter__()
    after = [await next_event(events) for _ in range(4)]
    # What came after, without the stale typing event.
    assert [e.event_id for e in after] == [e.event_id for e in seen if e.kind != "typing"][1:]
    resumed.cancel()
    # An id past any event (a uint64 beyond the databases' integers) replays nothing and
    # keeps the watch open; it was INTERNAL.
    request.last_event_id = 2**64 - 1
    beyond = clients.chat.WatchSession(request)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(beyond.read(), 2)
    beyond.cancel()
    error = await failure(
        clients.chat.WatchSession(chat_pb2.WatchSessionRequest(session_id=sid)).read()
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_help_articles_are_public(clients: Clients) -> None:
    listed = await clients.chat.ListHelpArticles(chat_pb2.ListHelpArticlesRequest())
    assert [a.slug for a in listed.articles] == ["enable-two-factor", "reset-password"]
    assert all(a.markdown == "" for a in listed.articles)
    article = await clients.chat.GetHelpArticle(
        chat_pb2.GetHelpArticleRequest(slug="enable-two-factor")
    )
    assert article.markdown.startswith("# MFA") and article.url == "/help/m"
    error = await failure(clients.chat.GetHelpArticle(chat_pb2.GetHelpArticleRequest(slug="x")))
    assert (error.code(), reason_of(error)) == (
        grpc.StatusCode.NOT_FOUND,
        reasons.ARTICLE_NOT_FOUND,
    )
