"""JSON log lines carry the request id and mask secret-named fields."""

from __future__ import annotations

import json
import logging

from iotkit.context import bearer_metadata, request_id_var
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


def test_calls_to_other_services_carry_the_request_id_inside_a_request() -> None:
    assert bearer_metadata("tok") == [("authorization", "Bearer tok")]
    token = request_id_var.set("req-9")
    try:
        assert bearer_metadata("tok") == [
            ("authorization", "Bearer tok"),
            ("x-request-id", "req-9"),
        ]
    finally:
        request_id_var.reset(token)
