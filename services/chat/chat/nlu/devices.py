"""Which of the user's devices a message mentions, matched loosely.

A name and the message are both cut into words and numbers ("Sensor-03" is
``sensor 3``: case, punctuation and leading zeros do not count). A run of one
to a few words of the message matches a name, or a run of its words, when
their letters are within one or two edits (Damerau-Levenshtein, so a swapped
pair of letters is one typo; short words must be exact) and their numbers are
equal: "sensor 3" never means "Sensor 4". Spaces do not count either, so
"green house" finds "Greenhouse". A part of a name is enough ("greenhouse" for
"Greenhouse North") unless the part is only generic words such as "sensor".

Overlapping matches are one mention; of its candidates, those matched most
completely and most closely win, and every tie is kept: "greenhouse" with a
North and a South greenhouse answers both, and the caller asks which.

A name the user does not have is found too (:func:`find_unknown`), so that the
assistant can say so instead of answering for another device: a word that is
not of the assistant's own language (its training utterances and keywords),
where a name stands: after "the", "my" or a preposition ("in the kitchen",
"on freezer 2"), or before a metric or "sensor" ("kitchen temperature").

rapidfuzz computes the distances: it has true Damerau-Levenshtein (``difflib``
has only a similarity ratio, which cannot say "two letters") and compares
every run of the message with every name in one C call.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from rapidfuzz.distance import DamerauLevenshtein
from rapidfuzz.process import cdist

from services.chat.chat.nlu.text import allowed_edits
from services.chat.chat.nlu.values import DeviceRef

STOPWORDS = frozenset(
    {
        "the",
        "my",
        "a",
        "an",
        "of",
        "in",
        "on",
        "at",
        "and",
        "to",
        "for",
        "is",
        "it",
        "no",
        "all",
        "from",
        "with",
        "what",
        "whats",
        "s",
        "how",
        "was",
        "are",
        "did",
        "does",
        "do",
        "there",
    }
)
"""Words a mention neither starts nor ends with."""
GENERIC = STOPWORDS | {
    "sensor",
    "sensors",
    "device",
    "devices",
    "node",
    "nodes",
    "unit",
    "units",
    "probe",
    "probes",
    "meter",
    "meters",
    "monitor",
    "station",
    "room",
    "temperature",
    "temp",
    "pressure",
    "humidity",
    "motion",
    "generic",
    "vibration",
    "number",
    "one",
}
"""Words that name no particular device on their own."""
MAX_WINDOW = 4
"""The longest run of message words compared with a name."""
MAX_TEXT = 4000
"""Characters of the message searched (the chat API refuses longer messages)."""

_TOKEN = re.compile(r"[0-9]+|[^\W0-9_]+")
# A device named by kind and number, which may not be one of the user's: "sensor 3", "node #12".
_NUMBERED = re.compile(
    r"\b(?:sensor|device|node|probe|unit|meter|gateway|thermometer|station|pump|tag)"
    r"\s*(?:#|no\.?|number)?\s*[-_]?\s*\d+\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class _Token:
    text: str  # lowercase letters, or a number without leading zeros
    start: int
    end: int

    @property
    def is_number(self) -> bool:
        return self.text.isascii() and self.text.isdigit()


def _tokens(text: str) -> list[_Token]:
    found = []
    # Lowercased word by word: lowering the whole text may change its length ("İ").
    for m in _TOKEN.finditer(text):
        word = m.group().lower()
        number = word.isascii() and word.isdigit()
        found.append(_Token(str(int(word)) if number else word, m.start(), m.end()))
    return found


def _joined(tokens: Sequence[_Token]) -> str:
    return "".join(t.text for t in tokens)


def _numbers(tokens: Sequence[_Token]) -> tuple[str, ...]:
    return tuple(t.text for t in tokens if t.is_number)


@dataclass(frozen=True, slots=True)
class _Part:
    """A run of a name's words, as the message may write it."""

    name: str
    joined: str
    numbers: tuple[str, ...]
    letters: int
    complete: bool  # the whole name
    size: int  # words of the name it covers


@dataclass(frozen=True, slots=True)
class _Match:
    start: int
    end: int
    name: str
    rank: tuple[bool, int, int]  # complete, words covered, -edits: greater is better


@lru_cache(maxsize=256)
def _parts(names: tuple[str, ...]) -> tuple[_Part, ...]:
    """Every run of every name worth matching; cached, as a user asks again with the same names."""
    parts = []
    for name in dict.fromkeys(names):
        tokens = _tokens(name)
        for i in range(len(tokens)):
            for j in range(i + 1, len(tokens) + 1):
                run = tokens[i:j]
                complete = i == 0 and j == len(tokens)
                if not complete and all(t.text in GENERIC or t.is_number for t in run):
                    continue  # "sensor" or "3" alone says nothing
                if not complete and all(len(t.text) < 3 for t in run):
                    continue
                parts.append(
                    _Part(
                        name=name,
                        joined=_joined(run),
                        numbers=_numbers(run),
                        letters=sum(len(t.text) for t in run if not t.is_number),
                        complete=complete,
                        size=j - i,
                    )
                )
    return tuple(parts)


def _windows(tokens: Sequence[_Token]) -> list[tuple[int, int]]:
    return [
        (i, j)
        for i in range(len(tokens))
        for j in range(i + 1, min(i + MAX_WINDOW, len(tokens)) + 1)
        # A run that starts or ends on "the" or "of" is the same mention, less tidy.
        if tokens[i].text not in STOPWORDS and tokens[j - 1].text not in STOPWORDS
    ]


def _matches(text: str, names: Sequence[str]) -> list[_Match]:
    tokens = _tokens(text)
    parts = _parts(tuple(names))
    windows = _windows(tokens)
    if not parts or not windows:
        return []
    queries = [_joined(tokens[i:j]) for i, j in windows]
    choices = [p.joined for p in parts]
    distances = cdist(
        queries, choices, scorer=DamerauLevenshtein.distance, score_cutoff=2, dtype=np.int32
    )
    found = []
    for w, p in zip(*np.nonzero(distances <= 2), strict=True):
        i, j = windows[w]
        part = parts[p]
        run = tokens[i:j]
        edits = int(distances[w, p])
        letters = min(part.letters, sum(len(t.text) for t in run if not t.is_number))
        if edits > allowed_edits(letters) or _numbers(run) != part.numbers:
            continue
        found.append(
            _Match(run[0].start, run[-1].end, part.name, (part.complete, part.size, -edits))
        )
    return found


def find_devices(text: str, device_names: Sequence[str]) -> tuple[DeviceRef, ...]:
    """The devices ``text`` mentions, in order, each with the names it may mean.

    A numbered device ("sensor 3") that matches none of ``device_names`` is
    answered with no matches, so that the caller can say it does not know it.
    """
    text = text[:MAX_TEXT]
    matches = sorted(_matches(text, device_names), key=lambda m: (m.start, m.end))
    groups: list[list[_Match]] = []
    for match in matches:
        if groups and match.start < max(m.end for m in groups[-1]):
            groups[-1].append(match)
        else:
            groups.append([match])
    refs: list[tuple[int, DeviceRef]] = []
    for group in groups:
        best = max(m.rank for m in group)
        winners = [m for m in group if m.rank == best]
        start, end = min(m.start for m in winners), max(m.end for m in winners)
        names = tuple(dict.fromkeys(m.name for m in sorted(winners, key=lambda m: m.name)))
        refs.append((start, DeviceRef(mention=text[start:end], matches=names)))
    for m in _NUMBERED.finditer(text):
        if not any(
            m.start() < max(x.end for x in g) and min(x.start for x in g) < m.end() for g in groups
        ):
            refs.append((m.start(), DeviceRef(mention=m.group(), matches=())))
    return tuple(ref for _, ref in sorted(refs, key=lambda r: r[0]))


# Where a device's name stands: after a determiner or a preposition, or before a metric
# or a device noun. Group "name" is one or two words, optionally with a number.
_NAME_SLOT = re.compile(
    r"\b(?:(?:in|on|at|of|for|from|about|with|by)\s+(?:the\s+|my\s+|our\s+)?|the\s+|my\s+|our\s+)"
    r"(?P<name>[a-z][a-z'-]{2,}(?:\s+[a-z][a-z'-]{2,})?(?:\s*[-#]?\s*\d+)?)\b"
    r"|\b(?P<before>[a-z][a-z'-]{2,}(?:\s+[a-z][a-z'-]{2,})?(?:\s*[-#]?\s*\d+)?)\s+"
    r"(?=(?:temperatures?|temps?|humidity|pressure|sensors?|devices?|readings?|probes?)\b)"
)
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")


def find_unknown(
    text: str,
    known_words: frozenset[str],
    found: Sequence[DeviceRef],
    device_names: Sequence[str] = (),
) -> tuple[DeviceRef, ...]:
    """Names ``text`` gives a device that are none of the user's (``found`` are theirs).

    A candidate is a run of words where a name stands (see the module's docstring) whose
    words are all outside ``known_words`` and the words of ``device_names``, and not a
    typo of one of them; a device id (a UUID) is one too. Each answers with no matches,
    as an unknown numbered device does. "Your ..." is the assistant's, never a device.
    """
    text = text[:MAX_TEXT]
    known_words = known_words | {t.text for name in device_names for t in _tokens(name)}
    lowered = text.lower()
    taken = [(text.find(m.mention), text.find(m.mention) + len(m.mention)) for m in found]
    refs: list[tuple[int, DeviceRef]] = []
    candidates = [(m.start(), m.group()) for m in _UUID.finditer(lowered)]
    for m in _NAME_SLOT.finditer(lowered):
        group = "name" if m.group("name") else "before"
        words = re.findall(r"[a-z][a-z'-]*", m.group(group))
        if m.group().split()[:2].count("your") or words[:1] == ["you"]:
            continue
        # Words of the language around the name ("what kitchen", "garage sensor") are
        # not part of it; inside it, generic words are ("boiler room").
        while words and (_known(words[0], known_words) or words[0] in GENERIC):
            words.pop(0)
        while words and _known(words[-1], known_words):
            words.pop()
        if (
            not words
            or any(_known(w, known_words) for w in words)
            or all(w in GENERIC for w in words)
        ):
            continue
        start = m.start(group) + m.group(group).find(words[0])
        end = m.start(group) + m.group(group).rfind(words[-1]) + len(words[-1])
        number = re.match(r"\s*[-#]?\s*\d+", lowered[end : m.end(group)])
        candidates.append((start, lowered[start : end + (number.end() if number else 0)]))
    for start, mention in candidates:
        end = start + len(mention)
        if any(start < t_end and t_start < end for t_start, t_end in taken):
            continue
        taken.append((start, end))
        refs.append((start, DeviceRef(mention=text[start:end], matches=())))
    return tuple(ref for _, ref in sorted(refs, key=lambda r: r[0]))


def _known(word: str, known_words: frozenset[str]) -> bool:
    """Whether ``word`` is of the assistant's language, or a typo of a word of it."""
    word = word.strip("'-")
    if {word, word.rstrip("s"), word.split("'")[0]} & known_words:
        return True
    limit = allowed_edits(len(word))
    if limit == 0:
        return False
    return any(
        abs(len(k) - len(word)) <= limit
        and DamerauLevenshtein.distance(word, k, score_cutoff=limit) <= limit
        for k in known_words
    )
