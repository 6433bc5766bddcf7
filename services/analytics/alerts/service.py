"""Alert rules: create, read, change, delete, acknowledge; the rules' field checks.

Rules belong to the user whose token created them; another user's rule is
NOT_FOUND (administrators see every rule, as for anomalies). The streams and
devices a rule names must be ones its owner may read: telemetry is asked with
the caller's token, as correlations do, and another user's or an unknown id is
NOT_FOUND (an administrator may name any). A rule's signing secret is made
here, sealed for the store and answered once.

The email channel sends to the address the rule names. Analytics cannot
learn a user's own address (tokens carry no email and auth serves it to no
other service), so the address is the user's choice; what bounds misuse is
that a rule sends at most one message per period, and a user has at most
``IOT_ALERTS_MAX_RULES`` rules.
"""

from __future__ import annotations

import asyncio
import math
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import fields, replace
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from iotkit import reasons
from iotkit.context import Caller
from iotkit.errors import FailedPrecondition, NotFound
from iotkit.hub import Hub
from iotkit.listing import PageRequest, check_page
from iotkit.ownership import owned
from iotkit.sealing import SecretBox
from iotkit.sqltypes import utcnow
from iotkit.streams import Watch
from iotkit.validation import Violations, check_uuid
from services.analytics.alerts.delivery import TargetRefused, resolve_target
from services.analytics.alerts.store import AlertStore
from services.analytics.alerts.values import (
    ABOVE,
    BELOW,
    KINDS,
    SILENCE,
    THRESHOLD,
    AlertMessage,
    Delivery,
    Rule,
    RuleSpec,
)

ANOMALY_TYPES = ("spike", "dip", "out_of_range", "flatline", "rate_of_change", "gap")
MAX_FILTER_ITEMS = 100
SILENCE_RANGE = (1, 30 * 86400)
MAX_PERIOD = 86400
_EMAIL = re.compile(r"^[^@\s<>,;\"']+@[^@\s<>,;\"']+\.[^@\s<>,;\"']+$")
_CLOCK_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
SPEC_FIELDS = tuple(f.name for f in fields(RuleSpec))
CHECKS_AT_ONCE = 8  # questions to telemetry in flight for one rule's ids


class Readable(Protocol):
    """Whether a caller may read a stream or a device (telemetry, with the caller's token)."""

    async def may_read_stream(self, *, token: str, stream_id: str) -> bool:
        """False for another user's stream or an unknown one; raises :class:`Unavailable`
        when that cannot be told now."""
        ...

    async def may_read_device(self, *, token: str, device_id: str) -> bool:
        """False for another user's device or an unknown one; raises :class:`Unavailable`
        when that cannot be told now."""
        ...


def new_secret() -> str:
    """A webhook signing secret: 32 random bytes, URL-safe."""
    return "whsec_" + secrets.token_urlsafe(32)


def _check_ids(violations: Violations, values: Sequence[str], *, field: str) -> tuple[str, ...]:
    if len(values) > MAX_FILTER_ITEMS:
        violations.add(field, f"{field} holds at most {MAX_FILTER_ITEMS} items")
    return tuple(check_uuid(violations, value, field=field) for value in values)


class AlertRuleService:
    """The rules of the caller."""

    def __init__(
        self,
        *,
        store: AlertStore,
        box: SecretBox,
        allow_private: bool,
        max_rules: int,
        on_change: Callable[[], None],
        profile_zone: Callable[[Caller], Awaitable[str]],
        hub: Hub[AlertMessage],
        readable: Readable,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        """``on_change`` is told that a rule was created, changed or deleted (the evaluator
        reads the rules again); ``profile_zone`` answers the caller's profile time zone;
        ``readable`` whether the caller may read the streams and devices a rule names."""
        self._store = store
        self._box = box
        self._allow_private = allow_private
        self._max_rules = max_rules
        self._on_change = on_change
        self._profile_zone = profile_zone
        self._hub = hub
        self._readable = readable
        self._clock = clock

    async def _zoned(self, caller: Caller, spec: RuleSpec) -> RuleSpec:
        """Quiet hours without a zone of their own take the profile's (UTC when it has none)."""
        if spec.quiet_start and not spec.time_zone:
            return replace(spec, time_zone=await self._profile_zone(caller))
        return spec

    async def _check_spec(self, spec: RuleSpec) -> RuleSpec:
        """The spec with its lists in canonical form; raises ValidationFailed naming every bad
        field (``spec.<field>``)."""
        v = Violations()
        name = spec.name.strip()
        if not name or len(name) > 100:
            v.add("spec.name", "name must be 1 to 100 characters")
        if spec.kind not in KINDS:
            v.add("spec.kind", f"kind must be one of {', '.join(KINDS)}")
        stream_ids = _check_ids(v, spec.stream_ids, field="spec.stream_ids")
        device_ids = _check_ids(v, spec.device_ids, field="spec.device_ids")
        unknown = sorted(set(spec.anomaly_types) - set(ANOMALY_TYPES))
        if unknown:
            v.add("spec.anomaly_types", f"anomaly_types must be among {', '.join(ANOMALY_TYPES)}")
        if not 0.0 <= spec.min_confidence <= 1.0:
            v.add("spec.min_confidence", "min_confidence must be between 0 and 1")
        # Fields of another kind are ignored, but must still be well-formed.
        low = SILENCE_RANGE[0] if spec.kind == SILENCE else 0
        if not low <= spec.silence_seconds <= SILENCE_RANGE[1]:
            v.add(
                "spec.silence_seconds",
                f"silence_seconds must be between {SILENCE_RANGE[0]} and {SILENCE_RANGE[1]}",
            )
        if spec.direction not in (ABOVE, BELOW) and (spec.kind == THRESHOLD or spec.direction):
            v.add("spec.direction", "direction must be above or below")
        if not math.isfinite(spec.value):
            v.add("spec.value", "value must be a finite number")
        if not (spec.email_to or spec.webhook_url or spec.live):
            v.add("spec.webhook_url", "choose at least one channel: email_to, webhook_url or live")
        if spec.email_to and (len(spec.email_to) > 254 or not _EMAIL.match(spec.email_to)):
            v.add("spec.email_to", "email_to must be an email address")
        if spec.webhook_url:
            if len(spec.webhook_url) > 2000:
                v.add("spec.webhook_url", "webhook_url must be at most 2000 characters")
            else:
                try:
                    await resolve_target(spec.webhook_url, allow_private=self._allow_private)
                except TargetRefused as exc:
                    v.add("spec.webhook_url", f"webhook_url {exc}")
        if not 0 <= spec.period_seconds <= MAX_PERIOD:
            v.add("spec.period_seconds", f"period_seconds must be between 0 and {MAX_PERIOD}")
        if bool(spec.quiet_start) != bool(spec.quiet_end):
            v.add("spec.quiet_end", "quiet_start and quiet_end go together")
        for field, value in (
            ("spec.quiet_start", spec.quiet_start),
            ("spec.quiet_end", spec.quiet_end),
        ):
            if value and not _CLOCK_TIME.match(value):
                v.add(field, "must be a time of day as HH:MM")
        if spec.time_zone:
            try:
                ZoneInfo(spec.time_zone)
            except (ZoneInfoNotFoundError, ValueError):
                v.add("spec.time_zone", "time_zone must be an IANA time zone such as Europe/Paris")
        v.raise_if_any()
        return replace(spec, name=name, stream_ids=stream_ids, device_ids=device_ids)

    async def _check_subjects(self, caller: Caller, spec: RuleSpec, names: Collection[str]) -> None:
        """Raise NOT_FOUND (naming the field) for the first stream or device of ``spec``'s
        fields among ``names`` that the caller may not read: another user's and an unknown
        one alike, as a correlation's streams. One question per id, asked only when a rule
        is created or those fields are set; an administrator may name any."""
        if caller.is_admin:
            return
        asked: list[tuple[str, str]] = []
        if "stream_ids" in names:
            asked += [("stream_ids", one) for one in dict.fromkeys(spec.stream_ids)]
        if "device_ids" in names:
            asked += [("device_ids", one) for one in dict.fromkeys(spec.device_ids)]
        if not asked:
            return
        at_once = asyncio.Semaphore(CHECKS_AT_ONCE)

        async def may_read(field: str, subject: str) -> bool:
            async with at_once:
                if field == "stream_ids":
                    return await self._readable.may_read_stream(
                        token=caller.token, stream_id=subject
                    )
                return await self._readable.may_read_device(token=caller.token, device_id=subject)

        answers = await asyncio.gather(
            *(may_read(field, subject) for field, subject in asked), return_exceptions=True
        )
        for (field, subject), answer in zip(asked, answers, strict=True):
            if isinstance(answer, BaseException):
                raise answer
            if not answer:
                kind, reason = (
                    ("Stream", reasons.STREAM_NOT_FOUND)
                    if field == "stream_ids"
                    else ("Device", reasons.DEVICE_NOT_FOUND)
                )
                raise NotFound(
                    f"{kind} {subject} not found (spec.{field})",
                    reason=reason,
                    metadata={"field": f"spec.{field}", "id": subject},
                )

    async def create(self, *, caller: Caller, spec: RuleSpec) -> tuple[Rule, str]:
        """Store a new rule; answers it and its signing secret (shown once)."""
        checked = await self._zoned(caller, await self._check_spec(spec))
        await self._check_subjects(caller, checked, SPEC_FIELDS)
        if await self._store.count_rules(owner_id=caller.subject) >= self._max_rules:
            raise FailedPrecondition(
                f"At most {self._max_rules} alert rules per user", reason=reasons.TOO_MANY_RULES
            )
        secret = new_secret()
        rule = await self._store.add_rule(
            rule_id=str(uuid.uuid4()),
            owner_id=caller.subject,
            spec=checked,
            sealed_secret=self._box.seal(secret),
            now=self._clock(),
        )
        self._on_change()
        return rule, secret

    async def get(self, *, caller: Caller, rule_id: str) -> Rule:
        """One of the caller's rules."""
        v = Violations()
        rule_id = check_uuid(v, rule_id, field="rule_id")
        v.raise_if_any()
        return owned(
            await self._store.rule(rule_id=rule_id),
            caller,
            message="Alert rule not found",
            reason=reasons.RULE_NOT_FOUND,
        )

    async def list_rules(
        self, *, caller: Caller, page: int, limit: int
    ) -> tuple[list[Rule], int, PageRequest]:
        """A page of the caller's rules (every rule for an administrator)."""
        v = Violations()
        paging = check_page(v, page, limit)
        v.raise_if_any()
        rules, total = await self._store.list_rules(
            owner_id=None if caller.is_admin else caller.subject,
            offset=paging.offset,
            limit=paging.limit,
        )
        return rules, total, paging

    async def update(
        self, *, caller: Caller, rule_id: str, spec: RuleSpec, names: Sequence[str]
    ) -> Rule:
        """Change the named fields of a rule (every field when ``names`` is empty)."""
        current = await self.get(caller=caller, rule_id=rule_id)
        v = Violations()
        for name in names:
            if name not in SPEC_FIELDS:
                v.add("fields", f"unknown field {name!r}: fields name AlertRuleSpec fields")
        v.raise_if_any()
        chosen = set(names) or set(SPEC_FIELDS)
        merged = replace(
            current.spec, **{name: getattr(spec, name) for name in SPEC_FIELDS if name in chosen}
        )
        checked = await self._zoned(caller, await self._check_spec(merged))
        await self._check_subjects(caller, checked, chosen)
        return self._changed(
            await self._store.update_spec(
                rule_id=current.id,
                spec=checked,
                reset=checked.kind != current.spec.kind,
                now=self._clock(),
            )
        )

    async def delete(self, *, caller: Caller, rule_id: str) -> str:
        """Delete a rule and its deliveries."""
        current = await self.get(caller=caller, rule_id=rule_id)
        await self._store.delete_rule(rule_id=current.id)
        self._on_change()
        return current.id

    async def rotate_secret(self, *, caller: Caller, rule_id: str) -> str:
        """Replace a rule's signing secret; answers the new one (shown once)."""
        current = await self.get(caller=caller, rule_id=rule_id)
        secret = new_secret()
        self._changed(
            await self._store.set_secret(
                rule_id=current.id, sealed=self._box.seal(secret), now=self._clock()
            )
        )
        return secret

    async def acknowledge(self, *, caller: Caller, rule_id: str) -> Rule:
        """Stop repeats of the rule's open alert until it clears or a new one begins."""
        current = await self.get(caller=caller, rule_id=rule_id)
        if not current.state.firing:
            raise FailedPrecondition("The rule has no open alert", reason=reasons.ALERT_NOT_OPEN)
        return self._changed(await self._store.acknowledge(rule_id=current.id, now=self._clock()))

    async def deliveries(
        self, *, caller: Caller, rule_id: str, page: int, limit: int
    ) -> tuple[list[Delivery], int, PageRequest]:
        """A page of a rule's deliveries."""
        current = await self.get(caller=caller, rule_id=rule_id)
        v = Violations()
        paging = check_page(v, page, limit)
        v.raise_if_any()
        found, total = await self._store.list_deliveries(
            rule_id=current.id, offset=paging.offset, limit=paging.limit
        )
        return found, total, paging

    def watch(self, *, caller: Caller, rule_id: str) -> Watch[AlertMessage]:
        """The caller's alert messages (every user's for an administrator) as they are sent
        (watched when this returns; close it),
        only ``rule_id``'s when given (a UUID: one in capitals, matched as given, matched
        nothing)."""
        if rule_id:
            violations = Violations()
            rule_id = check_uuid(violations, rule_id, field="rule_id")
            violations.raise_if_any()

        def accepts(message: AlertMessage) -> bool:
            mine = caller.is_admin or message.owner_id == caller.subject
            return mine and (not rule_id or message.rule_id == rule_id)

        return self._hub.watch(accepts)

    def _changed(self, rule: Rule | None) -> Rule:
        """A changed rule (the evaluator is told); one deleted between its check and its
        change is NOT_FOUND."""
        if rule is None:
            raise NotFound("Alert rule not found", reason=reasons.RULE_NOT_FOUND)
        self._on_change()
        return rule
