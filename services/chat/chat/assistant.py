"""The support assistant: answers from the asker's own devices, readings and anomalies,
and from the help articles; knows when to hand over to a person.

It understands a message (intent and slots, with the asker's device names and
time zone), reads what the answer needs through :class:`DataSources` with the
asker's own token, and drafts a reply that quotes figures with their units and
the time they refer to. An optional language model may rephrase the draft from
the same facts. It never raises for a message: a service that cannot be reached
is said so, and the reply is marked unsure so that a person is offered.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from iotkit.sqltypes import utcnow
from services.chat.chat.help.library import Passage
from services.chat.chat.nlu.understanding import DeviceRef, Understanding
from services.chat.chat.sources import (
    AnomalyInfo,
    DataSources,
    DeviceInfo,
    SourceUnavailable,
    StreamInfo,
)
from services.chat.chat.values import Asker, Facts, Reply, Turn

DATA_INTENTS = frozenset(
    {
        "device_count",
        "device_list",
        "device_status",
        "latest_reading",
        "reading_stats",
        "anomalies",
        "correlation",
    }
)
"""Intents answered from the asker's own data: they need a signed-in asker."""

DEFAULT_PERIOD = timedelta(hours=24)
"""The period of a question about readings or anomalies that names none."""
MAX_METRICS = 6
"""Metrics of one device answered at once when a question names none."""
NO_RELATION = 0.1
"""Below this |r| two streams are said to show no linear relation, not to move "weakly"."""

UNITS = {
    "temperature": "°C",
    "pressure": "hPa",
    "humidity": "%",
    "acceleration": "g",
    "vibration": "g",
}
"""Units of metrics by name (a metric whose name starts with one: "temperature_c" too)."""
TYPE_UNITS = {"temperature": "°C", "pressure": "hPa", "motion": "g"}
"""Units of what each device type reports (a motion sensor is an accelerometer), for a
figure whose metric is not known (an anomaly names only its device)."""

CAPABILITIES = (
    "I can tell you how many devices you have and how they are doing, what a device "
    "reads now, the minimum, maximum, mean and standard deviation over a period, which "
    "anomalies were found, how two devices' readings move together, the system status, "
    "and how to use iotsuite (devices, imports, two-factor sign-in, passwords, exports...)."
)
SIGN_IN = (
    "To look at devices and readings I need to know who you are: please sign in first. "
    "Meanwhile I can answer questions about how iotsuite works."
)
UNREACHABLE = (
    "I can't reach the readings right now, so I can't answer that reliably. "
    "Please try again in a minute, or ask for a person."
)
GENERIC_HELP = re.compile(
    r"\W*(?:hi\W+|hello\W+|hey\W+)?(?:(?:i|we)\s+)?(?:need|want|would\s+like|could\s+use)?\s*"
    r"(?:some\s+|a\s+little\s+)?(?:help|assistance|support)(?:\s+(?:me|us|please|pls|plz))*"
    r"(?:\s+with\s+(?:this|something|iotsuite))?\W*$|\W*how\s+do\s+i\s+use\s+(?:this|it|you)\W*$"
)
"""A request for help that names no topic: the answer is what can be asked."""
HOW_TO_ASK = (
    CAPABILITIES + ' Ask for example "how many devices do I have", "the freezer temperature since '
    'monday", "any anomalies today" or "how do I import a CSV".'
)
OFFER_PERSON = " If you'd like, I can hand you over to a person."
STATUS_WORDS = {"maintenance": "in maintenance"}
"""A device status as the end of "<device> is ...": "is in maintenance", "is active"."""
YES_NO_QUESTION = re.compile(
    r"\W*(?:is|are|was|were|do|does|did|can|could|will|would|should|has|have|may|am)\b"
)
"""The start of a question that a yes or a no answers."""
NOW_WORDS = re.compile(r"\b(?:now|currently|moment|atm|present)\b")
"""A period that is the instant now ("right now", "at the moment"), not one still to come."""
YES_NO_START = re.compile(r"\A(?:Yes|No)[.,:]\s+")
OFF_TOPIC_ARTICLE = 0.2
"""The help score an article needs to answer a message the classifier calls out of scope
(the library's own threshold, for a message taken as a help question, is 0.1)."""
ACCOUNT_MATTERS = re.compile(
    r"\b(?:billing|bill|invoices?|receipts?|subscriptions?|subscribe|pricing|prices?|cost|costs"
    r"|pay|paying|payments?|refunds?|charged\s+me|overcharged|credit\s+card|discounts?"
    r"|(?:my|our|the|a|paid|free|current|what|which)\s+plan|plans\s+(?:and|or)\s+pric\w*|tiers?"
    r"|(?:upgrade|downgrade)\s+(?:my\s+|our\s+|to\s+)?(?:plan|account|subscription|tier|enterprise)"
    r"|enterprise|sla|uptime\s+guarantee|contracts?|quotes?|seats?|licen[cs]es?"
    r"|(?:close|delete|cancel|terminate|remove|deactivate)\s+(?:my\s+|the\s+|our\s+)?"
    r"(?:whole\s+)?(?:account|profile|organi[sz]ation)"
    r"|(?:add|invite)\s+(?:more\s+|a\s+|another\s+|new\s+)?"
    r"(?:users?|people|members?|colleagues?|teammates?|team)"
    r"|team\s+(?:account|members?|plan))\b"
)
"""Billing, plans, contracts and the account itself: questions for the team, not the product."""
ACCOUNT_MATTER = (
    "Billing, plans, prices, contracts and closing or sharing an account are handled by "
    "our team, not by me: would you like me to hand you over to a person?"
)

SMALL_TALK = {
    "greeting": "Hello! " + CAPABILITIES,
    "thanks": "You're welcome. Anything else about your devices?",
    "goodbye": "Goodbye! The chat stays here if you need it again.",
    "smalltalk": "I'm the iotsuite assistant. " + CAPABILITIES,
}


class Understands(Protocol):
    """The NLU (:class:`~services.chat.chat.nlu.understanding.Understander`)."""

    def understand(
        self, text: str, *, now: datetime, tz: ZoneInfo, device_names: Sequence[str] = ()
    ) -> Understanding:
        """Intent and slots of ``text``."""
        ...


class Searches(Protocol):
    """The help articles (:class:`~services.chat.chat.help.library.HelpLibrary`)."""

    def search(self, query: str, *, limit: int = 3) -> list[Passage]:
        """The passages that answer ``query``, best first."""
        ...


class Phrases(Protocol):
    """An optional language model (:class:`~services.chat.chat.llm.Phraser`)."""

    async def phrase(self, *, question: str, facts: str, draft: str) -> str | None:
        """The draft rephrased from the facts, or None to keep the draft."""
        ...


@dataclass(slots=True)
class _Context:
    """What one reply knows: the asker's zone, devices, understanding and what it used."""

    tz: ZoneInfo
    now: datetime
    devices: list[DeviceInfo]
    understanding: Understanding
    token: str
    device_ids: list[str] = field(default_factory=list)
    stream_ids: list[str] = field(default_factory=list)
    start: datetime | None = None
    end: datetime | None = None

    def facts(self, articles: tuple[str, ...] = ()) -> Facts:
        return Facts(
            device_ids=tuple(dict.fromkeys(self.device_ids)),
            stream_ids=tuple(dict.fromkeys(self.stream_ids)),
            start=self.start,
            end=self.end,
            articles=articles,
        )

    def when(self, moment: datetime) -> str:
        """A time as the asker reads it: "14:05 on 30 Nov" in their zone."""
        local = moment.astimezone(self.tz)
        return f"{local:%H:%M} on {local.day} {local:%b %Y}"

    def period(self) -> tuple[datetime, datetime, str]:
        """The asked period, or the last 24 hours; recorded in the facts."""
        asked = self.understanding.slots.period
        if asked is not None:
            start, end, words = asked.start, asked.end, _when_words(asked.phrase)
        else:
            start, end, words = self.now - DEFAULT_PERIOD, self.now, "in the last 24 hours"
        self.start, self.end = start, end
        return start, end, words


class _Unanswerable(Exception):
    """The question cannot be answered as asked; the message says why (a question back)."""

    def __init__(self, message: str, *, unsure: bool = False) -> None:
        super().__init__(message)
        self.unsure = unsure


def unit_of(metric: str, device_type: str = "") -> str:
    """The unit of a metric by its name, or "" for a name of no known unit ("motion" may
    count anything); without a metric, the unit of what its device type reports."""
    name = metric.lower()
    if not name:
        return TYPE_UNITS.get(device_type.lower(), "")
    found = [unit for prefix, unit in UNITS.items() if name.startswith(prefix[:4])]
    return found[0] if found else ""


def figure(value: float, unit: str = "") -> str:
    """A reading as people write it: at most two decimals, with its unit."""
    text = f"{value:,.2f}".rstrip("0").rstrip(".")
    if not unit:
        return text
    return f"{text}{unit}" if unit in ("°C", "%") else f"{text} {unit}"


def _names(devices: Sequence[DeviceInfo], limit: int = 8) -> str:
    names = [d.name for d in devices[:limit]]
    more = f" and {len(devices) - limit} more" if len(devices) > limit else ""
    return ", ".join(names) + more


class SupportAssistant:
    """Answers a chat message from the asker's data and the help articles."""

    def __init__(
        self,
        *,
        understander: Understands,
        library: Searches,
        sources: DataSources,
        phraser: Phrases | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._understander = understander
        self._library = library
        self._sources = sources
        self._phraser = phraser
        self._clock = clock

    async def reply(self, *, text: str, asker: Asker, history: Sequence[Turn]) -> Reply:
        """The reply to ``text`` from ``asker``; never raises for what the asker wrote."""
        now = self._clock()
        zone, devices, reachable = ZoneInfo("UTC"), list[DeviceInfo](), True
        if asker.token is not None:
            try:
                zone = _zone(await self._sources.timezone(asker.token))
                devices = await self._sources.devices(asker.token)
            except SourceUnavailable:
                reachable = False
        understanding = self._understander.understand(
            text, now=now, tz=zone, device_names=[d.name for d in devices]
        )
        intent = understanding.intent
        if (
            intent != "human"
            and not any(ref.matches for ref in understanding.slots.devices)
            and ACCOUNT_MATTERS.search(text.lower())
        ):
            # Billing, plans and the account itself are the team's, not the product's: no
            # article answers "cancel my subscription" (it found "cancel a batch").
            return Reply(text=ACCOUNT_MATTER, intent="out_of_scope", confidence=0.0, unsure=True)
        if intent == "system_status" and (asker.token is None or not reachable):
            # The status is public (GET /v1/system/status needs no sign-in).
            try:
                return Reply(
                    text=await self._system_status(),
                    intent=intent,
                    confidence=understanding.confidence,
                )
            except SourceUnavailable:
                return Reply(text=UNREACHABLE, intent=intent, confidence=0.0, unsure=True)
        if intent in DATA_INTENTS and asker.token is None:
            return Reply(text=SIGN_IN, intent=intent, confidence=1.0)
        if intent in DATA_INTENTS and not reachable:
            return Reply(text=UNREACHABLE, intent=intent, confidence=0.0, unsure=True)
        if (intent not in DATA_INTENTS and intent != "system_status") or asker.token is None:
            return self._general(text, understanding)
        context = _Context(
            tz=zone, now=now, devices=devices, understanding=understanding, token=asker.token
        )
        try:
            draft = await self._answer(context)
        except _Unanswerable as question:
            return Reply(
                text=str(question),
                intent=understanding.intent,
                confidence=understanding.confidence,
                facts=context.facts(),
                unsure=question.unsure,
            )
        except SourceUnavailable:
            return Reply(
                text=UNREACHABLE,
                intent=understanding.intent,
                confidence=understanding.confidence,
                unsure=True,
            )
        return Reply(
            text=await self._phrased(text, draft),
            intent=understanding.intent,
            confidence=understanding.confidence,
            facts=context.facts(),
        )

    async def _phrased(self, question: str, draft: str) -> str:
        """The draft, rephrased by the language model when one is configured and answers."""
        if self._phraser is None:
            return draft
        # The facts are the draft itself: everything in it was read with the asker's token.
        phrased = await self._phraser.phrase(question=question, facts=draft, draft=draft)
        return phrased or draft

    def _general(self, text: str, understanding: Understanding) -> Reply:
        """Replies that need no data: help, small talk, a person, complaints, the rest."""
        intent, confidence = understanding.intent, understanding.confidence
        if intent == "human":
            return Reply(
                text="I'm handing you over to a person; they will answer here as soon as "
                "they can, with this conversation in front of them.",
                intent=intent,
                confidence=confidence,
                wants_person=True,
            )
        if intent == "complaint":
            return Reply(
                text="I'm sorry that didn't help." + OFFER_PERSON,
                intent=intent,
                confidence=confidence,
                unsure=True,
            )
        if intent in SMALL_TALK:
            return Reply(text=SMALL_TALK[intent], intent=intent, confidence=confidence)
        if intent == "help" or intent == "out_of_scope":
            found = self._library.search(text, limit=1)
            # A message the classifier finds off-topic needs a clearly matching article:
            # "write me a script to sort a list" only shares "sort" with the device list.
            if found and (intent == "help" or found[0].score >= OFF_TOPIC_ARTICLE):
                best = found[0]
                excerpt = _answering(text, best.text)
                excerpt = excerpt if len(excerpt) <= 600 else excerpt[:597] + "..."
                return Reply(
                    text=f"{best.title}: {excerpt}\n\nRead more: {best.url}",
                    intent="help",
                    confidence=max(confidence, min(1.0, best.score * 2)),
                    facts=Facts(articles=(best.slug,)),
                )
        if intent == "help" and GENERIC_HELP.match(text.lower()):
            # "help", "i need help": no topic to look up, so what the assistant can do.
            return Reply(text=HOW_TO_ASK, intent=intent, confidence=confidence)
        if intent == "help":
            return Reply(
                text="I couldn't find a help article about that." + OFFER_PERSON,
                intent=intent,
                confidence=confidence,
                unsure=True,
            )
        return Reply(
            text="I'm not sure I understood. " + CAPABILITIES + OFFER_PERSON,
            intent="out_of_scope",
            confidence=confidence,
            unsure=True,
        )

    async def _answer(self, context: _Context) -> str:
        """The draft reply of a question about data or the system."""
        intent = context.understanding.intent
        if intent == "system_status":
            return await self._system_status()
        if intent in ("device_count", "device_list"):
            return self._devices(context, listing=intent == "device_list")
        if intent == "device_status":
            return self._status(context)
        if intent == "latest_reading":
            return await self._latest(context)
        if intent == "reading_stats":
            return await self._stats(context)
        if intent == "anomalies":
            return await self._anomalies(context)
        return await self._correlation(context)

    async def _system_status(self) -> str:
        status = await self._sources.system_status()
        words = {
            "healthy": "Everything is running normally: every service is healthy.",
            "degraded": "The suite is running, but some parts are degraded; "
            "details are on the status page (GET /v1/system/status).",
        }
        return words.get(status, f"The suite reports its status as {status}.")

    # Devices --------------------------------------------------------------------------

    def _chosen(self, context: _Context) -> list[DeviceInfo]:
        """The devices the message names; a question back when a name is unknown or ambiguous."""
        refs: tuple[DeviceRef, ...] = context.understanding.slots.devices
        chosen: list[DeviceInfo] = []
        for ref in refs:
            if not ref.matches:
                device = _by_id(context, ref)
                if device is None:
                    raise _Unanswerable(_not_found(context, ref))
                chosen.append(device)
                continue
            if len(ref.matches) > 1:
                raise _Unanswerable(
                    f'Which device do you mean by "{ref.mention}": '
                    + ", ".join(ref.matches[:-1])
                    + f" or {ref.matches[-1]}?"
                )
            chosen += [d for d in context.devices if d.name == ref.matches[0]][:1]
        context.device_ids += [d.device_id for d in chosen]
        return chosen

    def _one(self, context: _Context) -> DeviceInfo:
        """The one device a question is about: the named one, or the only one there is."""
        chosen = self._chosen(context)
        if chosen:
            return chosen[0]
        if len(context.devices) == 1:
            context.device_ids.append(context.devices[0].device_id)
            return context.devices[0]
        if not context.devices:
            raise _Unanswerable("You have no devices yet. Register one first (POST /v1/devices).")
        raise _Unanswerable(
            f"Which device do you mean? Your devices are: {_names(context.devices)}."
        )

    def _devices(self, context: _Context, *, listing: bool) -> str:
        slots = context.understanding.slots
        for ref in slots.devices:
            if not ref.matches and _by_id(context, ref) is None:
                raise _Unanswerable(_not_found(context, ref))  # not listed past
        devices = [
            d
            for d in context.devices
            if (slots.device_type is None or d.type == slots.device_type)
            and (slots.device_status is None or d.status == slots.device_status)
        ]
        context.device_ids += [d.device_id for d in devices]
        kind = " ".join(filter(None, (slots.device_status, slots.device_type)))
        noun = f"{kind} device" if kind else "device"
        if not devices:
            return f"You have no {noun}s."
        count = f"You have {len(devices)} {noun}{'s' if len(devices) != 1 else ''}"
        if not listing:
            by_type = Counter(d.type for d in devices)
            parts = ", ".join(f"{n} {t}" for t, n in sorted(by_type.items()))
            by_status = Counter(d.status for d in devices)
            idle = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items()) if s != "active")
            detail = f": {parts}" if slots.device_type is None else ""
            return count + detail + (f" ({idle})." if idle else ".")
        lines = [
            f"- {d.name} ({d.type}, {d.status}"
            + (f", last reading {context.when(d.last_seen_at)}" if d.last_seen_at else "")
            + ")"
            for d in devices[:20]
        ]
        more = f"\n...and {len(devices) - 20} more." if len(devices) > 20 else ""
        return f"{count}:\n" + "\n".join(lines) + more

    def _status(self, context: _Context) -> str:
        device = self._one(context)
        if device.last_seen_at is None:
            seen = "It has sent no readings yet"
        else:
            ago = context.now - device.last_seen_at
            seen = f"Its last reading arrived at {context.when(device.last_seen_at)}" + (
                f", {_duration(ago)} ago" if ago > timedelta(minutes=2) else ""
            )
        advice = {
            "inactive": " Inactive devices keep their data but may not send readings; "
            "set it back to active to resume.",
            "maintenance": " Devices in maintenance may still send readings.",
        }.get(device.status, "")
        silent = device.last_seen_at is not None and (
            context.now - device.last_seen_at > timedelta(hours=1)
        )
        if device.status == "active" and silent:
            advice = " It is active but silent: check its power, network and credential."
        return (
            f"{device.name} ({device.type}) is {STATUS_WORDS.get(device.status, device.status)}. "
            f"{seen}, "
            f"{device.readings_total:,} readings in all ({context.tz.key})." + advice
        )

    # Readings -------------------------------------------------------------------------

    async def _stream(
        self, context: _Context, device: DeviceInfo, metric: str | None = None
    ) -> StreamInfo:
        """The stream of ``device`` for ``metric`` (by default the asked one), else its only one."""
        if metric is None:
            metric = context.understanding.slots.metric
        streams = await self._sources.streams(context.token, device.device_id)
        if metric is not None:
            streams = [s for s in streams if metric.lower() in s.metric_name.lower()] or (
                [s for s in streams if unit_of(s.metric_name, device.type) == UNITS.get(metric)]
            )
        if not streams:
            asked = f" {metric}" if metric else ""
            raise _Unanswerable(f"{device.name} has no{asked} readings yet.")
        if len(streams) > 1 and metric is None:
            names = ", ".join(s.metric_name for s in streams)
            raise _Unanswerable(f"{device.name} reports {names}: which one do you mean?")
        context.stream_ids.append(streams[0].stream_id)
        return streams[0]

    async def _asked_streams(self, context: _Context, device: DeviceInfo) -> list[StreamInfo]:
        """The streams of ``device`` the question names: one per metric ("temperature and
        humidity" is two), else the one asked for, else all of them ("the latest from the
        boiler room" answers each metric it reports rather than asking which)."""
        slots = context.understanding.slots
        if len(slots.metrics) >= 2:
            return [await self._stream(context, device, metric) for metric in slots.metrics]
        if slots.metric is not None:
            return [await self._stream(context, device)]
        streams = await self._sources.streams(context.token, device.device_id)
        if not streams:
            raise _Unanswerable(f"{device.name} has no readings yet.")
        streams = sorted(streams, key=lambda s: s.metric_name)[:MAX_METRICS]
        context.stream_ids += [s.stream_id for s in streams]
        return streams

    async def _latest(self, context: _Context) -> str:
        asked = context.understanding.slots.period
        if asked is not None and asked.start < asked.end:
            # "what was it at 7pm yesterday", "... on monday": a past range, not the newest value.
            return await self._stats(context)
        device = self._one(context)
        return await self._latest_lines(context, device, await self._asked_streams(context, device))

    async def _latest_lines(
        self, context: _Context, device: DeviceInfo, streams: Sequence[StreamInfo]
    ) -> str:
        lines = []
        for stream in streams:
            label = _label(device, stream)
            if stream.latest_value is None or stream.last_seen_at is None:
                lines.append(f"{device.name} has no {stream.metric_name} readings yet.")
                continue
            context.start = context.end = stream.last_seen_at
            value = figure(stream.latest_value, unit_of(stream.metric_name, device.type))
            lines.append(
                f"{label}: {value} at {context.when(stream.last_seen_at)} ({context.tz.key})."
            )
        return "\n".join(lines)

    async def _stats(self, context: _Context) -> str:
        device = self._one(context)
        streams = await self._asked_streams(context, device)
        start, end, words = context.period()
        if start >= end:
            # "the average now" is the newest value; a period still to come ("between 10:00
            # and 12:00 today" asked at 7) has no readings yet: say so, with the newest.
            context.start = context.end = None
            latest = await self._latest_lines(context, device, streams)
            if NOW_WORDS.search(words.lower()):
                return latest
            return f"{words[0].upper()}{words[1:]} is still to come. The newest:\n{latest}"
        lines = []
        for stream in streams:
            stats = await self._sources.stats(context.token, stream.stream_id, start, end)
            if stats.count == 0:
                lines.append(f"{device.name} has no {stream.metric_name} readings {words}.")
                continue
            unit = unit_of(stream.metric_name, device.type)
            lines.append(
                f"{_label(device, stream)} {words} "
                f"({context.when(start)} to {context.when(end)}, {context.tz.key}): "
                f"min {figure(stats.min, unit)}, max {figure(stats.max, unit)}, "
                f"mean {figure(stats.mean, unit)} over {stats.count:,} readings, "
                f"standard deviation {figure(stats.stddev, unit)}."
            )
        return "\n".join(lines)

    async def _anomalies(self, context: _Context) -> str:
        slots = context.understanding.slots
        chosen = self._chosen(context)
        device = chosen[0] if chosen else None
        start, end, words = context.period()
        found = await self._sources.anomalies(
            context.token,
            start=start,
            end=end,
            device_id=device.device_id if device else None,
            anomaly_type=slots.anomaly_type,
            review_status=slots.review_status,
        )
        where = f" on {device.name}" if device else ""
        anomaly_type = (slots.anomaly_type or "").replace("_", " ")
        kind = " ".join(filter(None, (slots.review_status, anomaly_type)))
        noun = f"{kind} anomal" if kind else "anomal"
        if not found:
            return f"No {noun}ies{where} {words}."
        context.stream_ids += [a.stream_id for a in found]
        context.device_ids += [a.device_id for a in found]
        by_type = Counter(a.anomaly_type.replace("_", " ") for a in found)
        summary = ", ".join(f"{n} {t}" for t, n in by_type.most_common())
        names = {d.device_id: d for d in context.devices}
        by_device = Counter(a.device_id for a in found)
        if device is None and len(by_device) > 1:
            # "which device has the most anomalies": the count of each, most first.
            summary += "; " + ", ".join(
                f"{n} on {names[d].name if d in names else 'a device'}"
                for d, n in by_device.most_common(5)
            )
        metrics = await self._metrics_of(context, found[:5])
        lines = [self._anomaly_line(context, a, names, metrics) for a in found[:5]]
        more = f"\n...and {len(found) - 5} more." if len(found) > 5 else ""
        count = f"{len(found)}{'+' if len(found) >= 100 else ''}"
        plural = "y" if len(found) == 1 else "ies"
        return (
            f"{count} {noun}{plural}{where} {words} ({summary}), newest first "
            f"({context.tz.key}):\n" + "\n".join(lines) + more
        )

    async def _metrics_of(
        self, context: _Context, anomalies: Sequence[AnomalyInfo]
    ) -> dict[str, str]:
        """The metric of each anomaly's stream, by stream id: an anomaly names only its
        device, and a temperature device may report pressure too (its figure is in hPa)."""
        metrics: dict[str, str] = {}
        for device_id in dict.fromkeys(a.device_id for a in anomalies):
            try:
                streams = await self._sources.streams(context.token, device_id)
            except SourceUnavailable:
                continue  # the device type's unit, as before
            metrics.update({s.stream_id: s.metric_name for s in streams})
        return metrics

    @staticmethod
    def _anomaly_line(
        context: _Context,
        anomaly: AnomalyInfo,
        devices: dict[str, DeviceInfo],
        metrics: dict[str, str],
    ) -> str:
        device = devices.get(anomaly.device_id)
        name = device.name if device else "a device"
        metric = metrics.get(anomaly.stream_id, "")
        unit = unit_of(metric, device.type if device else "")
        if metric and metric.lower() not in name.lower().split():
            name = f"{name} {metric}"
        return (
            f"- {anomaly.anomaly_type.replace('_', ' ')} on {name} at "
            f"{context.when(anomaly.detected_at)}: {figure(anomaly.raw_value, unit)} "
            f"({anomaly.status})"
        )

    async def _correlation(self, context: _Context) -> str:
        chosen = self._chosen(context)
        metrics = context.understanding.slots.metrics
        if len(chosen) == 1 and len(metrics) >= 2:
            chosen = [chosen[0], chosen[0]]  # two metrics of one device
        if len(chosen) < 2:
            raise _Unanswerable(
                "Which two devices should I compare? For example: "
                '"how does the greenhouse temperature correlate with the cellar?"'
            )
        first, second = chosen[0], chosen[1]
        # The metrics pair with the devices in the order written ("the barn's humidity vs the
        # boiler's pressure"); one metric for two devices is asked of both, where they have it.
        stream_a = await self._side(context, first, metrics[0] if metrics else None)
        stream_b = await self._side(context, second, metrics[1] if len(metrics) > 1 else None)
        start, end, words = context.period()
        found = await self._sources.correlate(
            context.token, stream_a.stream_id, stream_b.stream_id, start, end
        )
        strength = abs(found.coefficient)
        trust = "a real relation" if found.p_value < 0.05 else "not significant: it could be chance"
        if strength < NO_RELATION:
            how = "show no linear relation"
        else:
            kind = "strongly" if strength >= 0.7 else "moderately" if strength >= 0.4 else "weakly"
            sense = "together" if found.coefficient >= 0 else "in opposite directions"
            how = f"move {kind} {sense}"
        return (
            f"{words[0].upper()}{words[1:]}, {_label(first, stream_a)} and "
            f"{_label(second, stream_b)} {how}: Pearson r = {found.coefficient:.2f} "
            f"over {found.sample_count:,} paired samples (p = {found.p_value:.3g}, {trust})."
        )

    async def _side(self, context: _Context, device: DeviceInfo, metric: str | None) -> StreamInfo:
        """One side of a correlation: ``metric`` of ``device``; a device without that metric
        but with a single stream offers that stream ("the greenhouse temperature and the
        cellar", whose only stream is humidity)."""
        metric = metric or context.understanding.slots.metric
        try:
            return await self._stream(context, device, metric)
        except _Unanswerable:
            if metric is None:
                raise
            streams = await self._sources.streams(context.token, device.device_id)
            if len(streams) != 1:
                raise
            context.stream_ids.append(streams[0].stream_id)
            return streams[0]


def _by_id(context: _Context, ref: DeviceRef) -> DeviceInfo | None:
    """The asker's device whose id ``ref`` writes ("device 3f2a...-..."), if any."""
    return next((d for d in context.devices if d.device_id == ref.mention.lower()), None)


def _not_found(context: _Context, ref: DeviceRef) -> str:
    """Says that no device of the asker's is called ``ref``: never another one's answer."""
    said = f'I couldn\'t find a device called "{ref.mention}".'
    if not context.devices:
        return said + " You have no devices yet."
    names = [d.name for d in context.devices]
    close = difflib.get_close_matches(
        ref.mention.lower(), [n.lower() for n in names], n=1, cutoff=0.6
    )
    if close:
        return said + f" Did you mean {names[[n.lower() for n in names].index(close[0])]}?"
    return said + f" Your devices are: {_names(context.devices)}."


def _label(device: DeviceInfo, stream: StreamInfo) -> str:
    """A stream as people name it: "Greenhouse temperature"; "Hallway motion", not
    "Hallway motion motion", when the device's name already says the metric."""
    if stream.metric_name.lower() in device.name.lower().split():
        return device.name
    return f"{device.name} {stream.metric_name}"


def _answering(question: str, passage: str) -> str:
    """``passage`` as an answer to ``question``: without the "Yes." or "No." that answers
    its heading's question ("Does dismissing teach the detector?") when ``question`` asks
    something else ("how do I tune the detector")."""
    if YES_NO_QUESTION.match(question.lower()):
        return passage
    return YES_NO_START.sub("", passage, count=1)


def _when_words(phrase: str) -> str:
    """A period as written, fit to follow a sentence: "the past hour" -> "in the past hour",
    "past 3 hours" -> "in the past 3 hours"; "today", "last night", "since monday" stay."""
    words = " ".join(phrase.split())
    lower = words.lower()
    if lower.startswith(("in ", "over ", "during ", "since ", "for ", "from ", "between ")):
        return words
    if lower.startswith("the "):
        return f"in {words}"
    if re.match(r"(past|last|previous)\s+(\d+|a|an|few)\b", lower):
        return f"in the {words}"
    return words


def _zone(name: str) -> ZoneInfo:
    """The asker's time zone; UTC when the profile names none we know."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _duration(span: timedelta) -> str:
    """A rough span in words: "3 hours", "2 days"."""
    seconds = int(span.total_seconds())
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"
