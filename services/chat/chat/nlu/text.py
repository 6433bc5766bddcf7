"""Text as the slot rules read it: lowercase, typos of known keywords corrected, offsets kept.

Users misspell the very words the rules look for ("temprature", "yesteday",
"humidty"). Rather than spell every typo in every rule, a word that is not a
known word and is within one or two edits of exactly one keyword is read as
that keyword. Each character of the normalised text remembers where it came
from, so a phrase the rules find is quoted back as the user wrote it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from rapidfuzz.distance import DamerauLevenshtein

_PIECE = re.compile(r"[A-Za-z]+|.", re.DOTALL)


def allowed_edits(length: int) -> int:
    """How many edits a word of ``length`` letters may be from a name and still match it.

    Short words stay exact: one edit turns "shed" into "she" and "hour" into "our".
    """
    if length <= 4:
        return 0
    return 1 if length <= 7 else 2


@dataclass(frozen=True, slots=True)
class Normalised:
    """Lowercase text with keyword typos corrected, mapped back to the original."""

    text: str
    source: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def original(self, start: int, end: int) -> str:
        """The original text behind ``text[start:end]``."""
        if start >= end:
            return ""
        return self.source[self.starts[start] : self.ends[end - 1]].strip()


class Speller:
    """Corrects words that are near-misses of a keyword and not words of their own."""

    def __init__(self, *, keywords: Iterable[str], known: Iterable[str] = ()) -> None:
        self._keywords = frozenset(k for k in keywords if k.isalpha())
        self._known = frozenset(known) | self._keywords
        # Typos rarely touch the first letter; requiring it keeps "spending" from "pending".
        self._by_initial: dict[str, list[str]] = {}
        for word in sorted(self._keywords):
            self._by_initial.setdefault(word[0], []).append(word)

    def correct(self, word: str) -> str:
        """``word`` (lowercase), or the one keyword it is a typo of."""
        if len(word) < 5 or word in self._known:
            return word
        limit = allowed_edits(len(word))
        best: list[str] = []
        best_distance = limit + 1
        for keyword in self._by_initial.get(word[0], ()):
            if abs(len(keyword) - len(word)) > limit:
                continue
            distance = DamerauLevenshtein.distance(word, keyword, score_cutoff=limit)
            if distance > limit:
                continue
            if distance < best_distance:
                best, best_distance = [keyword], distance
            elif distance == best_distance:
                best.append(keyword)
        return best[0] if len(best) == 1 else word

    def normalise(self, text: str) -> Normalised:
        """``text`` lowercased and corrected, each character mapped to its source."""
        out: list[str] = []
        starts: list[int] = []
        ends: list[int] = []
        for piece in _PIECE.finditer(text):
            raw = piece.group()
            lowered = raw.lower()
            if raw.isascii() and raw.isalpha():
                lowered = self.correct(lowered)
            out.append(lowered)
            starts.extend([piece.start()] * len(lowered))
            ends.extend([piece.end()] * len(lowered))
        return Normalised("".join(out), text, tuple(starts), tuple(ends))
