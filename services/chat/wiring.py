"""Assembles the chat process: its database, the chat service and its servicer."""

from __future__ import annotations

from collections.abc import Callable

from grpc import aio

from iot.chat.v1 import chat_pb2, chat_pb2_grpc
from iotkit.config import Settings
from iotkit.process import Parts, build_service
from iotkit.server import Registrar, ServiceProcess
from services.chat.chat.fallback import FallbackAssistant, NoHelpArticles
from services.chat.chat.hub import EventHub
from services.chat.chat.service import ChatService
from services.chat.chat.servicer import ChatServicer
from services.chat.chat.store import Base, ChatStore
from services.chat.chat.values import Assistant, HelpArticles


def _registrar(assistant: Assistant, help: HelpArticles) -> Callable[[Parts], Registrar]:
    def registrar(parts: Parts) -> Registrar:
        service = ChatService(
            store=ChatStore(parts.database.sessions), assistant=assistant, help=help, hub=EventHub()
        )

        def register(server: aio.Server) -> list[str]:
            chat_pb2_grpc.add_ChatServiceServicer_to_server(ChatServicer(service), server)
            return [chat_pb2.DESCRIPTOR.services_by_name["ChatService"].full_name]

        return register

    return registrar


async def build(
    settings: Settings,
    *,
    address: str,
    schema: str | None = None,
    assistant: Assistant | None = None,
    help: HelpArticles | None = None,
) -> ServiceProcess:
    """Build the chat server bound to ``address``; tests may give their own assistant
    and help library (the built-in fallbacks answer otherwise)."""
    return await build_service(
        settings,
        service="chat",
        metadata=Base.metadata,
        address=address,
        schema=schema,
        register=_registrar(assistant or FallbackAssistant(), help or NoHelpArticles()),
    )
