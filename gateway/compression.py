"""Gzip for JSON answers and console files, never for live streams or packed files.

Starlette's GZipMiddleware compresses as the answer is sent. It leaves alone:
- ``text/event-stream``: Server-Sent Events must reach the browser event by event,
  and a compressor holds bytes back until it has enough to emit;
- answers that already carry a ``Content-Encoding``, and partial (206) ones;
- types that are compressed already (archives, images, audio, video, fonts) or
  opaque (``application/octet-stream``, often an archive too): compressing them
  again spends CPU to save nothing.
Other streaming answers (CSV exports) are flushed chunk by chunk, so they still
stream.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware

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


def compression() -> Middleware:
    """The gateway's gzip middleware."""
    return Middleware(
        GZipMiddleware,
        minimum_size=MINIMUM_SIZE,
        compresslevel=COMPRESS_LEVEL,
        exclude_content_types=UNCOMPRESSED_TYPES,
    )
