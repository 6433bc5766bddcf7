"""Field rules of the device registry (seed 000 section 2), with their messages."""

from __future__ import annotations

import math
from dataclasses import dataclass

from iotkit.validation import Violations

# "generic" measures anything else (humidity, a tank level, a count...): it has no physical
# bounds, so analytics judges its readings by their own history only.
DEVICE_TYPES = ("temperature", "pressure", "motion", "generic")
DEVICE_STATUSES = ("active", "inactive", "maintenance")
NAME_MAX = 100


@dataclass(frozen=True, slots=True)
class Coordinates:
    """A checked latitude and longitude."""

    latitude: float
    longitude: float


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
