"""``iotkit.tasks.cancel`` ends a task and swallows only that task's cancellation."""

from __future__ import annotations

import asyncio

import pytest

from iotkit.tasks import cancel


async def test_the_task_is_cancelled_and_waited_for() -> None:
    forever = asyncio.create_task(asyncio.Event().wait())
    await asyncio.sleep(0)
    await cancel(forever)
    assert forever.cancelled()
    await cancel(None)  # nothing to stop


async def test_a_caller_cancelled_while_it_waits_stays_cancelled() -> None:
    # The task being stopped takes its time to end; meanwhile the caller itself is
    # cancelled (a loop closing). The caller must end cancelled, not carry on.
    release = asyncio.Event()

    async def slow_to_end() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await release.wait()
            raise

    stopped = asyncio.create_task(slow_to_end())
    await asyncio.sleep(0)
    carried_on = False

    async def stopper() -> None:
        nonlocal carried_on
        await cancel(stopped)
        carried_on = True

    caller = asyncio.create_task(stopper())
    await asyncio.sleep(0.01)
    caller.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert not carried_on
