"""Gzip for JSON answers and console files, never for live streams or packed files.

Starlette's GZipMiddleware compresses as the answer is sent. It leaves alone:
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
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
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


class WeakTagsWhenEncoded:
    """Marks the ETag of an answer that carries a Content-Encoding as weak (``W/``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection, weakening the tag on the way out."""

        async def send_weak(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                etag = headers.get("etag")
                if etag and not etag.startswith("W/") and "content-encoding" in headers:
                    headers["etag"] = f"W/{etag}"
            await send(message)

        await self.app(scope, receive, send_weak)


def compression() -> list[Middleware]:
    """The gateway's gzip middleware, inside the one that weakens compressed answers' tags."""
    return [
        Middleware(WeakTagsWhenEncoded),
        Middleware(
            GZipMiddleware,
            minimum_size=MINIMUM_SIZE,
            compresslevel=COMPRESS_LEVEL,
            exclude_content_types=UNCOMPRESSED_TYPES,
        ),
    ]
