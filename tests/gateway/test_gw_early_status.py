"""StatusWatch: the service's own status survives grpcio's failed-write placeholder.

The race itself (grpc/grpc#36066) is exercised end to end by
``test_gw_imports.py::test_an_early_refusal_is_answered_as_itself``, but only
some runs hit it; these tests replay both orders of events deterministically.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from gateway.early_status import LOCAL_WRITE_FAILURE, StatusWatch


class ReplayedCall:
    """A finished call whose status is set, as grpcio does, one status after another."""

    def __init__(self) -> None:
        self.code_now = grpc.StatusCode.UNKNOWN
        self.details_now = ""
        self.trailing: tuple[tuple[str, str], ...] = ()
        self.callbacks: list[Callable[[Any], None]] = []

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        self.callbacks.append(callback)

    def set_status(self, code: grpc.StatusCode, details: str, trailing: Any = ()) -> None:
        self.code_now, self.details_now, self.trailing = code, details, tuple(trailing)
        for callback in self.callbacks:
            callback(self)

    async def code(self) -> grpc.StatusCode:
        return self.code_now

    async def details(self) -> str:
        return self.details_now

    async def initial_metadata(self) -> grpc.aio.Metadata:
        return grpc.aio.Metadata()

    async def trailing_metadata(self) -> grpc.aio.Metadata:
        return grpc.aio.Metadata(*self.trailing)

    def raised(self) -> grpc.aio.AioRpcError:
        """What awaiting the call raises now."""
        return grpc.aio.AioRpcError(
            self.code_now, grpc.aio.Metadata(), grpc.aio.Metadata(), self.details_now
        )


def test_the_service_status_wins_when_the_failed_write_overwrote_it() -> None:
    call = ReplayedCall()
    watch = StatusWatch(call)  # type: ignore[arg-type]
    call.set_status(grpc.StatusCode.NOT_FOUND, "No such upload", [("x-reason", "gone")])
    call.set_status(grpc.StatusCode.INTERNAL, LOCAL_WRITE_FAILURE)

    error = watch.error(call.raised())
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert error.details() == "No such upload"
    assert ("x-reason", "gone") in list(error.trailing_metadata() or ())


def test_the_final_status_stands_when_the_service_status_came_last() -> None:
    call = ReplayedCall()
    watch = StatusWatch(call)  # type: ignore[arg-type]
    call.set_status(grpc.StatusCode.INTERNAL, LOCAL_WRITE_FAILURE)
    call.set_status(grpc.StatusCode.PERMISSION_DENIED, "Not your device")

    error = watch.error(call.raised())
    assert (error.code(), error.details()) == (grpc.StatusCode.PERMISSION_DENIED, "Not your device")


def test_a_genuine_internal_error_is_not_replaced() -> None:
    call = ReplayedCall()
    watch = StatusWatch(call)  # type: ignore[arg-type]
    call.set_status(grpc.StatusCode.INTERNAL, "disk full")

    error = watch.error(call.raised())
    assert (error.code(), error.details()) == (grpc.StatusCode.INTERNAL, "disk full")


def test_the_placeholder_alone_is_passed_on() -> None:
    call = ReplayedCall()
    watch = StatusWatch(call)  # type: ignore[arg-type]
    call.set_status(grpc.StatusCode.INTERNAL, LOCAL_WRITE_FAILURE)

    error = watch.error(call.raised())
    assert (error.code(), error.details()) == (grpc.StatusCode.INTERNAL, LOCAL_WRITE_FAILURE)
