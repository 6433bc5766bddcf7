"""Server-Sent Events: how server-streaming RPCs reach browsers.

Each streamed message is one ``data:`` line of JSON; a failure mid-stream is
an ``event: error`` carrying the failure envelope. The response watches for
the browser going away and then closes the event source, which cancels the
gRPC call instead of leaving it running until the next message.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send


def _json(payload: Any) -> str:
    # Compact JSON never holds a raw newline, so one event is always one data line.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def data_event(payload: Any) -> bytes:
    """One ``data:`` event holding ``payload`` as JSON."""
    return f"data: {_json(payload)}\n\n".encode()


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
