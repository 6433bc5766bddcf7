"""What a chat message asks: its intent, how sure that is, and its slots.

The :class:`Understander` is built once at start-up (:meth:`Understander.trained`
trains the intent classifier from the packaged utterances in well under a
second) and then answers :meth:`Understander.understand` for each message.

Confidence is how sure the assistant is that it can serve the message as the
intent it names: the classifier's probability of that intent. When no intent
reaches :data:`THRESHOLD`, or the message has fewer than two letters or digits,
the intent is ``out_of_scope``; an ``out_of_scope`` answer's confidence is the
probability of the likeliest intent the assistant *can* serve, so off-topic
requests and nonsense alike come with a low confidence, and the caller treats
a low confidence as "unsure" (offer a person) whatever the intent.

A few rules then check the classifier where its training is known to be thin
(:meth:`Understander._checked`): a correlation needs a word that compares
("correlate", "vs", "move together"...), otherwise "greenhouse temperature"
or "temperature and humidity in the barn" asks for readings, and two devices
or metrics with such a word are a correlation whatever the rest; "how do I
correlate two streams" with no device named asks how, not which; and a
complaint that names a device ("what went wrong with the boiler room") and
not the assistant ("you got that wrong") is about the device.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from zoneinfo import ZoneInfo

from services.chat.chat.nlu import periods, slots
from services.chat.chat.nlu.classifier import Example, IntentClassifier, load_examples
from services.chat.chat.nlu.devices import find_devices, find_unknown
from services.chat.chat.nlu.text import Speller
from services.chat.chat.nlu.values import DeviceRef, Period, Slots

__all__ = [
    "INTENTS",
    "THRESHOLD",
    "DeviceRef",
    "Period",
    "Slots",
    "Understander",
    "Understanding",
]

INTENTS = ("greeting", "thanks", "goodbye", "smalltalk", "device_count", "device_list",
           "device_status", "latest_reading", "reading_stats", "anomalies", "correlation",
           "system_status", "help", "human", "complaint", "out_of_scope")  # fmt: skip
THRESHOLD = 0.35
"""Below this probability of its likeliest intent a message is out of scope."""
MAX_CHARS = 4000
"""Characters of a message read (the chat API refuses longer ones)."""
DEVICE_TOKEN = "xdevicex"
"""What the classifier reads in place of a device's name: names say nothing of intent."""
KNOWN_WORDS = frozenset(
    {
        "outline",
        "mouth",
        "money",
        "mondays",
        "house",
        "ranger",
        "spiker",
        "dripped",
        "dropper",
        "penning",
        "rating",
        "reader",
        "leading",
        "centre",
        "center",
        "monitor",
        "sunday",
    }
)
"""Real words one edit from a keyword, which the speller must leave alone."""

_ALNUM = re.compile(r"[^\W_]", re.UNICODE)
COMPARISON = re.compile(
    r"correlat|\bcorr\b|\bcompar|\brelat(?:e|ed|es|ion|ions|ionship)\b|\bvs\.?(?!\w)|\bversus\b"
    r"|\bagainst\b|\btogether\b|\blink(?:ed|s)?\b|\bare\b.*\band\b.*\bconnected\b"
    r"|\bfollow(?:s|ing)?\b|\btrack(?:s|ing)?\b|\bin\s+sync\b|\blag(?:s|ging)?\b|\bpredicts?\b"
    r"|\bmatch\b|\bsimilar\b|\baffect(?:s|ed)?\b|\binfluenc|\bdepends?\b|\bpearson\b"
    r"|\bspearman\b|\bcoefficient\b|\bwhen\b.*\bdo(?:es)?\b"
    r"|\b(?:rise|rises|go|goes|drop|drops|fall|falls)\s+(?:up\s+|down\s+)?(?:with|when|as)\b"
)
"""Words that make a message a comparison of two streams; a correlation needs one."""
HOW_TO = re.compile(
    r"^\W*(?:how\s+(?:do|can|would|should)\s+(?:i|we|you)|how\s+to|where\s+(?:do|can)\s+i"
    r"|what\s+(?:is|does|are)|explain)\b"
)
"""The start of a question about how iotsuite works, rather than about the asker's data."""
DEVICE_INTENTS = ("device_status", "anomalies", "latest_reading", "reading_stats")
"""What a message that names a device may ask, when the classifier calls it a complaint."""
ADDRESSED = re.compile(r"\b(?:you|your|you'?re|u|ur|bot|assistant|answer|reply|useless|helpful)\b")
"""Words of a complaint about the assistant itself ("you got that wrong")."""
STATUS_ASKED = re.compile(
    r"\b(?:status|state|online|offline|on\s*line|off\s*line|active|inactive|alive|dead|up|down"
    r"|working|running|connected|disconnected|reachable|unreachable|silent|report(?:s|ed|ing)?"
    r"|send(?:s|ing)?|sent|seen|maintenance|ok|okay|fine|health|healthy|broken|battery)\b"
)
"""Words of a question about a device's state; without one, a device and a past range ask
for its readings then."""
LATEST_ASKED = re.compile(
    r"\b(?:last|latest|newest|most\s+recent|current(?:ly)?|now)\b(?!\s+(?:\d|few|couple|several))"
)
"""A question about the newest value ("last humidity", "latest reading"), when no period
was found (so "last" starts no "last 3 hours")."""
PERSON_ASKED = re.compile(
    r"\b(?:give|get|want|need|talk|speak|connect|transfer|put)\b.*"
    r"\b(?:human|person|people|someone|somebody|agent|operator|representative|staff)\b"
)
"""An explicit ask for a person inside a complaint."""
ABOUT_A_DEVICE = frozenset(
    {"device_status", "latest_reading", "reading_stats", "anomalies", "correlation",
     "system_status"}
)  # fmt: skip
"""Intents whose answer depends on which device is meant: a name the user does not have
is read as a name there ("is the kitchen online" is not about the system)."""
SURE_OF_A_NAME = 0.9
"""How sure the classifier must be, once an unknown word is read as a device's name, to
take an off-topic message as one about a device ("pantry humidity", not "the capital
of Peru")."""
PRODUCT_WORDS = frozenset(
    {"chart", "charts", "graph", "graphs", "dashboard", "console", "page", "screen", "app",
     "list", "table", "log", "logs", "trend", "history", "value", "values", "number", "total",
     "moment", "day", "days", "week", "weeks", "hour", "hours", "time", "morning", "evening",
     "afternoon", "night", "start", "end", "data", "system", "suite", "platform", "service",
     "services", "server", "status", "alerts", "alert", "month", "year", "ago", "noon",
     "midday", "midnight", "celsius", "fahrenheit", "average", "mean", "median", "units"}
)  # fmt: skip
"""Words of questions about data that the training utterances may lack, never a name."""
NOT_NAMES = frozenset(
    # politeness and fillers
    {"pls", "plz", "please", "thanks", "thx", "asap", "btw", "lately", "recently", "currently",
     "anyway", "per", "each", "every", "kindly", "sir", "madam", "guys",
     # people a question is for or about
     "boss", "manager", "colleague", "colleagues", "team", "customer", "customers", "client",
     "clients", "user", "users", "admin", "technician", "engineer", "me", "us",
     # kinds of device, never one device's name
     "thermostat", "thermostats", "thermometers", "gateway", "gateways", "hub", "hubs",
     "controller", "controllers", "camera", "cameras", "tracker", "trackers", "actuator",
     "actuators", "hygrometer", "hygrometers", "barometers", "accelerometers", "things",
     "stuff", "equipment", "machines", "fleet",
     # the product's own nouns, asked about in help questions
     "retention", "quota", "quotas", "limit", "limits", "plan", "plans", "api", "key", "keys",
     "token", "tokens", "webhook", "webhooks", "notification", "notifications", "email",
     "emails", "username", "password", "account", "profile", "settings", "timezone",
     "export", "import", "csv", "file", "files", "upload", "uploads", "batch", "batches",
     "fortnight", "quarter", "weekday", "weekdays", "weekend", "weekends", "whole", "entire",
     "full",
     *periods.DAY_ABBREVIATIONS}
)  # fmt: skip
"""Words the training utterances may lack that are never a device's name: "my sensors pls",
"for my boss", "all my gateways", "the data retention", "from mon to wed"."""


@dataclass(frozen=True, slots=True)
class Understanding:
    """The intent of a message, how sure the assistant is of it, and the slots."""

    intent: str
    """One of :data:`INTENTS`."""
    confidence: float
    """0..1, calibrated: low means unsure (see the module's docstring)."""
    slots: Slots


def _clean(text: str) -> str:
    """``text`` without control characters (newlines and tabs become spaces)."""
    return "".join(
        " " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch
        for ch in text[:MAX_CHARS]
    )


class Understander:
    """Intents by a trained classifier, slots by rules."""

    def __init__(self, classifier: IntentClassifier) -> None:
        unknown = set(classifier.intents) - set(INTENTS)
        if unknown:
            raise ValueError(f"training data has intents outside INTENTS: {sorted(unknown)}")
        self._classifier = classifier
        self._speller = Speller(keywords=periods.KEYWORDS | slots.KEYWORDS, known=KNOWN_WORDS)
        # The assistant's own language: a word outside it where a name stands is a name.
        self._language = (
            classifier.vocabulary()
            | periods.KEYWORDS
            | slots.KEYWORDS
            | frozenset(periods.MONTHS)
            | KNOWN_WORDS
            | PRODUCT_WORDS
            | NOT_NAMES
        )

    @classmethod
    def trained(cls) -> Understander:
        """An understander trained on the packaged utterances."""
        names = _training_devices()
        examples = [
            Example(text=_for_classifier(e.text, find_devices(e.text, names)), intent=e.intent)
            for e in load_examples()
        ]
        return cls(IntentClassifier.train(examples))

    def intent(self, text: str, *, device_names: Sequence[str] = ()) -> tuple[str, float]:
        """The intent of ``text`` and the confidence in it (see the module's docstring)."""
        text = _clean(text)
        return self._intent(text, find_devices(text, device_names))

    def _intent(self, text: str, devices: Sequence[DeviceRef]) -> tuple[str, float]:
        if len(_ALNUM.findall(text)) < 2:
            return "out_of_scope", 0.0
        probabilities = self._checked(
            text, devices, self._classifier.probabilities(_for_classifier(text, devices))
        )
        best = max(probabilities, key=lambda i: (probabilities[i], i))
        servable = max((p for i, p in probabilities.items() if i != "out_of_scope"), default=0.0)
        if best == "out_of_scope" or probabilities[best] < THRESHOLD:
            return "out_of_scope", min(servable, probabilities[best])
        return best, probabilities[best]

    def _checked(
        self, text: str, devices: Sequence[DeviceRef], probabilities: dict[str, float]
    ) -> dict[str, float]:
        """The classifier's probabilities, corrected where a rule knows better.

        A corrected intent takes the probability of the one it replaces (the
        classifier's certainty about the message's kind still holds), and the
        replaced intent drops to 0.
        """
        best = max(probabilities, key=lambda i: (probabilities[i], i))
        lowered = self._speller.normalise(text).text
        target: str | None = None
        if best == "correlation" and not devices and HOW_TO.search(lowered):
            target = "help"
        elif (
            best in ("latest_reading", "reading_stats")
            and COMPARISON.search(lowered)
            and (len(devices) >= 2 or len(slots.find_metrics(lowered)) >= 2)
        ):
            target = "correlation"  # "the attic temperature vs the cellar humidity"
        elif best == "correlation" and not COMPARISON.search(lowered):
            others = [i for i in probabilities if i != "correlation"]
            target = max(others, key=lambda i: (probabilities[i], i))
        elif best == "complaint" and devices and not ADDRESSED.search(lowered):
            target = max(DEVICE_INTENTS, key=lambda i: (probabilities.get(i, 0.0), i))
        if target is None or target not in probabilities:
            return probabilities
        corrected = dict(probabilities)
        corrected[target] = max(probabilities[target], probabilities[best])
        corrected[best] = 0.0
        return corrected

    def slots(
        self, text: str, *, now: datetime, tz: ZoneInfo, device_names: Sequence[str] = ()
    ) -> Slots:
        """The slots of ``text``: devices among ``device_names``, and the rest by rules."""
        text = _clean(text)
        return self._slots(text, find_devices(text, device_names), now=now, tz=tz)

    def _slots(
        self, text: str, devices: tuple[DeviceRef, ...], *, now: datetime, tz: ZoneInfo
    ) -> Slots:
        # A device's name says nothing of time or metric ("Night Store", "Temp Probe 2").
        masked = _mask(text, devices, " ")
        normalised = self._speller.normalise(masked)
        words = slots.find_slots(normalised.text)
        return Slots(
            devices=devices,
            device_type=words["device_type"],
            device_status=words["device_status"],
            metric=words["metric"],
            period=periods.find_period(normalised, now=now, tz=tz),
            anomaly_type=words["anomaly_type"],
            review_status=words["review_status"],
            metrics=slots.find_metrics(normalised.text),
        )

    def understand(
        self, text: str, *, now: datetime, tz: ZoneInfo, device_names: Sequence[str] = ()
    ) -> Understanding:
        """What ``text`` asks, at ``now`` (aware) for a user in ``tz`` who owns ``device_names``."""
        text = _clean(text)
        devices = find_devices(text, device_names)
        intent, confidence = self._intent(text, devices)
        unknown = find_unknown(text, self._language, devices, device_names)
        if unknown and intent in ABOUT_A_DEVICE | {"device_list", "device_count", "out_of_scope"}:
            named = tuple(sorted((*devices, *unknown), key=lambda r: text.find(r.mention)))
            if intent in ABOUT_A_DEVICE | {"out_of_scope"}:
                # Read as the user's own names are: "is the kitchen online" asks of a device,
                # "pantry humidity" of a pantry; a message that is not about a device then
                # ("the capital of Peru") stays what it was.
                again, sure = self._intent(text, named)
                if intent != "out_of_scope" or (again in ABOUT_A_DEVICE and sure >= SURE_OF_A_NAME):
                    intent, confidence = again, sure
            if intent not in ("system_status", "out_of_scope"):
                devices = named
        found = self._slots(text, devices, now=now, tz=tz)
        intent = _settled(intent, self._speller.normalise(text).text, found)
        return Understanding(
            intent=intent,
            confidence=min(1.0, max(0.0, confidence)),
            slots=found,
        )


def _settled(intent: str, lowered: str, found: Slots) -> str:
    """The intent, corrected by what the slots show (see :data:`STATUS_ASKED`...)."""
    known = [ref for ref in found.devices if ref.matches]
    period = found.period
    if (
        intent == "device_status"
        and period is not None
        and period.start < period.end
        and not STATUS_ASKED.search(lowered)
    ):
        return "reading_stats"  # "boiler room data from the 1st to the 15th"
    if intent == "reading_stats" and period is None and LATEST_ASKED.search(lowered):
        return "latest_reading"  # "the last humidity of sensor 3": no period, the newest
    if (
        intent == "device_list"
        and len(found.devices) == 1
        and known
        and found.device_type is None
        and found.device_status is None
    ):
        return "device_status"  # "show me device boiler room": that one, not the list
    if intent == "complaint" and PERSON_ASKED.search(lowered):
        return "human"  # "useless bot, give me a human": the ask wins over the grumble
    return intent


def _training_devices() -> list[str]:
    """The device names the training utterances mention (masked there as at run time)."""
    raw = resources.files("services.chat.chat.nlu").joinpath("data/devices.txt").read_text()
    return [line.strip() for line in raw.splitlines() if line.strip()]


def _mask(text: str, devices: Sequence[DeviceRef], fill: str) -> str:
    """``text`` with each device mention replaced: by spaces when ``fill`` is one, else once."""
    for ref in devices:
        at = text.find(ref.mention)
        if at >= 0:
            put = " " * len(ref.mention) if fill == " " else f" {fill} "
            text = text[:at] + put + text[at + len(ref.mention) :]
    return text


def _for_classifier(text: str, devices: Sequence[DeviceRef]) -> str:
    return _mask(text, devices, DEVICE_TOKEN)
