"""Gateway errors, and the translation of gRPC statuses into them.

A :class:`GatewayError` carries everything the failure envelope shows. Errors
from services arrive as rich statuses (``google.rpc.Status`` in the
``grpc-status-details-bin`` trailer): ``BadRequest`` field violations become
``data.errors``, ``ErrorInfo`` gives the error code and details, ``RetryInfo``
the ``Retry-After`` header. The status table is grpc-gateway's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import grpc
from google.protobuf.descriptor import Descriptor
from google.rpc import error_details_pb2, status_pb2

from gateway.parse_errors import readable_violation
from iotkit.errors import FieldViolation

logger = logging.getLogger(__name__)

STATUS_DETAILS_KEY = "grpc-status-details-bin"

GRPC_TO_HTTP: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}
"""HTTP status of each gRPC code (grpc-gateway's mapping)."""

# Codes whose plain (non-rich) message may come from an unhandled exception
# on the server, e.g. "Exception calling application: ..."; never shown.
_OPAQUE_CODES = frozenset(
    {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS}
)

GENERIC_MESSAGE = "Internal server error"

UNREACHABLE_RETRY_AFTER = 5
"""The ``Retry-After`` (seconds) of a 503 for a service the gateway could not reach."""


@dataclass(slots=True)
class GatewayError(Exception):
    """A failure answered with the error envelope."""

    status: int
    code: str
    message: str
    violations: Sequence[FieldViolation] = ()
    details: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


def bad_request(
    message: str, violations: Sequence[FieldViolation] = (), code: str = "INVALID_ARGUMENT"
) -> GatewayError:
    """A 400 for a request the gateway itself cannot translate."""
    return GatewayError(status=400, code=code, message=message, violations=violations)


def internal_error() -> GatewayError:
    """The 500 for an unexpected failure inside the gateway; says nothing of the cause."""
    return GatewayError(status=500, code="INTERNAL", message=GENERIC_MESSAGE)


def rich_status(error: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    """The ``google.rpc.Status`` a service attached to ``error``, if any and consistent."""
    for key, value in error.trailing_metadata() or ():
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except Exception:
            return None
        # A status whose code disagrees with the call's is not to be trusted (grpc_status
        # rejects it too).
        return status if status.code == error.code().value[0] else None
    return None


def from_rpc_error(
    error: grpc.aio.AioRpcError, *, service: str, request: Descriptor | None = None
) -> GatewayError:
    """The gateway error for a failed call to ``service`` (its name is used in messages).

    Given the ``request`` type, a field violation inside free-form JSON is named by the
    field holding it rather than by protobuf's internals (see :func:`readable_violation`).
    """
    code = error.code()
    http_status = GRPC_TO_HTTP.get(code, 500)
    headers: dict[str, str] = {}
    if code is grpc.StatusCode.UNAUTHENTICATED:
        headers["WWW-Authenticate"] = "Bearer"
    status = rich_status(error)
    if status is None:
        return _plain_error(error, service=service, http_status=http_status, headers=headers)

    error_code = code.name
    details: dict[str, str] = {}
    violations: list[FieldViolation] = []
    for packed in status.details:
        if packed.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            packed.Unpack(bad)
            found = [FieldViolation(v.field, v.description) for v in bad.field_violations]
            if request is not None:
                found = [readable_violation(violation, request) for violation in found]
            violations += found
        elif packed.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            packed.Unpack(info)
            error_code = info.reason or error_code
            details.update(info.metadata)
        elif packed.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            packed.Unpack(retry)
            delay = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
            headers["Retry-After"] = str(max(0, math.ceil(delay)))
    message = status.message or _default_message(code, service)
    return GatewayError(
        status=http_status,
        code=error_code,
        message=message,
        violations=violations,
        details=details,
        headers=headers,
    )


def _default_message(code: grpc.StatusCode, service: str) -> str:
    if code is grpc.StatusCode.UNAVAILABLE:
        return f"The {service} service is unavailable"
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"The {service} service did not answer in time"
    if code in _OPAQUE_CODES:
        return GENERIC_MESSAGE
    return code.name.replace("_", " ").capitalize()


def _plain_error(
    error: grpc.aio.AioRpcError, *, service: str, http_status: int, headers: dict[str, str]
) -> GatewayError:
    """A status without rich details: transport failures, or services outside the kit."""
    code = error.code()
    if code is grpc.StatusCode.UNAVAILABLE:
        # No rich details means the status came from the channel, not the service:
        # the service could not be reached at all. Restarts take seconds.
        headers["Retry-After"] = str(UNREACHABLE_RETRY_AFTER)
        return GatewayError(
            status=503,
            code="SERVICE_UNAVAILABLE",
            message=_default_message(code, service),
            headers=headers,
        )
    if code in _OPAQUE_CODES or code is grpc.StatusCode.DEADLINE_EXCEEDED:
        message = _default_message(code, service)
    elif code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        # The services' own rate limits are rich statuses (ErrorInfo RATE_LIMITED, RetryInfo),
        # answered above. A plain one is gRPC's: a limit of the transport (metadata or
        # message size, a server's resource quota), worded for developers ("received
        # metadata size exceeds hard limit ..."): logged, not shown.
        logger.warning("gRPC refused a call to %s: RESOURCE_EXHAUSTED %s", service, error.details())
        message = f"The {service} service could not take this request"
    else:
        message = error.details() or _default_message(code, service)
    return GatewayError(status=http_status, code=code.name, message=message, headers=headers)
