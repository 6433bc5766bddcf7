"""The event loop every process of the suite runs on: uvloop when it is installed.

uvloop (libuv under asyncio's API) spends markedly less CPU per wake-up than
asyncio's own selector loop, which the services' gRPC calls and the gateway's
HTTP pay on every request (BENCHMARKS §20). grpc.aio runs on any asyncio loop,
uvloop included. It is a dependency on Linux and macOS; where it is missing
(Windows) or ``IOT_EVENT_LOOP=asyncio`` asks for the standard loop (to rule
uvloop out when chasing a bug), asyncio's loop serves instead.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")

LOOP_ENV = "IOT_EVENT_LOOP"
"""``asyncio`` for the standard loop; anything else (or nothing) for uvloop when installed."""

LoopName = Literal["uvloop", "asyncio"]


def loop_name() -> LoopName:
    """The loop this process runs on: ``uvloop`` when installed and not turned off."""
    if os.environ.get(LOOP_ENV, "").strip().lower() == "asyncio":
        return "asyncio"
    try:
        importlib.import_module("uvloop")
    except ImportError:
        return "asyncio"
    return "uvloop"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """A factory of the chosen loop for :class:`asyncio.Runner`, or None for asyncio's own."""
    if loop_name() == "asyncio":
        return None
    import uvloop

    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
