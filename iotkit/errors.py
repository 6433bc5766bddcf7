"""Domain errors and their mapping to rich gRPC statuses.

Services raise these; the error interceptor turns them into a
``google.rpc.Status`` with ``BadRequest.FieldViolation`` and ``ErrorInfo``
details (and ``RetryInfo`` for rate limits). Messages here are shown to users,
so they never carry secrets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from iotkit import reasons

ERROR_DOMAIN = "iotsuite"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field of a request and what is wrong with it."""

    field: str
    message: str


class DomainError(Exception):
    """An error a caller can act on; subclasses fix the gRPC code and reason."""

    code: grpc.StatusCode = grpc.StatusCode.FAILED_PRECONDITION
    reason: str = reasons.FAILED_PRECONDITION

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata = dict(metadata or {})


class ValidationFailed(DomainError):
    """The request breaks one or more field rules."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = reasons.VALIDATION_FAILED

    def __init__(
        self, violations: Sequence[FieldViolation], message: str = "Validation failed"
    ) -> None:
        super().__init__(message)
        self.violations = list(violations)


class NotFound(DomainError):
    """The resource does not exist or belongs to someone else."""

    code = grpc.StatusCode.NOT_FOUND
    reason = reasons.NOT_FOUND


class AlreadyExists(DomainError):
    """The resource would duplicate one that exists."""

    code = grpc.StatusCode.ALREADY_EXISTS
    reason = reasons.ALREADY_EXISTS


class Unauthenticated(DomainError):
    """The caller's credentials are missing, invalid, expired or revoked."""

    code = grpc.StatusCode.UNAUTHENTICATED
    reason = reasons.UNAUTHENTICATED


class PermissionDenied(DomainError):
    """The caller is known but may not do this."""

    code = grpc.StatusCode.PERMISSION_DENIED
    reason = reasons.PERMISSION_DENIED


class FailedPrecondition(DomainError):
    """The resource is not in a state that allows the operation."""


class Conflict(DomainError):
    """The resource's current state conflicts with the request (HTTP 409)."""

    code = grpc.StatusCode.ABORTED
    reason = reasons.CONFLICT


class RateLimited(DomainError):
    """Too many attempts; the caller may retry after ``retry_after`` seconds."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = reasons.RATE_LIMITED

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(DomainError):
    """A dependency needed for this call cannot be reached right now; the caller may retry
    after ``retry_after`` seconds (the gateway's ``Retry-After``)."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = reasons.SERVICE_UNAVAILABLE

    def __init__(
        self,
        message: str,
        *,
        retry_after: float = 1.0,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.retry_after = retry_after


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def to_grpc_status(error: DomainError) -> grpc.Status:
    """The rich gRPC status for ``error``: code, message and typed details."""
    details = [
        _pack(
            error_details_pb2.ErrorInfo(
                reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata
            )
        )
    ]
    if isinstance(error, ValidationFailed):
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=v.field, description=v.message
                        )
                        for v in error.violations
                    ]
                )
            )
        )
    if isinstance(error, RateLimited | Unavailable):
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(int(error.retry_after * 1000))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    status = status_pb2.Status(code=error.code.value[0], message=error.message, details=details)
    return rpc_status.to_status(status)


def internal_status() -> grpc.Status:
    """The status for an unexpected failure: generic, with no detail of the cause."""
    status = status_pb2.Status(
        code=code_pb2.INTERNAL,
        message="Internal error",
        details=[_pack(error_details_pb2.ErrorInfo(reason=reasons.INTERNAL, domain=ERROR_DOMAIN))],
    )
    return rpc_status.to_status(status)


def violations_of(error: grpc.aio.AioRpcError | grpc.RpcError) -> list[FieldViolation]:
    """Field violations carried by a received rich error (for clients and tests)."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    found: list[FieldViolation] = []
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found += [FieldViolation(v.field, v.description) for v in bad.field_violations]
    return found


def reason_of(error: grpc.aio.AioRpcError | grpc.RpcError) -> str | None:
    """The ``ErrorInfo`` reason carried by a received rich error, if any."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return None
