"""The states a dependency check answers: healthy, degraded when slow, down on failure."""

from __future__ import annotations

import asyncio

import pytest

from iotkit import checks


async def _answers_after(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "smtp"


async def test_a_check_that_answers_in_time_is_healthy() -> None:
    status = await checks.run_check(lambda: _answers_after(0), name="email", service="auth")
    assert (status.status, status.detail, status.service) == ("healthy", "smtp", "auth")


async def test_a_check_slower_than_the_threshold_is_degraded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(checks, "SLOW_MS", 20.0)
    status = await checks.run_check(lambda: _answers_after(0.05), name="email", service="auth")
    assert (status.status, status.detail) == ("degraded", "smtp")
    assert status.latency_ms >= 50


async def test_a_check_that_fails_is_down_with_the_kind_of_failure() -> None:
    async def refused() -> str:
        raise ConnectionRefusedError("smtp://user:secret@mail.example:25 refused")

    status = await checks.run_check(refused, name="email", service="auth")
    assert (status.status, status.detail) == ("down", "ConnectionRefusedError")
    assert "secret" not in str(status)


async def test_a_check_that_never_answers_is_down_after_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(checks, "CHECK_TIMEOUT", 0.05)
    status = await checks.run_check(lambda: _answers_after(5), name="email", service="auth")
    assert (status.status, status.detail) == ("down", "timed out")
