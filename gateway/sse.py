"""Server-Sent Events: how server-streaming RPCs reach browsers.

Each streamed message is one ``data:`` line of JSON, with an ``id:`` line
when the message has an ``event_id`` field; a reconnecting browser sends the
last id back in ``Last-Event-ID``, which fills the request's
``last_event_id`` field when it has one. A failure mid-stream is an
``event: error`` carrying the failure envelope. The response watches for
the browser going away and then closes the event source, which cancels the
gRPC call instead of leaving it running until the next message.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

import anyio
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

EVENT_ID_FIELD = "event_id"
"""A streamed message's field that becomes the event's ``id:``."""
LAST_EVENT_ID_FIELD = "last_event_id"
"""A streaming request's field that the ``Last-Event-ID`` header fills."""


def with_last_event_id(
    request: Descriptor, query: Sequence[tuple[str, str]], header: str | None
) -> list[tuple[str, str]]:
    """The query parameters with ``Last-Event-ID`` as ``last_event_id`` when the request
    message has that field. The header wins over the query: a reconnecting browser keeps
    the stream's URL but sends the id it saw last."""
    if not header or not header.strip() or LAST_EVENT_ID_FIELD not in request.fields_by_name:
        return list(query)
    kept = [(key, value) for key, value in query if key != LAST_EVENT_ID_FIELD]
    return [*kept, (LAST_EVENT_ID_FIELD, header.strip())]


def _json(payload: Any) -> str:
    # Compact JSON never holds a raw newline, so one event is always one data line.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def data_event(payload: Any, *, event_id: str | None = None) -> bytes:
    """One ``data:`` event holding ``payload`` as JSON, with its ``id:`` when given
    (the browser sends the last one back as ``Last-Event-ID`` when it reconnects)."""
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}data: {_json(payload)}\n\n".encode()


def event_id_of(message: Message) -> str | None:
    """The SSE id of a streamed message: its ``event_id`` field, when it has one."""
    if EVENT_ID_FIELD not in message.DESCRIPTOR.fields_by_name:
        return None
    value = getattr(message, EVENT_ID_FIELD)
    # An id must not hold a line break; the field is a number or a plain token.
    return "".join(str(value).split()) or None


def error_event(envelope: Any) -> bytes:
    """One ``event: error`` holding the failure envelope."""
    return f"event: error\ndata: {_json(envelope)}\n\n".encode()


class EventStreamResponse(Response):
    """A ``text/event-stream`` response fed by an async generator of encoded events."""

    media_type = "text/event-stream"

    def __init__(
        self, events: AsyncGenerator[bytes, None], headers: Mapping[str, str] | None = None
    ) -> None:
        # Like StreamingResponse, skip Response.__init__: it would declare a zero Content-Length.
        self.status_code = 200
        self.background = None
        self.events = events
        # Proxies such as nginx buffer responses unless told not to.
        self.init_headers(
            {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})}
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the events until they end or the client disconnects."""
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        async with anyio.create_task_group() as group:

            async def watch_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(watch_disconnect)
            try:
                async for chunk in self.events:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                pass  # The client went away while we were writing.
            finally:
                with anyio.CancelScope(shield=True):
                    await self.events.aclose()
                group.cancel_scope.cancel()
