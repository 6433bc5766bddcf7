"""uvicorn's httptools protocol with a time limit on a request's head.

uvicorn times a connection only while it idles between requests (its keep-alive
timeout); a client that opens a connection and sends nothing, or sends part of a
request line and headers and then stalls, holds it for ever (slowloris), and
enough of them use up the process's file descriptors. This protocol closes a
connection whose request head (the request line and headers) is not complete
:attr:`TimedHeadProtocol.head_timeout` seconds after the connection opened or
the request began. The body is timed by the app (``IOT_GATEWAY_BODY_TIMEOUT``).

A class at module level, so that uvicorn's worker processes can import it.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD_TIMEOUT = 10.0
"""Seconds a client has to send a request's line and headers: a real client sends them
in one write, so this only ever catches one that stalls on purpose or is broken."""


class TimedHeadProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` that closes a connection stalled in a request's head."""

    head_timeout: float = HEAD_TIMEOUT
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Serve a new connection, its first request's head timed from now."""
        super().connection_made(transport)
        self._arm_head_timer()

    def on_message_begin(self) -> None:
        """A request begins: its head is timed (again, for a kept-alive connection)."""
        super().on_message_begin()
        self._arm_head_timer()

    def on_headers_complete(self) -> None:
        """The head arrived in time."""
        self._disarm_head_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection ended, by either side."""
        self._disarm_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()
