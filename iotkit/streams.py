"""Telling a client that a server stream was accepted, before its first message.

A live stream (new anomalies, a chat session's events) may stay quiet for long.
Its servicer calls :func:`open_stream` once it has accepted the call, which
sends the response headers with :data:`OPEN_HEADER`; a client such as the
gateway then knows the call is not refused without waiting for a message or
a clock. A refused call ends without headers.
"""

from __future__ import annotations

from typing import Any

from grpc import aio

OPEN_HEADER = ("iot-stream", "open")
"""The header a server stream's servicer sends once it has accepted the call."""


async def open_stream(context: aio.ServicerContext[Any, Any]) -> None:
    """Send the stream's headers now: the caller and the request passed every check."""
    await context.send_initial_metadata((OPEN_HEADER,))
