"""Per-request context: the request id and the authenticated caller.

The interceptors set these context variables before the servicer runs, so
service code reads the caller without threading it through every call.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field

from iotkit.errors import Unauthenticated


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a verified token speaks for, and what it grants."""

    subject: str
    role: str
    scopes: frozenset[str]
    token_type: str
    session_id: str | None = None
    token_id: str | None = None
    issued_at: int = 0
    expires_at: int = 0
    claims: dict[str, object] = field(default_factory=dict, compare=False)
    # The raw token, for forwarding the caller's own identity to another service; never printed.
    token: str = field(default="", repr=False, compare=False)

    @property
    def is_admin(self) -> bool:
        """True for administrators."""
        return self.role == "admin"


NO_REQUEST = "-"
"""The request id outside any request (background work, start-up)."""
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar(
    "request_id", default=NO_REQUEST
)
caller_var: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("caller", default=None)
peer_var: contextvars.ContextVar[tuple[str, str]] = contextvars.ContextVar("peer", default=("", ""))


def bearer_metadata(token: str) -> list[tuple[str, str]]:
    """Metadata of a call to another service with ``token``, carrying the current request's
    id (when there is one), so that the callee's log lines keep it.

    Passed explicitly rather than by a client interceptor: interceptors on ``grpc.aio``
    streams failed telemetry's forwarding stream during database outages (see
    :mod:`iotkit.tracing`).
    """
    metadata = [("authorization", f"Bearer {token}")]
    request_id = request_id_var.get()
    if request_id != NO_REQUEST:
        metadata.append(("x-request-id", request_id))
    return metadata


def current_caller() -> Caller:
    """The verified caller of the current RPC; raises if the RPC is anonymous."""
    caller = caller_var.get()
    if caller is None:
        raise Unauthenticated("Authentication required")
    return caller


def optional_caller() -> Caller | None:
    """The verified caller of the current RPC, or None when it came without a token
    (an RPC whose rules make the token optional)."""
    return caller_var.get()


def current_client() -> tuple[str, str]:
    """The end client's IP address and user agent, as forwarded by the gateway."""
    return peer_var.get()
