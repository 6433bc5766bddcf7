"""A device name the user does not have is said so, never answered with another of their
devices or with everyone's anomalies (services/chat/chat/nlu/devices.py ``find_unknown``
and the assistant's answers); names and phrasings of our own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from services.chat.chat.assistant import SupportAssistant
from services.chat.chat.help.library import HelpLibrary
from services.chat.chat.nlu.devices import find_devices, find_unknown
from services.chat.chat.nlu.understanding import Understander
from services.chat.chat.sources import (
    AnomalyInfo,
    CorrelationInfo,
    DeviceInfo,
    Stats,
    StreamInfo,
)
from services.chat.chat.values import Asker

NOW = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
SHED_ID = "0b6c2a3e-6a4f-4c55-9d1e-2f1a7b9c8d00"
OTHER_ID = "7d1e2f3a-0000-4000-8000-00000000abcd"  # another user's device


@dataclass
class OneShed:
    """A user with a single device: the one a careless answer would fall back to."""

    async def devices(self, token: str) -> list[DeviceInfo]:
        return [DeviceInfo(SHED_ID, "Shed", "temperature", "active", NOW, 10)]

    async def streams(self, token: str, device_id: str) -> list[StreamInfo]:
        return [StreamInfo("s", device_id, "temperature", 12.5, NOW)]

    async def stats(self, token: str, stream_id: str, start: datetime, end: datetime) -> Stats:
        return Stats(count=10, min=10.0, max=14.0, mean=12.0)

    async def anomalies(self, token: str, **_: object) -> list[AnomalyInfo]:
        return [AnomalyInfo("a", "s", SHED_ID, "spike", 40.0, NOW, "pending")]

    async def correlate(self, token: str, *_: object) -> CorrelationInfo:
        return CorrelationInfo(0.5, 0.01, 100, 0)

    async def system_status(self) -> str:
        return "healthy"

    async def timezone(self, token: str) -> str:
        return "UTC"


@pytest.fixture(scope="module")
def assistant(understander: Understander) -> SupportAssistant:
    return SupportAssistant(
        understander=understander, library=HelpLibrary.load(), sources=OneShed(), clock=lambda: NOW
    )


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("what's the temperature in the pantry", "pantry"),
        ("is the loft online", "loft"),
        ("any dips on the workshop 3 today", "workshop 3"),
        ("how is the wine cellar doing", "wine cellar"),
        ("pantry humidity", "pantry"),
        (f"show me device {OTHER_ID}", OTHER_ID),
    ],
)  # fmt: skip
async def test_a_name_the_user_does_not_have_is_said_so(
    assistant: SupportAssistant, text: str, name: str
) -> None:
    reply = await assistant.reply(text=text, asker=Asker("u", "t"), history=())
    assert reply.text.startswith(f'I couldn\'t find a device called "{name}".'), reply.text
    assert "Shed" in reply.text and "12.5" not in reply.text and "spike" not in reply.text


@pytest.mark.parametrize(
    "text",
    ["shed temperature", "what's the temp in the shed", f"status of device {SHED_ID}"],
)
async def test_the_users_own_device_is_still_answered(
    assistant: SupportAssistant, text: str
) -> None:
    reply = await assistant.reply(text=text, asker=Asker("u", "t"), history=())
    assert "couldn't find" not in reply.text and "Shed" in reply.text


@pytest.mark.parametrize(
    "text",
    [
        "the dashboard won't load, is the site down",
        "is everything ok on your side",
        "what was the max temperature in the last hour",
        "show me the chart for the shed",
        "any spikes on my sensors this morning",
    ],
)
def test_words_of_the_language_are_no_names(understander: Understander, text: str) -> None:
    language = understander._language  # the assistant's own words
    assert find_unknown(text, language, find_devices(text, ["Shed"]), ["Shed"]) == ()
