"""The kit's RPC log: routine polls stay out of the INFO log, everything else is in it."""

from __future__ import annotations

import logging

import grpc
import pytest

from iotkit.interceptors import ROUTINE_METHODS, ServiceInterceptor, _CallState


def finish(method: str, code: grpc.StatusCode, caplog: pytest.LogCaptureFixture) -> int:
    """The level the interceptor logged one finished call at."""
    interceptor = ServiceInterceptor.__new__(ServiceInterceptor)
    interceptor._counters = type("Counters", (), {"record": lambda self, code: None})()
    interceptor._metrics = None
    state = _CallState()
    state.code = code
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="iotkit.rpc"):
        interceptor._finish(method, None, state)  # type: ignore[arg-type]
    (record,) = [r for r in caplog.records if r.msg == "rpc"]
    return record.levelno


@pytest.mark.parametrize("poll", sorted(ROUTINE_METHODS))
def test_a_successful_routine_poll_is_debug_and_anything_else_info(
    poll: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert finish(poll, grpc.StatusCode.OK, caplog) == logging.DEBUG
    assert finish(poll, grpc.StatusCode.UNAVAILABLE, caplog) == logging.INFO
    assert finish("/iot.devices.v1.DeviceService/ListDevices", grpc.StatusCode.OK, caplog) == (
        logging.INFO
    )
