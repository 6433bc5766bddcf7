"""Structured logging: one JSON object per line, with the request id (and the trace id
when tracing is on, so that a line leads to its trace).

Secrets never reach a log line because nothing logs request bodies or
headers; as a second guard, keys that name secrets are masked in ``extra``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from iotkit.context import request_id_var
from iotkit.tracing import current_trace_id

_SECRET_WORDS = ("password", "token", "secret", "authorization", "hash", "private", "otp")
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
# Whether each extra key names a secret, decided once per key (the keys are the code's own).
_MASKED: dict[str, bool] = {}


def _masked(key: str) -> bool:
    known = _MASKED.get(key)
    if known is None:
        known = _MASKED[key] = any(word in key.lower() for word in _SECRET_WORDS)
    return known


class JsonFormatter(logging.Formatter):
    """Formats records as JSON with time, level, logger, message, request id, trace id
    (inside a recorded span) and extras."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """One JSON line for ``record``."""
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": request_id_var.get(),
        }
        trace_id = current_trace_id()
        if trace_id is not None:
            entry["trace_id"] = trace_id
        for key, value in record.__dict__.items():
            if key in _STANDARD or key.startswith("_"):
                continue
            entry[key] = "***" if _masked(key) else value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


# Database drivers log statement parameters (password hashes among them) at DEBUG.
PARAMETER_LOGGERS = ("aiosqlite", "sqlalchemy.engine", "psycopg", "asyncio")


def silence_parameter_loggers() -> None:
    """Keep loggers that print SQL parameters at WARNING, whatever the root level."""
    for name in PARAMETER_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every log record of the process to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The lines carry neither the caller's file and line nor the thread or process, so no
    # record needs to look them up: the logging HOWTO's "Optimization" switches, about a
    # tenth of the cost of each line (the gateway's access line, a service's "rpc" line).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    silence_parameter_loggers()
    # Alembic narrates every start (its context, each step) at INFO; iotkit.migrations
    # logs what changed, once, with the service.
    logging.getLogger("alembic").setLevel(logging.WARNING)
