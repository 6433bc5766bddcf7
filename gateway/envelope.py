"""The response envelope every REST answer is wrapped in (seed 001 ``ApiResponse``).

Success: ``{http_status_code, success: true, message, data}``. Failure adds the
error block of seeds 000 and 002: ``{error_code, status, error, path,
timestamp, details}``, with field errors in ``data.errors``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from starlette.responses import JSONResponse

from gateway.errors import GatewayError

_EXTRA_PHRASES = {499: "Client Closed Request"}

# One encoder for every answer: json.dumps with options builds a new one on each call.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def reason_phrase(status: int) -> str:
    """The HTTP reason phrase of ``status`` ("Bad Request"), including nginx's 499."""
    if status in _EXTRA_PHRASES:
        return _EXTRA_PHRASES[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def rfc3339(moment: datetime) -> str:
    """``moment`` in UTC as RFC 3339 with a ``Z`` suffix, to the second."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def success_body(data: Any, *, status: int = 200, message: str = "OK") -> dict[str, Any]:
    """The success envelope around ``data``."""
    return {"http_status_code": status, "success": True, "message": message, "data": data}


def failure_body(error: GatewayError, *, path: str, now: datetime | None = None) -> dict[str, Any]:
    """The failure envelope for ``error`` raised while serving ``path``."""
    return {
        "http_status_code": error.status,
        "success": False,
        "message": error.message,
        "data": {"errors": [{"field": v.field, "message": v.message} for v in error.violations]},
        "error": {
            "error_code": error.code,
            "status": error.status,
            "error": reason_phrase(error.status),
            "path": path,
            "timestamp": rfc3339(now or datetime.now(UTC)),
            "details": dict(error.details),
        },
    }


class EnvelopeResponse(JSONResponse):
    """A compact UTF-8 JSON response (no spaces: these bodies are for machines)."""

    def render(self, content: Any) -> bytes:
        """Serialize ``content`` as compact JSON."""
        return _encode(content).encode("utf-8")


def success_response(
    data: Any, *, status: int = 200, message: str = "OK", headers: Mapping[str, str] | None = None
) -> EnvelopeResponse:
    """The HTTP response for a success."""
    return EnvelopeResponse(
        success_body(data, status=status, message=message), status_code=status, headers=headers
    )


def error_response(error: GatewayError, *, path: str) -> EnvelopeResponse:
    """The HTTP response for ``error`` raised while serving ``path``, with its headers."""
    return EnvelopeResponse(
        failure_body(error, path=path), status_code=error.status, headers=dict(error.headers)
    )
