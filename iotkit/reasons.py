"""Every ``ErrorInfo.reason`` the suite answers, in one place.

A reason is the UPPER_SNAKE code a client switches on (the gateway shows it as
``error.error_code``), so it is part of the API: each one is listed in the
proto comments of the RPCs that can answer it, and a test checks that every
constant here appears there. Raise domain errors with these constants, never
with a literal.
"""

from __future__ import annotations

from typing import Final

# Answered by any RPC: the defaults of the kit's error classes and interceptors.
FAILED_PRECONDITION: Final = "FAILED_PRECONDITION"
CONFLICT: Final = "CONFLICT"
VALIDATION_FAILED: Final = "VALIDATION_FAILED"
NOT_FOUND: Final = "NOT_FOUND"
ALREADY_EXISTS: Final = "ALREADY_EXISTS"
UNAUTHENTICATED: Final = "UNAUTHENTICATED"
PERMISSION_DENIED: Final = "PERMISSION_DENIED"
MISSING_SCOPE: Final = "MISSING_SCOPE"
RATE_LIMITED: Final = "RATE_LIMITED"
SERVICE_UNAVAILABLE: Final = "SERVICE_UNAVAILABLE"
INTERNAL: Final = "INTERNAL"

# Auth: accounts, logins, MFA, administration, sites.
INVALID_CREDENTIALS: Final = "INVALID_CREDENTIALS"
INVALID_MFA_CODE: Final = "INVALID_MFA_CODE"
INVALID_CLIENT: Final = "INVALID_CLIENT"
ACCOUNT_DISABLED: Final = "ACCOUNT_DISABLED"
EMAIL_TAKEN: Final = "EMAIL_TAKEN"
ALREADY_VERIFIED: Final = "ALREADY_VERIFIED"
MFA_ALREADY_ENABLED: Final = "MFA_ALREADY_ENABLED"
MFA_NOT_SET_UP: Final = "MFA_NOT_SET_UP"
MFA_NOT_ENABLED: Final = "MFA_NOT_ENABLED"
SELF_MODIFICATION: Final = "SELF_MODIFICATION"
ACCOUNT_EXISTS: Final = "ACCOUNT_EXISTS"
DOMAIN_TAKEN: Final = "DOMAIN_TAKEN"

# Devices and telemetry.
DEVICE_NOT_FOUND: Final = "DEVICE_NOT_FOUND"
DEVICE_INACTIVE: Final = "DEVICE_INACTIVE"
CREDENTIAL_REVOKED: Final = "CREDENTIAL_REVOKED"
SITE_NOT_FOUND: Final = "SITE_NOT_FOUND"
STREAM_NOT_FOUND: Final = "STREAM_NOT_FOUND"
TOO_MANY_STREAMS: Final = "TOO_MANY_STREAMS"
BATCH_NOT_FOUND: Final = "BATCH_NOT_FOUND"
UPLOAD_NOT_FOUND: Final = "UPLOAD_NOT_FOUND"
BATCH_NOT_ACTIVE: Final = "BATCH_NOT_ACTIVE"
TOO_MANY_ACTIVE_BATCHES: Final = "TOO_MANY_ACTIVE_BATCHES"
CONTENT_ALREADY_UPLOADED: Final = "CONTENT_ALREADY_UPLOADED"

# Analytics.
ANOMALY_NOT_FOUND: Final = "ANOMALY_NOT_FOUND"
CORRELATION_NOT_FOUND: Final = "CORRELATION_NOT_FOUND"
DETECTOR_NOT_FOUND: Final = "DETECTOR_NOT_FOUND"
EMPTY_WINDOW: Final = "EMPTY_WINDOW"
RULE_NOT_FOUND: Final = "RULE_NOT_FOUND"
TOO_MANY_RULES: Final = "TOO_MANY_RULES"
ALERT_NOT_OPEN: Final = "ALERT_NOT_OPEN"

# Chat.
SESSION_NOT_FOUND: Final = "SESSION_NOT_FOUND"
SESSION_ENDED: Final = "SESSION_ENDED"
NOT_ESCALATED: Final = "NOT_ESCALATED"
ARTICLE_NOT_FOUND: Final = "ARTICLE_NOT_FOUND"


def all_reasons() -> frozenset[str]:
    """Every reason defined here."""
    return frozenset(
        value for name, value in globals().items() if name.isupper() and isinstance(value, str)
    )
