"""gRPC <-> domain translation for ``iot.chat.v1.ChatService``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeAlias

from grpc import aio

from iot.chat.v1 import chat_pb2, chat_pb2_grpc
from iotkit.context import current_caller, optional_caller
from iotkit.convert import timestamp
from iotkit.listing import pagination
from iotkit.streams import open_stream, serve_watch
from services.chat.chat.service import ChatService
from services.chat.chat.values import (
    Article,
    ChatEvent,
    ChatMessage,
    ChatSession,
    Facts,
    SessionWithMessages,
)

Context: TypeAlias = aio.ServicerContext[Any, Any]


def facts_message(facts: Facts) -> chat_pb2.Facts:
    """What a reply used."""
    return chat_pb2.Facts(
        device_ids=facts.device_ids,
        stream_ids=facts.stream_ids,
        start=timestamp(facts.start),
        end=timestamp(facts.end),
        articles=facts.articles,
    )


def message_message(message: ChatMessage) -> chat_pb2.ChatMessage:
    """A message as the API shows it (seed 000 ChatMessageDTO)."""
    return chat_pb2.ChatMessage(
        message_id=message.id,
        content=message.content,
        is_bot=message.is_bot,
        sent_at=timestamp(message.sent_at),
        author=message.author,
        intent=message.intent,
        confidence=message.confidence,
        facts=None if message.facts is None else facts_message(message.facts),
        session_id=message.session_id,
    )


def session_message(
    session: ChatSession, messages: tuple[ChatMessage, ...] = ()
) -> chat_pb2.ChatSession:
    """A session as the API shows it (seed 000 ChatSessionDTO)."""
    return chat_pb2.ChatSession(
        session_id=session.id,
        user_id=session.user_id or "",
        started_at=timestamp(session.started_at),
        ended_at=timestamp(session.ended_at),
        messages=[message_message(message) for message in messages],
        escalation_level=session.escalation_level,
        message_count=session.message_count,
        escalated_at=timestamp(session.escalated_at),
        resolved_at=timestamp(session.resolved_at),
    )


def _full(found: SessionWithMessages) -> chat_pb2.ChatSession:
    return session_message(found.session, found.messages)


def event_message(event: ChatEvent) -> chat_pb2.SessionEvent:
    """One event of a session's stream."""
    return chat_pb2.SessionEvent(
        event_id=event.id,
        kind=event.kind,
        session_id=event.session_id,
        message=None if event.message is None else message_message(event.message),
        escalation_level=event.escalation_level,
        occurred_at=timestamp(event.occurred_at),
    )


def article_message(article: Article, *, with_text: bool) -> chat_pb2.HelpArticle:
    """A help article, with its Markdown or (in lists) without."""
    return chat_pb2.HelpArticle(
        slug=article.slug,
        title=article.title,
        markdown=article.markdown if with_text else "",
        url=article.url,
    )


class ChatServicer(chat_pb2_grpc.ChatServiceServicer):
    """Each RPC reads its message, calls the service and builds the answer."""

    def __init__(self, service: ChatService) -> None:
        self._service = service

    async def CreateSession(
        self, request: chat_pb2.CreateSessionRequest, context: Context
    ) -> chat_pb2.CreateSessionResponse:
        """Start a session."""
        created = await self._service.create_session(caller=optional_caller())
        return chat_pb2.CreateSessionResponse(
            session=session_message(created.session), session_token=created.token or ""
        )

    async def ListSessions(
        self, request: chat_pb2.ListSessionsRequest, context: Context
    ) -> chat_pb2.ListSessionsResponse:
        """A page of the caller's sessions."""
        page = await self._service.list_sessions(
            caller=current_caller(), page=request.page, limit=request.limit
        )
        return chat_pb2.ListSessionsResponse(
            sessions=[_full(found) for found in page.sessions],
            pagination=pagination(page.request, page.total),
        )

    async def GetSession(
        self, request: chat_pb2.GetSessionRequest, context: Context
    ) -> chat_pb2.ChatSession:
        """One session with its messages."""
        found = await self._service.get_session(
            caller=optional_caller(), session_id=request.session_id, token=request.session_token
        )
        return _full(found)

    async def SendMessage(
        self, request: chat_pb2.SendMessageRequest, context: Context
    ) -> chat_pb2.SendMessageResponse:
        """The user's message and the reply."""
        exchange = await self._service.send_message(
            caller=optional_caller(),
            session_id=request.session_id,
            token=request.session_token,
            content=request.content,
        )
        return chat_pb2.SendMessageResponse(
            message=message_message(exchange.message),
            reply=None if exchange.reply is None else message_message(exchange.reply),
            escalation_level=exchange.escalation_level,
        )

    async def EndSession(
        self, request: chat_pb2.EndSessionRequest, context: Context
    ) -> chat_pb2.ChatSession:
        """End a session."""
        found = await self._service.end_session(
            caller=optional_caller(), session_id=request.session_id, token=request.session_token
        )
        return _full(found)

    async def WatchSession(
        self, request: chat_pb2.WatchSessionRequest, context: Context
    ) -> AsyncIterator[chat_pb2.SessionEvent]:
        """The session's events, replayed after ``last_event_id`` then live."""
        # Subscribed before the client hears the watch is open: it may send a message next.
        events = await self._service.watch(
            caller=optional_caller(),
            session_id=request.session_id,
            token=request.session_token,
            after=request.last_event_id,
        )
        async for message in serve_watch(context, events, event_message):
            yield message

    async def WatchQueue(
        self, request: chat_pb2.WatchQueueRequest, context: Context
    ) -> AsyncIterator[chat_pb2.QueueEvent]:
        """The agents' queue's changes as they happen."""
        subscription = self._service.watch_queue(caller=current_caller())
        try:
            await open_stream(context)
            async for change in subscription.events():
                yield chat_pb2.QueueEvent(
                    kind=change.kind,
                    session_id=change.session_id,
                    escalation_level=change.escalation_level,
                    occurred_at=timestamp(change.occurred_at),
                )
        finally:
            subscription.close()

    async def ListEscalations(
        self, request: chat_pb2.ListEscalationsRequest, context: Context
    ) -> chat_pb2.ListEscalationsResponse:
        """The agents' queue."""
        page = await self._service.escalations(
            caller=current_caller(), page=request.page, limit=request.limit
        )
        return chat_pb2.ListEscalationsResponse(
            sessions=[_full(found) for found in page.sessions],
            pagination=pagination(page.request, page.total),
        )

    async def SendAgentMessage(
        self, request: chat_pb2.SendAgentMessageRequest, context: Context
    ) -> chat_pb2.ChatMessage:
        """An agent's reply."""
        message = await self._service.send_agent_message(
            caller=current_caller(), session_id=request.session_id, content=request.content
        )
        return message_message(message)

    async def ResolveEscalation(
        self, request: chat_pb2.ResolveEscalationRequest, context: Context
    ) -> chat_pb2.ChatSession:
        """Close an escalation."""
        return _full(
            await self._service.resolve(caller=current_caller(), session_id=request.session_id)
        )

    async def ListHelpArticles(
        self, request: chat_pb2.ListHelpArticlesRequest, context: Context
    ) -> chat_pb2.ListHelpArticlesResponse:
        """Every help article."""
        return chat_pb2.ListHelpArticlesResponse(
            articles=[
                article_message(article, with_text=False) for article in self._service.articles()
            ]
        )

    async def GetHelpArticle(
        self, request: chat_pb2.GetHelpArticleRequest, context: Context
    ) -> chat_pb2.HelpArticle:
        """One help article."""
        return article_message(self._service.article(slug=request.slug), with_text=True)
