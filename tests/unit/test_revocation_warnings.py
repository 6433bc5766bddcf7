"""The revocation follower's warnings: a lasting outage of auth is said, a start-up race is not."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from iotkit.revocation import WARN_AFTER, RevocationFollower


async def _follow_failing(polls: int, caplog: pytest.LogCaptureFixture) -> int:
    """Warnings logged while auth fails ``polls`` times in a row, then answers."""
    calls = 0
    answered = asyncio.Event()

    async def poll(cursor: Any) -> tuple[list[Any], Any]:
        nonlocal calls
        calls += 1
        if calls <= polls:
            raise ConnectionError("auth is not there yet")
        answered.set()
        return [], cursor

    follower = RevocationFollower(poll=poll, poll_interval=0.001)
    with caplog.at_level(logging.WARNING, logger="iotkit.revocation"):
        follower.start()
        try:
            await asyncio.wait_for(answered.wait(), 10)
        finally:
            await follower.stop()
    return sum(1 for r in caplog.records if r.msg == "could not read revoked sessions from auth")


async def test_auth_answering_a_moment_late_is_no_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert await _follow_failing(WARN_AFTER - 1, caplog) == 0


async def test_auth_away_for_longer_is_warned_once_then_every_40_polls(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert await _follow_failing(WARN_AFTER, caplog) == 1
    caplog.clear()
    assert await _follow_failing(80, caplog) == 1 + 2  # at WARN_AFTER, 40 and 80
