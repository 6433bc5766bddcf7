"""The understander: intents, confidence, slots together (services/chat/chat/nlu/)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.chat.chat.nlu import INTENTS, Understander
from services.chat.chat.nlu.classifier import IntentClassifier, load_examples
from services.chat.chat.nlu.understanding import THRESHOLD

NOW = datetime(2026, 3, 11, 18, 30, tzinfo=UTC)
TZ = ZoneInfo("America/New_York")
DEVICES = ("Greenhouse North", "Greenhouse South", "Sensor-03", "Cellar")


def test_training_data_is_rich_and_labelled_with_the_contract() -> None:
    examples = load_examples()
    assert len(examples) >= 600
    counts = {intent: sum(e.intent == intent for e in examples) for intent in INTENTS}
    assert set(counts) == set(INTENTS)
    assert min(counts.values()) >= 38, counts
    raw = resources.files("services.chat.chat.nlu").joinpath("data/train.jsonl").read_text()
    assert all(set(json.loads(line)) == {"text", "intent"} for line in raw.splitlines())


def test_training_is_deterministic() -> None:
    examples = load_examples()
    texts = ["how many devices", "anything odd last night", "asdf", "talk to a person"]
    first = IntentClassifier.train(examples).probabilities_many(texts)
    second = IntentClassifier.train(examples).probabilities_many(texts)
    assert np.array_equal(first, second)


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("hello there!", "greeting"),
        ("good morning, anyone home", "greeting"),
        ("thanks a million", "thanks"),
        ("cheers, that did it", "thanks"),
        ("bye for today", "goodbye"),
        ("ok see you later", "goodbye"),
        ("are you a person or a bot", "smalltalk"),
        ("how are you doing today", "smalltalk"),
        ("how many sensors do I own", "device_count"),
        ("count my pressure sensors", "device_count"),
        ("list all of my devices", "device_list"),
        ("which of my sensors are offline", "device_list"),
        ("is the cellar sensor online", "device_status"),
        ("when was greenhouse north last seen", "device_status"),
        ("what's the temperature in the cellar now", "latest_reading"),
        ("current humidity in greenhouse south", "latest_reading"),
        ("what was the max temperature yesterday in the cellar", "reading_stats"),
        ("average humidity this week", "reading_stats"),
        ("any anomalies last night", "anomalies"),
        ("were there any spikes today", "anomalies"),
        ("does humidity correlate with temperature", "correlation"),
        ("is there a relationship between the cellar and greenhouse north", "correlation"),
        ("is the platform down", "system_status"),
        ("are all services up and running", "system_status"),
        ("how do I enable two-factor", "help"),
        ("how can I import a csv file", "help"),
        ("I want to talk to a person", "human"),
        ("get me a human agent", "human"),
        ("that's completely wrong", "complaint"),
        ("you are useless", "complaint"),
        ("what's the weather in Paris", "out_of_scope"),
        ("write me a poem", "out_of_scope"),
    ],
)
def test_intents(understander: Understander, text: str, intent: str) -> None:
    got = understander.understand(text, now=NOW, tz=TZ, device_names=DEVICES)
    assert got.intent == intent, (text, got)


@pytest.mark.parametrize(
    "text", ["asdf qwer", "🙂🙂", "x", "", "   ", "?!?!", "zxqv plmk wert", "\x00\x01"]
)
def test_nonsense_is_out_of_scope_with_low_confidence(
    understander: Understander, text: str
) -> None:
    got = understander.understand(text, now=NOW, tz=TZ)
    assert got.intent == "out_of_scope"
    assert got.confidence < THRESHOLD


@pytest.mark.parametrize(
    "text", ["what's the weather in Paris", "write me a poem", "who won the football"]
)
def test_off_topic_is_out_of_scope_with_low_confidence(
    understander: Understander, text: str
) -> None:
    got = understander.understand(text, now=NOW, tz=TZ)
    assert got.intent == "out_of_scope"
    assert got.confidence < THRESHOLD


def test_clear_questions_are_confident(understander: Understander) -> None:
    got = understander.understand("how many devices do I have", now=NOW, tz=TZ)
    assert got.intent == "device_count"
    assert got.confidence > 0.8


def test_slots_together(understander: Understander) -> None:
    got = understander.understand(
        "what was the max temprature in greenhuose north last night?",
        now=NOW,
        tz=TZ,
        device_names=DEVICES,
    )
    assert got.intent == "reading_stats"
    assert [(d.mention, d.matches) for d in got.slots.devices] == [
        ("greenhuose north", ("Greenhouse North",))
    ]
    assert got.slots.metric == "temperature"
    assert got.slots.period is not None
    assert got.slots.period.phrase == "last night"
    assert (got.slots.period.start, got.slots.period.end) == (
        datetime(2026, 3, 10, 22, tzinfo=UTC),
        datetime(2026, 3, 11, 10, tzinfo=UTC),
    )


def test_device_names_are_not_read_as_slots(understander: Understander) -> None:
    got = understander.understand(
        "is the Monday Freezer online", now=NOW, tz=TZ, device_names=("Monday Freezer",)
    )
    assert got.slots.period is None
    assert got.slots.device_status == "active"
    assert got.slots.devices[0].matches == ("Monday Freezer",)


def test_anomaly_question_with_filters(understander: Understander) -> None:
    got = understander.understand(
        "show me the pending spikes on sensor 3 since monday", now=NOW, tz=TZ, device_names=DEVICES
    )
    assert got.intent == "anomalies"
    assert got.slots.anomaly_type == "spike"
    assert got.slots.review_status == "pending"
    assert got.slots.devices[0].matches == ("Sensor-03",)
    assert got.slots.period is not None
    assert got.slots.period.start == datetime(2026, 3, 9, 4, tzinfo=UTC)


_ANY_TEXT = st.one_of(
    st.text(max_size=200),
    # Long messages, up to past the 4,000 characters the API accepts (repeated: generating
    # thousands of random characters would take hypothesis longer than the test).
    st.tuples(st.text(min_size=1, max_size=60), st.integers(3000, 4500)).map(
        lambda pair: (pair[0] * (pair[1] // len(pair[0]) + 1))[: pair[1]]
    ),
    st.text(alphabet=st.sampled_from("\x00\x07\t\n\r\x1b\u200b\u2028 abc3:#-'"), max_size=300),
    st.lists(
        st.sampled_from(
            ["since", "last", "past", "sensor", "3", "greenhouse", "night", "am", "pm", "9",
             "week", "the", "of", "monday", "sun", "jumped", "up", "99999", "0", ":", "hours"]
        ),
        max_size=40,
    ).map(" ".join),
)  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(text=_ANY_TEXT, names=st.lists(st.text(max_size=20), max_size=5))
def test_understand_never_raises(understander: Understander, text: str, names: list[str]) -> None:
    got = understander.understand(text, now=NOW, tz=TZ, device_names=names)
    assert got.intent in INTENTS
    assert 0.0 <= got.confidence <= 1.0
    period = got.slots.period
    if period is not None:
        assert period.start <= period.end <= NOW
    for ref in got.slots.devices:
        assert set(ref.matches) <= set(names)
