"""JSON log lines carry the request id and mask secret-named fields."""

from __future__ import annotations

import json
import logging

from iotkit.context import request_id_var
from iotkit.logs import JsonFormatter


def test_log_line_is_json_with_request_id_and_masked_secrets() -> None:
    record = logging.makeLogRecord(
        {
            "msg": "login %s",
            "args": ("ok",),
            "levelname": "INFO",
            "name": "t",
            "password": "Str0ng!pass",
            "refresh_token": "abc",
            "method": "/x",
        }
    )
    token = request_id_var.set("req-1")
    try:
        line = JsonFormatter("auth").format(record)
    finally:
        request_id_var.reset(token)
    entry = json.loads(line)
    assert entry["msg"] == "login ok"
    assert entry["service"] == "auth" and entry["request_id"] == "req-1"
    assert entry["password"] == "***" and entry["refresh_token"] == "***"
    assert entry["method"] == "/x"
    assert "Str0ng!pass" not in line
