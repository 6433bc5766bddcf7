"""TOTP codes (RFC 6238, with pyotp) and one-time recovery codes.

A code is accepted for the current 30-second step and one step either side
(clock drift). :func:`matching_step` answers which step a code belongs to, so
the caller can refuse a step already used: no code works twice.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime

import pyotp

ISSUER = "iotsuite"
DIGITS = 6
PERIOD = 30
DRIFT_STEPS = 1
RECOVERY_CODES = 10

# No 0/o, 1/l/i: recovery codes are read off paper and typed by hand.
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def new_secret() -> str:
    """A new random base32 TOTP secret (160 bits)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, *, account: str) -> str:
    """The ``otpauth://totp/...`` URI of ``secret`` for ``account``."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).provisioning_uri(
        name=account, issuer_name=ISSUER
    )


def is_code_shaped(code: str) -> bool:
    """True for six ASCII digits."""
    return len(code) == DIGITS and code.isascii() and code.isdigit()


def matching_step(secret: str, code: str, *, now: datetime) -> int | None:
    """The time step ``code`` is valid for around ``now``, or None."""
    if not is_code_shaped(code):
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD)
    current = totp.timecode(now)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def code_at(secret: str, when: datetime) -> str:
    """The code of ``secret`` at ``when`` (for tests and tools)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).at(when)


def new_recovery_codes(count: int = RECOVERY_CODES) -> list[str]:
    """Fresh recovery codes like ``k7m2q-x9tpe`` (about 49 bits each)."""
    return [
        "-".join("".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(5)) for _ in range(2))
        for _ in range(count)
    ]


def normalise_recovery_code(code: str) -> str:
    """A recovery code as stored: lower case, without spaces or dashes."""
    return "".join(code.split()).replace("-", "").lower()
