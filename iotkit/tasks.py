"""Background tasks: the one way a process stops one of its own."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (nothing when None) and wait until it has ended.

    The task's own cancellation is swallowed; the caller's is not: were the caller
    cancelled while it waits (a process shutting down, a test's loop closing), a plain
    ``suppress(CancelledError)`` would eat that too and leave the caller running."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


async def finish(task: asyncio.Task[Any] | None, *, within: float) -> None:
    """Let ``task`` end by itself for up to ``within`` seconds, then cancel it (as
    :func:`cancel` does); the caller's own cancellation is never swallowed."""
    if task is None:
        return
    done, _ = await asyncio.wait({task}, timeout=within)
    if not done:
        await cancel(task)
    elif not task.cancelled():
        task.result()
