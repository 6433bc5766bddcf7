"""Gzip for JSON answers and console files, never for live streams or packed files.

Answers are compressed as they are sent, by Starlette's gzip responders. They leave alone:
- ``text/event-stream``: Server-Sent Events must reach the browser event by event,
  and a compressor holds bytes back until it has enough to emit;
- answers that already carry a ``Content-Encoding``, and partial (206) ones;
- types that are compressed already (archives, images, audio, video, fonts) or
  opaque (``application/octet-stream``, often an archive too): compressing them
  again spends CPU to save nothing.
Other streaming answers (CSV exports) are flushed chunk by chunk, so they still
stream. A compressed answer's ETag is made weak, as nginx does: a strong tag
promises the same bytes, and a client that sent it back in ``If-Range`` would
get a byte range of the uncompressed file spliced into the compressed one.

Most answers are one small body (a device, an error): :class:`Compression` sends those
as they are without building a responder, which is what the responder would do with
them too, and hands every other answer to one (BENCHMARKS §20: the two Starlette layers
this replaces cost a cheap read about 10 µs).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.gzip import (
    DEFAULT_EXCLUDED_CONTENT_TYPES,
    GZipResponder,
    IdentityResponder,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MINIMUM_SIZE = 1024
"""Smaller answers fit in a packet or two anyway; gzip's header and CPU would not pay."""

COMPRESS_LEVEL = 6
"""zlib's default: most of level 9's gain for much less CPU on every JSON answer."""

UNCOMPRESSED_TYPES = (
    *DEFAULT_EXCLUDED_CONTENT_TYPES,
    "application/octet-stream",
    "application/x-7z-compressed",
    "application/x-bzip2",
    "application/x-xz",
    "application/zstd",
)
"""Media types sent as they are (``text/event-stream`` is among Starlette's defaults)."""

_START = "http.response.start"
_BODY = "http.response.body"


def _accepts_gzip(scope: Scope) -> bool:
    """Whether the request's (first) ``Accept-Encoding`` names gzip, as Starlette reads it."""
    for key, value in scope["headers"]:
        if key == b"accept-encoding":
            return b"gzip" in value
    return False


def _weak_tag(message: Message) -> None:
    """Make the ETag of a start message whose answer carries a Content-Encoding weak."""
    headers = MutableHeaders(scope=message)
    etag = headers.get("etag")
    if etag and not etag.startswith("W/") and "content-encoding" in headers:
        headers["etag"] = f"W/{etag}"


class Compression:
    """Starlette's gzip middleware, with weak tags for encoded answers and a short way for
    small answers."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        minimum_size: int = MINIMUM_SIZE,
        compresslevel: int = COMPRESS_LEVEL,
        exclude_content_types: tuple[str, ...] = UNCOMPRESSED_TYPES,
    ) -> None:
        self.app = app
        self.minimum_size = minimum_size
        self.compresslevel = compresslevel
        self.excluded = frozenset(
            kind.partition(";")[0].strip().lower() for kind in exclude_content_types
        )
        self._exclude_content_types = exclude_content_types

    def _passes(self, message: Message) -> bool:
        """True when a start message's answer is sent as it is: encoded already, partial, or
        of an excluded type (Starlette's tests, from one look at the headers)."""
        if message["status"] == 206:
            return True
        media_type = ""
        for key, value in message.get("headers", ()):
            if key == b"content-encoding":
                return True
            if key == b"content-type" and not media_type:
                media_type = value.decode("latin-1").partition(";")[0].strip().lower()
        kinds = {media_type, media_type.partition("/")[0] + "/*"}
        if media_type.startswith("application/grpc+"):
            kinds.add("application/grpc")
        return not self.excluded.isdisjoint(kinds)

    def _responder(self, scope: Scope) -> IdentityResponder:
        if _accepts_gzip(scope):
            return GZipResponder(
                self.app,
                self.minimum_size,
                compresslevel=self.compresslevel,
                exclude_content_types=self._exclude_content_types,
            )
        return IdentityResponder(
            self.app, self.minimum_size, exclude_content_types=self._exclude_content_types
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection, compressing what is worth it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        direct = False  # every message from here on goes out as it is
        responder: IdentityResponder | None = None

        async def send_weak(message: Message) -> None:
            if message["type"] == _START:
                _weak_tag(message)
            await send(message)

        async def send_compressed(message: Message) -> None:
            nonlocal held, direct, responder
            if direct:
                await send(message)
                return
            if responder is not None:
                await responder.send_with_compression(message)
                return
            kind = message["type"]
            if held is None and kind == _START:
                if self._passes(message):
                    direct = True
                    await send_weak(message)
                else:
                    held = message
                return
            if (
                held is not None
                and kind == _BODY
                and not message.get("more_body", False)
                and len(message.get("body", b"")) < self.minimum_size
            ):
                # One small body: no responder would touch it, nor its headers.
                direct = True
                await send(held)
                await send(message)
                return
            # Anything else takes Starlette's responder, told what it has missed.
            responder = self._responder(scope)
            responder.send = send_weak
            if held is not None:
                await responder.send_with_compression(held)
            await responder.send_with_compression(message)

        await self.app(scope, receive, send_compressed)


def compression() -> list[Middleware]:
    """The gateway's gzip middleware, which weakens compressed answers' tags."""
    return [Middleware(Compression)]
