"""The rules that check the intent classifier where its training is thin
(``Understander._checked`` in services/chat/chat/nlu/understanding.py), on a stub
classifier that always answers the same, and then on the trained one with phrasings
that are in neither the training nor the evaluation utterances."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast
from zoneinfo import ZoneInfo

import pytest

from services.chat.chat.nlu import Understander
from services.chat.chat.nlu.classifier import IntentClassifier

NOW = datetime(2026, 3, 11, 18, 30, tzinfo=UTC)
TZ = ZoneInfo("Europe/Berlin")
DEVICES = ("Attic", "Cold Room 4", "Pump House")


class Stub:
    """A classifier that is always sure of ``best``, with ``second`` as its runner-up."""

    def __init__(self, best: str, second: str) -> None:
        self.intents = ("correlation", "complaint", "latest_reading", "reading_stats",
                        "anomalies", "device_status", "help", "out_of_scope")  # fmt: skip
        self._best, self._second = best, second

    def vocabulary(self) -> frozenset[str]:
        return frozenset()

    def probabilities(self, text: str) -> dict[str, float]:
        rest = (1.0 - 0.9 - 0.06) / (len(self.intents) - 2)
        return {
            i: 0.9 if i == self._best else 0.06 if i == self._second else rest for i in self.intents
        }


def stubbed(best: str, second: str) -> Understander:
    return Understander(cast(IntentClassifier, Stub(best, second)))


@pytest.mark.parametrize(
    "text", ["attic humidity", "humidity and temperature in the attic", "cold room 4 temps at 6am"]
)
def test_a_correlation_needs_a_word_that_compares(text: str) -> None:
    intent, confidence = stubbed("correlation", "latest_reading").intent(text, device_names=DEVICES)
    assert (intent, confidence) == ("latest_reading", 0.9)


@pytest.mark.parametrize(
    "text",
    [
        "attic humidity against the cold room 4 temperature",
        "is the attic temperature linked to its humidity",
        "do the attic and the pump house move together",
        "attic vs pump house",
        "does the attic warm up when the pump house does",
        "corelate the attic with the pump house",  # a typo of the keyword
    ],
)
def test_comparing_words_keep_a_correlation(text: str) -> None:
    assert stubbed("correlation", "latest_reading").intent(text, device_names=DEVICES)[0] == (
        "correlation"
    )


def test_how_to_correlate_without_a_device_is_help() -> None:
    bot = stubbed("correlation", "latest_reading")
    assert bot.intent("how would I correlate a pair of sensors?", device_names=DEVICES)[0] == "help"
    # Naming devices makes it a request to do it.
    assert bot.intent("how do I correlate the attic and pump house", device_names=DEVICES)[0] == (
        "correlation"
    )


def test_a_complaint_that_names_a_device_is_about_the_device() -> None:
    bot = stubbed("complaint", "anomalies")
    assert bot.intent("what's gone wrong in the pump house", device_names=DEVICES)[0] == (
        "anomalies"
    )
    # ...unless it speaks to the assistant.
    assert bot.intent("you got the pump house wrong", device_names=DEVICES)[0] == "complaint"
    assert bot.intent("this is rubbish", device_names=DEVICES)[0] == "complaint"


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("pump house humidity", "latest_reading"),
        ("cold room 4 temp", "latest_reading"),
        ("attic temperature last saturday evening", "reading_stats"),
        ("cold room 4 temps from 1pm to 4pm on monday", "reading_stats"),
        ("attic temperature vs the pump house humidity", "correlation"),
        ("how would I correlate a pair of sensors?", "help"),
        ("what went wrong at the pump house on sunday", "anomalies"),
        ("i tried my password too often and now i'm locked", "help"),
    ],
)
def test_trained_understander_on_fresh_phrasings(
    understander: Understander, text: str, intent: str
) -> None:
    got = understander.understand(text, now=NOW, tz=TZ, device_names=DEVICES)
    assert got.intent == intent, (text, got.intent, got.confidence)
