"""Helpers of the alert tests: a small webhook receiver and how to check its signatures.

The receiver is a real HTTP server on 127.0.0.1 (in a thread, so it answers
whatever the test's event loop is doing) that keeps every call and answers
the statuses it is told to, 200 when told nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Call:
    """One webhook call received."""

    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        """The body as JSON."""
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    def verify(self, secret: str) -> bool:
        """True when the signature is the HMAC-SHA256 of ``<timestamp>.<body>`` with ``secret``,
        as a receiver checks it."""
        stamp = self.headers["x-iot-timestamp"]
        expected = hmac.new(secret.encode(), f"{stamp}.".encode() + self.body, hashlib.sha256)
        return hmac.compare_digest(
            self.headers["x-iot-signature"], "sha256=" + expected.hexdigest()
        )


@dataclass
class Receiver:
    """What the receiver got; it answers ``statuses`` in turn, then 200."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    hold: threading.Event | None = None
    """When given, each call is kept (and counted) at once but answered only once it is set."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, headers: dict[str, str], body: bytes) -> int:
        """Keep a call; answers the status to reply."""
        with self._lock:
            self.calls.append(Call(headers, body))
            return self.statuses.pop(0) if self.statuses else 200

    async def wait(self, count: int = 1, *, within: float = 10.0) -> list[Call]:
        """The first ``count`` calls, once they came."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.calls) >= count:
                    return list(self.calls[:count])
            await asyncio.sleep(0.02)
        raise AssertionError(f"{len(self.calls)} webhook calls, not {count}")


@contextmanager
def webhook_receiver(
    statuses: list[int] | None = None, *, hold: threading.Event | None = None
) -> Iterator[Receiver]:
    """A webhook receiver on a port the OS chose (answering once ``hold`` is set, if given)."""
    receiver = Receiver(statuses=list(statuses or []), hold=hold)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = receiver.take({k.lower(): v for k, v in self.headers.items()}, body)
            if receiver.hold is not None:
                receiver.hold.wait(timeout=60)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        if hold is not None:
            hold.set()
        server.shutdown()
        server.server_close()
