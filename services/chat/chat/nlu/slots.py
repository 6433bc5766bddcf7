"""The slots said in words: device type and status, metric, anomaly type, review status.

Each slot is a list of (pattern, value) rules tried on the normalised text
(lowercase, keyword typos corrected: :mod:`text`); the earliest match in the
text wins, and at the same place the longest. Synonyms are the words people
use, not the API's: "temp" and "how hot" are temperature, "hPa" is pressure,
"stuck" is a flatline, "false alarm" is dismissed.

A metric word that names a kind of device ("temperature sensors") is the
device type, not also the metric: "how many temperature sensors" asks for a
count by type, "the temperature of sensor 3" for a reading.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

Rule = tuple[re.Pattern[str], str]


def _rules(*pairs: tuple[str, str]) -> tuple[Rule, ...]:
    return tuple((re.compile(pattern), value) for pattern, value in pairs)


_DEVICE_NOUN = (
    r"(?:sensors?|devices?|probes?|units?|nodes?|meters?|monitors?|detectors?|gauges?|things?"
    r"|ones?)"
)
DEVICE_TYPES = _rules(
    (r"\b(?:temperature|temp|thermal)\s+" + _DEVICE_NOUN + r"\b", "temperature"),
    (r"\bthermometers?\b|\bthermostats?\b", "temperature"),
    (r"\b(?:pressure|barometric|baro)\s+" + _DEVICE_NOUN + r"\b", "pressure"),
    (r"\bbarometers?\b|\bmanometers?\b", "pressure"),
    (
        r"\b(?:motion|movement|vibration|accelerometer|acceleration|pir)\s+" + _DEVICE_NOUN + r"\b",
        "motion",
    ),
    (r"\baccelerometers?\b|\bmotion\s+detectors?\b", "motion"),
    (r"\bgeneric\s+" + _DEVICE_NOUN + r"\b", "generic"),
)
DEVICE_STATUSES = _rules(
    (
        r"\bunder\s+maintenance\b|\bin\s+maintenance\b|\bmaintenance\b|\bbeing\s+(?:serviced|repaired)"
        r"\b|\bunder\s+repair\b|\bin\s+service\s+mode\b",
        "maintenance",
    ),
    (
        r"\binactive\b|\bdisabled\b|\boffline\b|\boff\s*line\b|\bdisconnected\b|\bnot\s+(?:online|"
        r"active|connected|working|reporting|responding|sending)\b|\b(?:is|are|'s|been|gone)\s+"
        r"(?:(?:it|they|that|this|one)\s+)?(?:down|dead|dark)\b|\bdead\b|\bunreachable\b|\bnot\s+talking\b|\bstopped\s+working\b",
        "inactive",
    ),
    (
        r"\bactive\b|\bonline\b|\bon\s*line\b|\bconnected\b|\benabled\b|\bup\s+and\s+running\b|"
        r"\b(?:is|are)\s+(?:up|working|running|live)\b|\bworking\s+ones\b|\blive\b",
        "active",
    ),
)
METRICS = _rules(
    (
        r"\btemperatures?\b|\btemps?\b|\bdegrees?\b|°\s*[cf]?|\bcelsius\b|\bcelcius\b|\bfahrenheit\b"
        r"|\bhow\s+(?:hot|cold|warm|cool)\b|\bhottest\b|\bcoldest\b|\bwarmest\b|\bcoolest\b"
        r"|\bthermal\b",
        "temperature",
    ),
    (
        r"\bhumidity\b|\bhumid\b|\brh\b|\brelative\s+humidity\b|\bmoisture\b|\bdamp(?:ness)?\b",
        "humidity",
    ),
    (r"\bpressures?\b|\bhpa\b|\bmbar\b|\bmillibars?\b|\bbarometric\b|\bkpa\b|\bpsi\b", "pressure"),
    (
        r"\bvibrations?\b|\baccelerations?\b|\baccel\b|\bg[\s-]?force\b|\bshaking\b|\bvibrating\b",
        "acceleration",
    ),
    (r"\bbattery\b|\bbatteries\b|\bvoltage\b", "battery"),
    (r"\bco2\b|\bcarbon\s+dioxide\b", "co2"),
)
ANOMALY_TYPES = _rules(
    (
        r"\bout\s+of\s+(?:range|bounds|limits?|spec)\b|\bover\s+(?:the\s+)?(?:limit|threshold)s?\b"
        r"|\b(?:above|below|outside|beyond|exceed(?:ed|ing|s)?)\s+(?:the\s+)?(?:normal\s+)?(?:range|"
        r"limits?|thresholds?|bounds)\b|\bout-of-range\b|\bout_of_range\b",
        "out_of_range",
    ),
    (
        r"\bspikes?\b|\bspiked\b|\bspiking\b|\bspikey\b|\bspiky\b|\bjump(?:ed|s)?\s+up\b|\bpeaks\b"
        r"|\bsurges?\b|\bshot\s+up\b|\bsudden\s+(?:rise|increase)\b",
        "spike",
    ),
    (
        r"\bdips?\b|\bdipped\b|\bdrops?\b|\bdropped\b|\bplunge[sd]?\b|\bplummet(?:ed)?\b|\bsudden\s+"
        r"(?:fall|decrease)\b|\bfell\b|\bcrash(?:ed)?\b",
        "dip",
    ),
    (
        r"\bflat\s*lines?\b|\bflatlin(?:ed|ing)\b|\bflat\b|\bstuck\b|\bfrozen\b|\bfroze\b|\bnot\s+"
        r"changing\b|\bunchanging\b|\bsame\s+value\b|\bconstant\b|\bhasn'?t\s+changed\b",
        "flatline",
    ),
    (
        r"\bgaps?\b|\bmissing\s+(?:data|readings|values)\b|\bno\s+(?:data|readings)\b|\bsilent\b|"
        r"\bsilence\b|\bwent\s+quiet\b|\bdata\s+loss\b|\bdropouts?\b|\bholes?\b|\bstopped\s+"
        r"(?:reporting|sending)\b|\bmissing\b",
        "gap",
    ),
    (
        r"\brate\s+of\s+change\b|\brate-of-change\b|\bchang(?:ed|ing|es)\s+too\s+fast\b|\bramp(?:ed|s|ing)?"
        r"\b|\bstep\s+changes?\b|\blevel\s+shifts?\b|\bshifts?\b|\bjumps?\b|\bjumped\b|\bsudden\s+"
        r"changes?\b|\btoo\s+quickly\b",
        "rate_of_change",
    ),
)
REVIEW_STATUSES = _rules(
    (
        r"\bunreviewed\b|\bnot\s+(?:yet\s+)?(?:been\s+)?reviewed\b|\bpending\b|\bto\s+review\b|"
        r"\bneed(?:s|ing)?\s+(?:a\s+)?review\b|\bawaiting\s+review\b|\bunconfirmed\b|\bopen\s+"
        r"(?:anomalies|alerts|ones)\b|\bnew\s+(?:anomalies|alerts|ones)\b|\bunresolved\b|"
        r"\bhaven'?t\s+(?:reviewed|looked\s+at|checked)\b",
        "pending",
    ),
    (
        r"\bconfirmed\b|\bverified\b|\baccepted\b|\bmarked\s+(?:as\s+)?real\b|\bconfirm(?:ed)?\s+as"
        r"\b|\bgenuine\b",
        "confirmed",
    ),
    (
        r"\bdismissed\b|\brejected\b|\bfalse\s+(?:positives?|alarms?|alerts?)\b|\bignored\b|"
        r"\bdiscarded\b|\bmarked\s+(?:as\s+)?(?:not\s+real|noise)\b",
        "dismissed",
    ),
)
KEYWORDS = frozenset(
    {
        "temperature",
        "temperatures",
        "thermometer",
        "celsius",
        "fahrenheit",
        "humidity",
        "pressure",
        "barometric",
        "vibration",
        "acceleration",
        "accelerometer",
        "battery",
        "maintenance",
        "inactive",
        "offline",
        "online",
        "active",
        "disconnected",
        "unreachable",
        "spikes",
        "spiked",
        "flatline",
        "flatlined",
        "frozen",
        "missing",
        "silent",
        "dropped",
        "plunged",
        "reviewed",
        "unreviewed",
        "pending",
        "confirmed",
        "dismissed",
        "rejected",
        "verified",
        "anomalies",
        "anomaly",
        "devices",
        "device",
        "sensors",
        "sensor",
        "readings",
        "reading",
        "motion",
        "threshold",
        "range",
        "average",
        "maximum",
        "minimum",
        "highest",
        "lowest",
        "correlation",
        "correlate",
    }
)
"""Words of the slot rules, for the speller."""


def first(rules: Sequence[Rule], text: str) -> tuple[str, int, int] | None:
    """The value of the earliest (then longest) rule match in ``text``, with its span."""
    best: tuple[int, int, str] | None = None
    for pattern, value in rules:
        m = pattern.search(text)
        if m and (best is None or (m.start(), -m.end()) < (best[0], -best[1])):
            best = (m.start(), m.end(), value)
    return None if best is None else (best[2], best[0], best[1])


def every(rules: Sequence[Rule], text: str) -> tuple[str, ...]:
    """Each value some rule matches in ``text``, once, in the order they are first written."""
    found = sorted((m.start(), value) for pattern, value in rules for m in pattern.finditer(text))
    return tuple(dict.fromkeys(value for _, value in found))


def _blank(text: str, start: int, end: int) -> str:
    return text[:start] + " " * (end - start) + text[end:]


def find_device_type(text: str) -> tuple[str, int, int] | None:
    """The kind of device named ("temperature sensors", "thermometers"), with its span."""
    return first(DEVICE_TYPES, text)


def find_metrics(text: str) -> tuple[str, ...]:
    """Every metric ``text`` (normalised) names, in order: "temperature and humidity" is both.

    Metric words that name a kind of device ("temperature sensors") do not count.
    """
    while (found := find_device_type(text)) is not None:
        text = _blank(text, found[1], found[2])
    return every(METRICS, text)


def find_slots(text: str) -> dict[str, str | None]:
    """Every word slot of ``text`` (normalised), by name; None where it says nothing."""
    device_type = find_device_type(text)
    rest = text
    # Every "temperature sensor" in the text is a type, so blank them all before metrics.
    while (found := find_device_type(rest)) is not None:
        rest = _blank(rest, found[1], found[2])
    values = {
        "device_type": device_type,
        "device_status": first(DEVICE_STATUSES, text),
        "metric": first(METRICS, rest),
        "anomaly_type": first(ANOMALY_TYPES, text),
        "review_status": first(REVIEW_STATUSES, text),
    }
    return {name: None if found is None else found[0] for name, found in values.items()}
