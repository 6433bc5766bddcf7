"""What the gateway tells services about the HTTP caller, as gRPC metadata.

Forwarded: the ``Authorization`` header, the request id, the client address
(appended to any ``X-Forwarded-For`` already present, as proxies do; services
decide how far to trust it), the user agent and, when tracing is on, the
request's trace context (``traceparent``), passed here rather than by a
client interceptor so that streaming calls carry it too. gRPC accepts only printable
ASCII in text metadata, so a header that is not is dropped rather than
failing the call.
"""

from __future__ import annotations

import os
import re

from starlette.datastructures import Headers

from iotkit.tracing import trace_metadata

REQUEST_ID_HEADER = "X-Request-Id"

# A caller-chosen request id is echoed in headers and logs; anything beyond a
# plain token could inject log content or oversized headers, so it is replaced.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}\Z")
_PRINTABLE = re.compile(r"[\x20-\x7e]*\Z")


def request_id_from(value: str | None) -> str:
    """The request id sent by the caller when it is a sane token, else 32 new random hex
    digits (as a uuid4's hex, which costs several times more to make on every request)."""
    if value and _REQUEST_ID.match(value):
        return value
    return os.urandom(16).hex()


def _printable(value: str | None) -> str | None:
    return value if value and _PRINTABLE.match(value) else None


def forwarded_metadata(
    headers: Headers, *, client_host: str | None, request_id: str
) -> tuple[tuple[str, str], ...]:
    """The gRPC metadata for a call made on behalf of an HTTP request."""
    metadata = [("x-request-id", request_id)]
    authorization = _printable(headers.get("authorization"))
    if authorization:
        metadata.append(("authorization", authorization))
    incoming = _printable(headers.get("x-forwarded-for"))
    chain = [part for part in (incoming, client_host) if part]
    if chain:
        metadata.append(("x-forwarded-for", ", ".join(chain)))
    agent = _printable(headers.get("user-agent"))
    if agent:
        metadata.append(("x-forwarded-user-agent", agent))
    metadata += trace_metadata()
    return tuple(metadata)
