"""Assembles the chat process: its database, the assistant (NLU, help articles, clients of
the other services, the optional language model), the chat service and its servicer."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

from grpc import aio

from iot.chat.v1 import chat_pb2, chat_pb2_grpc
from iotkit.config import Settings
from iotkit.migrations import History
from iotkit.process import Parts, build_service
from iotkit.server import Registrar, ServiceProcess, channel
from services.chat.chat.assistant import SupportAssistant
from services.chat.chat.help.library import HelpLibrary
from services.chat.chat.hub import EventHub
from services.chat.chat.llm import Phraser
from services.chat.chat.nlu.understanding import Understander
from services.chat.chat.service import ChatService
from services.chat.chat.servicer import ChatServicer
from services.chat.chat.store import Base, ChatStore
from services.chat.chat.values import Assistant, HelpArticles
from services.chat.clients import GrpcSources
from services.chat.settings import ChatSettings

MIGRATIONS = History(
    service="chat", directory=Path(__file__).with_name("migrations"), metadata=Base.metadata
)
"""The chat service's schema history, applied at start and by ``iot migrate``."""

QUEUE_SAMPLE_SECONDS = 10.0
"""How often the agents' queue is counted for its gauge."""


def _registrar(
    assistant: Assistant | None, help: HelpArticles | None
) -> Callable[[Parts], Registrar]:
    def registrar(parts: Parts) -> Registrar:
        library = _packaged_library()
        answering = assistant or _assistant(parts, library)
        store = ChatStore(parts.database.sessions)

        async def waiting() -> float:
            _, total = await store.escalated(offset=0, limit=1)
            return float(total)

        parts.metrics.sampled_gauge(
            "iot_chat_escalations_waiting",
            "Chat sessions waiting for a person (the agents' queue).",
            waiting,
            period=QUEUE_SAMPLE_SECONDS,
        )
        service = ChatService(
            store=store,
            assistant=answering,
            help=help or library,
            hub=EventHub(),
        )

        def register(server: aio.Server) -> list[str]:
            chat_pb2_grpc.add_ChatServiceServicer_to_server(ChatServicer(service), server)
            return [chat_pb2.DESCRIPTOR.services_by_name["ChatService"].full_name]

        return register

    return registrar


# The help index and the trained understander depend only on files packaged with the
# code and are never changed after they are built, so a process builds each once: a
# restarted service (and the tests, which build chat many times in one process) reuse them.
@cache
def _packaged_library() -> HelpLibrary:
    return HelpLibrary.load()


@cache
def _packaged_understander() -> Understander:
    return Understander.trained()


def _assistant(parts: Parts, library: HelpLibrary) -> SupportAssistant:
    """The built-in assistant over gRPC clients of the other services (the NLU trains here,
    in well under a second), phrased by a language model when IOT_CHAT_LLM_URL is set."""
    settings = parts.settings
    channels = {
        name: channel(settings.address(name)) for name in ("devices", "telemetry", "analytics")
    }
    parts.closers.extend(open_channel.close for open_channel in channels.values())
    phraser = None
    if isinstance(settings, ChatSettings) and settings.chat_llm_url:
        phraser = Phraser(
            url=settings.chat_llm_url,
            model=settings.chat_llm_model,
            api_key=settings.chat_llm_api_key,
        )
        parts.closers.append(phraser.aclose)
    return SupportAssistant(
        understander=_packaged_understander(),
        library=library,
        sources=GrpcSources(auth=parts.auth_channel, **channels),
        phraser=phraser,
    )


async def build(
    settings: Settings,
    *,
    address: str,
    schema: str | None = None,
    assistant: Assistant | None = None,
    help: HelpArticles | None = None,
) -> ServiceProcess:
    """Build the chat server bound to ``address``; tests may give their own assistant
    and help library (the built-in assistant and the packaged articles otherwise)."""
    return await build_service(
        settings,
        history=MIGRATIONS,
        address=address,
        schema=schema,
        register=_registrar(assistant, help),
    )
