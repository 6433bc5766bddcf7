"""Field rules of the device registry (seed 000 section 2), with their messages."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

from iotkit.validation import Violations

DEVICE_TYPES = ("temperature", "pressure", "motion")
DEVICE_STATUSES = ("active", "inactive", "maintenance")
NAME_MAX = 100
PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX = 20, 100


@dataclass(frozen=True, slots=True)
class Coordinates:
    """A checked latitude and longitude."""

    latitude: float
    longitude: float


def check_uuid(violations: Violations, value: str, *, field: str) -> str:
    """Check that ``value`` is a UUID; answers it in canonical form."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        violations.add(field, f"{field} must be a UUID")
        return value


def check_name(violations: Violations, name: str, *, field: str = "name") -> str:
    """Check a device name: 1 to 100 characters, not blank; answers it trimmed."""
    trimmed = name.strip()
    if not trimmed:
        violations.add(field, "Name is required")
    elif len(trimmed) > NAME_MAX:
        violations.add(field, "Name must be between 1 and 100 characters")
    return trimmed


def check_choice(
    violations: Violations, value: str, choices: tuple[str, ...], *, field: str
) -> str:
    """Check that ``value`` is one of ``choices`` (case-insensitive); answers it lower-cased."""
    normalised = value.strip().lower()
    if normalised not in choices:
        label = field.capitalize()
        violations.add(field, f"{label} must be one of: {', '.join(choices)}")
    return normalised


def check_location(
    violations: Violations, latitude: float, longitude: float, *, field: str = "location"
) -> Coordinates:
    """Check coordinates: latitude -90..90, longitude -180..180, both finite."""
    if not (math.isfinite(latitude) and -90 <= latitude <= 90):
        violations.add(f"{field}.latitude", "Latitude must be between -90 and 90")
    if not (math.isfinite(longitude) and -180 <= longitude <= 180):
        violations.add(f"{field}.longitude", "Longitude must be between -180 and 180")
    return Coordinates(latitude, longitude)


def check_page(violations: Violations, page: int, limit: int) -> tuple[int, int]:
    """Check paging: page from 1 (1 when unset), limit 1..100 (20 when unset)."""
    if page < 0:
        violations.add("page", "Page must be at least 1")
    if limit < 0 or limit > PAGE_LIMIT_MAX:
        violations.add("limit", f"Limit must be between 1 and {PAGE_LIMIT_MAX}")
    return max(page, 1), limit or PAGE_LIMIT_DEFAULT
