"""Domain values of alert rules, their events, messages and deliveries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

ANOMALY, SILENCE, THRESHOLD = "anomaly", "silence", "threshold"
KINDS = (ANOMALY, SILENCE, THRESHOLD)
ABOVE, BELOW = "above", "below"
EMAIL, WEBHOOK = "email", "webhook"
PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
FAILED = "failed"
"""An attempt's outcome when it did not deliver (a delivery is then pending or dead)."""


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """What a rule watches for and where its messages go (the user's settings)."""

    name: str
    kind: str
    stream_ids: tuple[str, ...] = ()
    device_ids: tuple[str, ...] = ()
    anomaly_types: tuple[str, ...] = ()
    min_confidence: float = 0.0
    silence_seconds: int = 0
    direction: str = ""
    value: float = 0.0
    email_to: str = ""
    webhook_url: str = ""
    live: bool = False
    period_seconds: int = 0
    quiet_start: str = ""
    quiet_end: str = ""
    time_zone: str = ""
    paused: bool = False


@dataclass(frozen=True, slots=True)
class RuleState:
    """Where a rule's alert stands: open or not, acknowledged, events waiting."""

    firing: bool = False
    subjects: tuple[str, ...] = ()  # the streams or devices in alarm
    acknowledged: bool = False
    pending_events: int = 0
    first_pending_us: int = 0
    last_event: dict[str, object] = field(default_factory=dict)
    last_event_at: datetime | None = None
    last_sent_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """A stored rule with its state."""

    id: str
    owner_id: str
    spec: RuleSpec
    state: RuleState
    created_at: datetime
    updated_at: datetime
    dead_deliveries: int = 0


@dataclass(frozen=True, slots=True)
class Event:
    """One thing a rule matched: an anomaly, a silent device, a reading past a value."""

    device_id: str
    stream_id: str
    at_us: int  # when it happened (the reading's time, or now for silence)
    value: float
    summary: str
    anomaly_id: str = ""

    def as_json(self) -> dict[str, object]:
        """The event as stored in the rule's state."""
        return {
            "device_id": self.device_id,
            "stream_id": self.stream_id,
            "at_us": self.at_us,
            "value": self.value,
            "summary": self.summary,
            "anomaly_id": self.anomaly_id,
        }


@dataclass(frozen=True, slots=True)
class AlertMessage:
    """One grouped message of a rule: what every channel says."""

    id: str
    rule_id: str
    rule_name: str
    owner_id: str
    kind: str
    event_count: int
    first_us: int
    last_event: Event

    def body(self) -> dict[str, object]:
        """The webhook's JSON body."""
        return {
            "alert_id": self.id,
            "rule_id": self.rule_id,
            "rule_name": self.rule_name,
            "kind": self.kind,
            "event_count": self.event_count,
            "first_at_us": self.first_us,
            "last_event": self.last_event.as_json(),
        }

    def text(self) -> str:
        """The email's body."""
        grouped = (
            f"{self.event_count} events since the last message; the latest:"
            if self.event_count > 1
            else "Event:"
        )
        return (
            f'Alert rule "{self.rule_name}" ({self.kind}) fired.\n\n'
            f"{grouped}\n{self.last_event.summary}\n\n"
            f"Device: {self.last_event.device_id}\n"
            f"Rule: {self.rule_id}\n"
        )


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at delivering a message: when, and what came of it."""

    at: datetime
    outcome: str  # "delivered" or "failed"
    error: str  # what a failed one got ("HTTP 500", "ConnectError"), never a secret


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message to one channel, with its attempts."""

    id: str
    rule_id: str
    owner_id: str
    channel: str
    status: str
    attempts: int
    last_error: str
    event_count: int
    created_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime | None
    target: str  # the email address or webhook URL
    body: dict[str, object]
    attempt_log: tuple[Attempt, ...] = ()  # every attempt, oldest first (when listed)
