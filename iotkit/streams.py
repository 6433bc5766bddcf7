"""Telling a client that a server stream was accepted, before its first message.

A live stream (new anomalies, a chat session's events) may stay quiet for long.
Its servicer calls :func:`open_stream` once it has accepted the call, which
sends the response headers with :data:`OPEN_HEADER`; a client such as the
gateway then knows the call is not refused without waiting for a message or
a clock. A refused call ends without headers.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, Generic, TypeVar

from grpc import aio

T = TypeVar("T")
M = TypeVar("M")

OPEN_HEADER = ("iot-stream", "open")
"""The header a server stream's servicer sends once it has accepted the call."""


async def open_stream(context: aio.ServicerContext[Any, Any]) -> None:
    """Send the stream's headers now: the caller and the request passed every check."""
    await context.send_initial_metadata((OPEN_HEADER,))


class Watch(Generic[T]):
    """A live stream's events, subscribed before they are handed over: a servicer that then
    calls :func:`open_stream` misses nothing its client does next. An async generator
    subscribes only when first read, which is after the client heard "open".

    Closing it ends the subscription (``close``) whether or not an event was ever read: a
    generator that never started runs no ``finally``."""

    def __init__(self, events: AsyncGenerator[T, None], close: Callable[[], object]) -> None:
        self._events = events
        self._close = close

    def __aiter__(self) -> Watch[T]:
        return self

    async def __anext__(self) -> T:
        return await anext(self._events)

    async def aclose(self) -> None:
        """Stop watching."""
        try:
            await self._events.aclose()
        finally:
            self._close()


async def serve_watch(
    context: aio.ServicerContext[Any, Any], watch: Watch[T], message: Callable[[T], M]
) -> AsyncIterator[M]:
    """A server stream's messages: the client is told the watch is open (``watch`` is
    already subscribed), then each event as ``message`` makes it; the watch is closed
    however the stream ends (the client gone, the server stopping)."""
    try:
        await open_stream(context)
        async for event in watch:
            yield message(event)
    finally:
        await watch.aclose()
