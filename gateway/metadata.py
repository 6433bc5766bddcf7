"""What the gateway tells services about the HTTP caller, as gRPC metadata.

Forwarded: the ``Authorization`` header, the request id, the client address
(appended to any ``X-Forwarded-For`` already present, as proxies do; services
decide how far to trust it), the user agent and, when tracing is on, the
request's trace context (``traceparent``), passed here rather than by a
client interceptor so that streaming calls carry it too. gRPC accepts only printable
ASCII in text metadata, so a header that is not is dropped rather than
failing the call.

Each is bounded. A gRPC server refuses a call whose metadata is over 16 KiB and,
past 8 KiB (its soft limit), refuses a growing share of calls at random, with
RESOURCE_EXHAUSTED: a long header would have made the gateway's answer a 429 in
gRPC's words, or one in a few. The bounds keep the whole under 8 KiB: the user
agent is cut to 512 characters (what auth stores of it), the forwarded chain to
its last 1024 characters' whole addresses (services read only the last, the
gateway's peer), a trace state longer than 512 characters is left out (W3C's
minimum to propagate), and an Authorization header over 4 KiB, several times any
token the suite issues, is answered 401 without calling the service.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from gateway.errors import GatewayError
from iotkit.tracing import trace_metadata

REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID_KEY = REQUEST_ID_HEADER.lower().encode("latin-1")
"""The request id header's name as an ASGI scope holds it."""

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


RawHeaders = Iterable[tuple[bytes, bytes]]
"""An ASGI scope's ``headers``: lower-case names and values as bytes, in arrival order."""


def header_value(headers: RawHeaders, name: bytes) -> str | None:
    """The first value of header ``name`` (lower case), as Starlette's ``Headers.get`` reads
    it; a scan of the raw list costs less than building ``Headers`` on every request."""
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


_FORWARDED = (b"authorization", b"x-forwarded-for", b"user-agent")

MAX_AUTHORIZATION_CHARS = 4096
MAX_USER_AGENT_CHARS = 512
MAX_FORWARDED_FOR_CHARS = 1024
MAX_TRACE_VALUE_CHARS = 512


def _too_long_authorization() -> GatewayError:
    return GatewayError(
        status=401,
        code="UNAUTHENTICATED",
        message="Authorization header is too long",
        headers={"WWW-Authenticate": "Bearer"},
    )


def _last_addresses(chain: str) -> str:
    """The end of a forwarded chain, whole addresses only, within the bound."""
    if len(chain) <= MAX_FORWARDED_FOR_CHARS:
        return chain
    return chain[-MAX_FORWARDED_FOR_CHARS:].partition(",")[2].strip()


def forwarded_metadata(
    headers: RawHeaders, *, client_host: str | None, request_id: str
) -> tuple[tuple[str, str], ...]:
    """The gRPC metadata for a call made on behalf of an HTTP request with raw ``headers``;
    raises a 401 for an Authorization header longer than any token."""
    found: dict[bytes, str] = {}
    for key, value in headers:
        if key in _FORWARDED and key not in found:  # the first of each, as Headers.get
            found[key] = value.decode("latin-1")
    metadata = [("x-request-id", request_id)]
    authorization = _printable(found.get(b"authorization"))
    if authorization:
        if len(authorization) > MAX_AUTHORIZATION_CHARS:
            raise _too_long_authorization()
        metadata.append(("authorization", authorization))
    incoming = _printable(found.get(b"x-forwarded-for"))
    chain = [part for part in (incoming and _last_addresses(incoming), client_host) if part]
    if chain:
        metadata.append(("x-forwarded-for", ", ".join(chain)))
    agent = _printable(found.get(b"user-agent"))
    if agent:
        metadata.append(("x-forwarded-user-agent", agent[:MAX_USER_AGENT_CHARS]))
    metadata += [pair for pair in trace_metadata() if len(pair[1]) <= MAX_TRACE_VALUE_CHARS]
    return tuple(metadata)
