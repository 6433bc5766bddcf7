"""``iotkit.tasks.cancel`` and ``finish`` end a task and swallow only that task's
cancellation; ``iotkit.server.bounded_step`` never waits for ever on a stuck closer."""

from __future__ import annotations

import asyncio

import pytest

from iotkit.server import ServiceProcess, bounded_step
from iotkit.tasks import cancel, finish


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


async def test_finish_lets_a_task_end_by_itself_then_cancels_one_that_does_not() -> None:
    ended = asyncio.create_task(asyncio.sleep(0.01, result="done"))
    await finish(ended, within=5)
    assert ended.result() == "done"
    forever = asyncio.create_task(asyncio.Event().wait())
    await finish(forever, within=0.01)
    assert forever.cancelled()
    await finish(None, within=1)


async def _stubborn(started: asyncio.Event) -> None:
    """Ignores every cancellation: the kind of step that hung a test's teardown."""
    started.set()
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            continue


async def test_a_stuck_step_is_logged_by_name_and_left_behind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    started = asyncio.Event()
    await bounded_step(_stubborn(started), "stubborn close", 0.05)
    assert started.is_set()
    assert [(r.levelname, r.getMessage(), r.step) for r in caplog.records] == [  # type: ignore[attr-defined]
        ("ERROR", "closing step did not finish; left behind", "stubborn close")
    ]
    for task in asyncio.all_tasks() - {asyncio.current_task()}:
        task.get_coro().close()  # type: ignore[union-attr]


async def test_a_step_that_fails_raises_and_one_that_ends_is_awaited() -> None:
    async def broken() -> None:
        raise RuntimeError("closing failed")

    with pytest.raises(RuntimeError, match="closing failed"):
        await bounded_step(broken(), "broken", 5)
    ended: list[str] = []

    async def quick() -> None:
        await asyncio.sleep(0)
        ended.append("quick")

    await bounded_step(quick(), "quick", 5)
    assert ended == ["quick"]


async def test_closing_a_process_goes_past_a_stuck_closer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("iotkit.server.CLOSE_STEP_SECONDS", 0.05)
    closed: list[str] = []
    started = asyncio.Event()

    class Server:
        async def stop(self, grace: float) -> None:
            closed.append("server")

    async def first() -> None:
        closed.append("first")

    async def stuck() -> None:
        await _stubborn(started)

    process = ServiceProcess(Server(), [first, stuck])  # type: ignore[arg-type]
    await process.aclose(grace=0)
    assert closed == ["server", "first"] and started.is_set()
    for task in asyncio.all_tasks() - {asyncio.current_task()}:
        task.get_coro().close()  # type: ignore[union-attr]
