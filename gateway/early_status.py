"""The status a service really sent when it ended a raw upload early.

grpcio's asyncio client has a race (grpc/grpc#36066, fix pending in
grpc/grpc#43486): when a service ends a client-streaming call while a write
is still in flight, the failed write stores ``INTERNAL: Internal error from
Core`` as the call's status, over the status the service sent if that one was
processed first. The gateway would then answer 500 for what was, say, a 404.

A done callback runs each time the call's status is set, so
:class:`StatusWatch` keeps the last status that is not that local placeholder;
:meth:`StatusWatch.error` gives the service's own error in its place.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

import grpc

LOCAL_WRITE_FAILURE = "Internal error from Core"
"""The details grpcio gives the status it invents for a failed write."""

T = TypeVar("T")


def _settled(accessor: Coroutine[Any, Any, T]) -> T:
    """The result of a done call's status accessor, which returns without waiting."""
    try:
        accessor.send(None)
    except StopIteration as finished:
        return finished.value  # type: ignore[no-any-return]
    accessor.close()
    raise RuntimeError("a done call's status accessor had to wait")


def _is_local_write_failure(code: grpc.StatusCode, details: str | None) -> bool:
    return code is grpc.StatusCode.INTERNAL and details == LOCAL_WRITE_FAILURE


class StatusWatch:
    """Remembers the status the service sent on ``call``, whatever grpcio stores later."""

    def __init__(self, call: grpc.aio.Call) -> None:
        self.sent: grpc.aio.AioRpcError | None = None
        call.add_done_callback(self._on_status)

    def _on_status(self, call: grpc.aio.Call) -> None:
        code = _settled(call.code())
        details = _settled(call.details())
        if code is grpc.StatusCode.OK or _is_local_write_failure(code, details):
            return
        self.sent = grpc.aio.AioRpcError(
            code,
            _settled(call.initial_metadata()),
            _settled(call.trailing_metadata()),
            details,
        )

    def error(self, raised: grpc.aio.AioRpcError) -> grpc.aio.AioRpcError:
        """``raised``, or the service's own error when ``raised`` is the local placeholder."""
        if self.sent is not None and _is_local_write_failure(raised.code(), raised.details()):
            return self.sent
        return raised
