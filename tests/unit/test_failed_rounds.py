"""A background round that fails because another service or a database is away logs a
line; one that fails for another reason logs its traceback (it may be a bug)."""

from __future__ import annotations

import logging

import grpc
import pytest
from grpc import aio

from iotkit.outages import log_failed_round

log = logging.getLogger("tests.failed_rounds")


def rpc_error(code: grpc.StatusCode) -> aio.AioRpcError:
    return aio.AioRpcError(code, aio.Metadata(), aio.Metadata(), details="nope")


@pytest.mark.parametrize(
    "exc",
    [
        rpc_error(grpc.StatusCode.UNAVAILABLE),
        rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED),
        ConnectionRefusedError("database down"),
    ],
)
def test_a_dependency_away_is_a_line_without_a_traceback(
    exc: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=log.name):
        log_failed_round(log, "job failed", exc, job="decommissions")
    (record,) = caplog.records
    assert record.exc_info is None and "Traceback" not in caplog.text
    assert (
        record.__dict__["error"] == type(exc).__name__ and record.__dict__["job"] == "decommissions"
    )


@pytest.mark.parametrize(
    "exc", [rpc_error(grpc.StatusCode.INTERNAL), KeyError("surprise"), ValueError("bug")]
)
def test_anything_else_keeps_its_traceback(
    exc: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=log.name):
        log_failed_round(log, "job failed", exc)
    (record,) = caplog.records
    assert record.exc_info is not None and record.exc_info[1] is exc
