"""Without ``OTEL_EXPORTER_OTLP_ENDPOINT`` nothing of tracing is installed.

(With it, see ``tests/service/test_tracing.py``, which traces in a process of its own.)
"""

from __future__ import annotations

import json
import logging

from iotkit import tracing
from iotkit.logs import JsonFormatter


def test_tracing_stays_off_without_an_endpoint() -> None:
    assert tracing.configure_tracing("devices", {"OTEL_EXPORTER_OTLP_ENDPOINT": ""}) is False
    assert not tracing.enabled()
    assert tracing.server_interceptors() == []
    assert tracing.client_interceptors() == []
    assert tracing.trace_metadata() == []


def test_log_lines_carry_no_trace_id_outside_a_trace() -> None:
    record = logging.makeLogRecord({"msg": "hello", "levelname": "INFO", "name": "x"})
    entry = json.loads(JsonFormatter("devices").format(record))
    assert "request_id" in entry and "trace_id" not in entry
