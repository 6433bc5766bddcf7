"""Collecting field violations so that one answer lists every bad field; shared field checks."""

from __future__ import annotations

import uuid

from iotkit.errors import FieldViolation, ValidationFailed

# The range of a signed 64-bit integer: what a database's BIGINT (and SQLite's INTEGER)
# column holds. A uint64 field, or a sum, past it raises OverflowError where it is stored.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class Violations:
    """Field violations gathered while checking one request; at most one per field."""

    def __init__(self) -> None:
        self._found: dict[str, str] = {}

    def add(self, field: str, message: str) -> None:
        """Record ``message`` for ``field`` unless the field already has one."""
        self._found.setdefault(field, message)

    def has(self, field: str) -> bool:
        """True when ``field`` already has a violation."""
        return field in self._found

    def found(self) -> list[FieldViolation]:
        """Every violation so far, in the order the fields were checked."""
        return [FieldViolation(f, m) for f, m in self._found.items()]

    def raise_if_any(self) -> None:
        """Raise ValidationFailed listing every violation, if there is one."""
        if self._found:
            raise ValidationFailed(self.found())


def check_uuid(violations: Violations, value: str, *, field: str) -> str:
    """Check that ``value`` is a UUID; answers it in canonical form (as given when it is not)."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        violations.add(field, f"{field} must be a UUID")
        return value
