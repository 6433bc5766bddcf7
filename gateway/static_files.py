"""One static file of the console, served with validators so that browsers revalidate it.

Every file is answered with ``Cache-Control: no-cache``, a strong ``ETag`` and
``Last-Modified``; a request whose ``If-None-Match`` holds the current tag gets
a bodiless 304. Why not content-hashed names with ``immutable``: the console has
no build step. Its ES modules import each other by plain relative names
(``./lib.js``), so hashing the names would mean rewriting every import, which is
a build. A long ``max-age`` on an unhashed name would instead let a browser mix
an old module with a new one after an upgrade. Revalidation costs a round trip
of headers per file and never serves a stale console.

The tag is a hash of the file's bytes rather than of its modification time, so
that replicas behind a load balancer (each with its own checkout or image) agree
on it; it is recomputed when the file's size or mtime change, so an edited file
is seen at once while developing.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from email.utils import formatdate
from pathlib import Path

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import FileResponse, Response

REVALIDATE = "no-cache"
"""Cache-Control of every console file: keep it, but ask before each use."""


def _content_tag(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:32]
    return f'"{digest}"'


def _matches(if_none_match: str, tag: str) -> bool:
    """RFC 9110 13.1.2: a weak comparison of ``tag`` with each listed tag, or ``*``."""
    listed = {item.strip().removeprefix("W/") for item in if_none_match.split(",")}
    return "*" in listed or tag in listed


class StaticFile:
    """The handler of one file: 200 with validators, or 304 when the browser's copy is current."""

    def __init__(self, path: Path, headers: Mapping[str, str]) -> None:
        self.path = path
        self.headers = {**headers, "Cache-Control": REVALIDATE}
        self._stamp: tuple[int, int] | None = None
        self._tag = ""

    async def _etag(self, stat: os.stat_result) -> str:
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._tag = await anyio.to_thread.run_sync(_content_tag, self.path)
            self._stamp = stamp
        return self._tag

    async def __call__(self, request: Request, params: Mapping[str, str]) -> Response:
        """Serve the file, or 304 when ``If-None-Match`` names its current content."""
        stat = await anyio.to_thread.run_sync(os.stat, self.path)
        validators = {
            "ETag": await self._etag(stat),
            "Last-Modified": formatdate(stat.st_mtime, usegmt=True),
        }
        if_none_match = request.headers.get("if-none-match")
        if if_none_match is not None and _matches(if_none_match, validators["ETag"]):
            # A 304 repeats the headers a cache would update (RFC 9110 15.4.5).
            return Response(status_code=304, headers={**self.headers, **validators})
        return FileResponse(self.path, headers={**self.headers, **validators}, stat_result=stat)
