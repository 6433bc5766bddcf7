"""The values the understanding answers: a period, a device reference and the slots.

They live here, apart from :mod:`understanding`, so that the rule modules
(periods, devices, slots) can build them without importing the understander;
``understanding`` re-exports them, and that is where callers import them from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Period:
    """A time range in words, resolved in the user's time zone."""

    start: datetime
    """Aware, UTC."""
    end: datetime
    """Aware, UTC; never before ``start`` nor after the moment of the question."""
    phrase: str
    """As written: "last night", "the past 3 hours"."""


@dataclass(frozen=True, slots=True)
class DeviceRef:
    """A device the user mentions, and which of their devices it may mean."""

    mention: str
    """As written by the user: "green house", "sensor 3"."""
    matches: tuple[str, ...]
    """Names of the user's devices it may mean: () unknown, 1 resolved, >1 ambiguous."""


@dataclass(frozen=True, slots=True)
class Slots:
    """What the utterance says beside its intent; None or () when it does not say."""

    devices: tuple[DeviceRef, ...] = ()
    device_type: str | None = None
    """"temperature" | "pressure" | "motion" | "generic"."""
    device_status: str | None = None
    """"active" | "inactive" | "maintenance"."""
    metric: str | None = None
    """"temperature", "humidity", "pressure", "acceleration", ..."""
    period: Period | None = None
    anomaly_type: str | None = None
    """spike, dip, out_of_range, flatline, gap, rate_of_change."""
    review_status: str | None = None
    """pending, confirmed, dismissed."""
    metrics: tuple[str, ...] = ()
    """Every metric named, in the order written; ``metric`` is the first of them."""
