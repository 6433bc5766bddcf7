"""The group writer says a database outage once in a while, not once per failed group.

The fault run (PostgreSQL stopped 12 s under five MQTT devices) logged 224
"write group failed" lines in ten seconds, one per group every device's retry
made; a hundred devices would log thousands. A fault that may be a bug is
still logged each time, with its traceback.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest

from services.telemetry.telemetry import writer as writer_module
from services.telemetry.telemetry.writer import GroupWriter, Prepared
from tests.service.outage_support import fail_first

GROUPS = 30


def entries() -> list[Prepared]:
    return [Prepared("s", np.array([1], dtype=np.int64), np.array([1.0]))]


async def failed_writes(writer: GroupWriter, count: int) -> None:
    for _ in range(count):
        with pytest.raises(Exception):  # noqa: B017 - the driver's error, whatever it is
            await writer.write(entries())


def lines(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == writer_module.__name__ and r.msg == message]


async def test_an_outage_is_said_once_then_its_end(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls = fail_first(monkeypatch, GroupWriter, "_write_group", GROUPS)

    async def stored(self: GroupWriter, group: list[Any]) -> list[list[int]]:
        return [[0] for _ in group]

    writer = GroupWriter(store=None)  # type: ignore[arg-type]
    writer.start()
    try:
        with caplog.at_level(logging.INFO, logger=writer_module.__name__):
            await failed_writes(writer, GROUPS)
            assert calls() == GROUPS
            monkeypatch.setattr(GroupWriter, "_write_group", stored)
            assert await writer.write(entries()) == [0]
    finally:
        await writer.stop()
    failed = lines(caplog, "write group failed")
    assert len(failed) == 1 and failed[0].levelno == logging.WARNING
    assert failed[0].exc_info is None  # an outage: no traceback
    back = lines(caplog, "write groups stored again")
    assert [r.__dict__["failed_groups"] for r in back] == [GROUPS]


async def test_a_fault_that_may_be_a_bug_is_logged_every_time(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(self: GroupWriter, group: list[Any]) -> list[list[int]]:
        raise ValueError("a bug")

    monkeypatch.setattr(GroupWriter, "_write_group", broken)
    writer = GroupWriter(store=None)  # type: ignore[arg-type]
    writer.start()
    try:
        with caplog.at_level(logging.WARNING, logger=writer_module.__name__):
            await failed_writes(writer, 3)
    finally:
        await writer.stop()
    failed = lines(caplog, "write group failed")
    assert len(failed) == 3 and all(r.exc_info for r in failed)
