"""Classes of message an outside probe found answered badly: a device with several
metrics and no metric named, anomalies of a metric other than the device type's,
fillers read as device names, and intents the slots settle (a status question over a
past range asks for readings). Its periods are in ``test_chat_periods.py``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.chat.chat.assistant import SupportAssistant
from services.chat.chat.help.library import HelpLibrary
from services.chat.chat.nlu.understanding import Understander
from services.chat.chat.sources import (
    AnomalyInfo,
    CorrelationInfo,
    DeviceInfo,
    Stats,
    StreamInfo,
)
from services.chat.chat.values import Asker

NEW_YORK = ZoneInfo("America/New_York")
# Wednesday 11 March 2026, 14:30 in New York (EDT, UTC-4; EST, UTC-5, until Sunday 8 March).
NOW = datetime(2026, 3, 11, 18, 30, tzinfo=UTC)
NAMES = ["Boiler Room", "Freezer 2", "Sensor-03"]


@pytest.mark.parametrize(
    "text",
    [
        "show me my sensors pls",
        "list all my gateways",
        "the avg temperature of the boiler room for my boss",
        "anything weird with my sensors lately",
        "anomalies per type since monday",
        "freezer 2 temperature from mon to wed",
        "what's the data retention",
    ],
)
def test_fillers_and_kinds_are_no_device_names(understander: Understander, text: str) -> None:
    found = understander.understand(text, now=NOW, tz=NEW_YORK, device_names=NAMES)
    assert all(ref.matches for ref in found.slots.devices), found.slots.devices


def test_an_unknown_name_is_still_found(understander: Understander) -> None:
    found = understander.understand(
        "is the kitchen online", now=NOW, tz=NEW_YORK, device_names=NAMES
    )
    assert [ref.mention for ref in found.slots.devices if not ref.matches] == ["kitchen"]


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("boiler room data from the 1st to the 10th of last month", "reading_stats"),
        ("freezer 2 last 48h", "reading_stats"),
        ("is freezer 2 online", "device_status"),
        ("sensor-03 latest humidity", "latest_reading"),
        ("show me device boiler room", "device_status"),
        ("list my devices", "device_list"),
        ("corr between boiler room temp and freezer 2 temp", "correlation"),
        ("you are useless, get me a real person", "human"),
        ("you are useless", "complaint"),
    ],
)
def test_intents_the_slots_settle(understander: Understander, text: str, intent: str) -> None:
    found = understander.understand(text, now=NOW, tz=NEW_YORK, device_names=NAMES)
    assert found.intent == intent, (text, found.intent)


@dataclass
class TwoMetricSources:
    """A temperature device that reports pressure too, and a freezer."""

    tokens: list[str] = field(default_factory=list)

    async def devices(self, token: str) -> list[DeviceInfo]:
        return [
            DeviceInfo("d1", "Boiler Room", "temperature", "active", NOW, 100),
            DeviceInfo("d2", "Freezer 2", "temperature", "active", NOW, 100),
        ]

    async def streams(self, token: str, device_id: str) -> list[StreamInfo]:
        if device_id == "d1":
            return [
                StreamInfo("s-t", "d1", "temperature", 64.5, NOW),
                StreamInfo("s-p", "d1", "pressure", 1013.2, NOW),
            ]
        return [StreamInfo("s-f", "d2", "temperature", -18.0, NOW)]

    async def stats(self, token: str, stream_id: str, start: datetime, end: datetime) -> Stats:
        return Stats(count=10, min=1.0, max=3.0, mean=2.0)

    async def anomalies(self, token: str, **_: object) -> list[AnomalyInfo]:
        return [
            AnomalyInfo(
                "a1", "s-p", "d1", "out_of_range", 1016.2, NOW - timedelta(hours=1), "pending"
            ),
            AnomalyInfo(
                "a2", "s-p", "d1", "out_of_range", 1015.0, NOW - timedelta(hours=2), "pending"
            ),
            AnomalyInfo("a3", "s-f", "d2", "spike", 7.7, NOW - timedelta(hours=3), "pending"),
        ]

    async def correlate(self, token: str, *_: object) -> CorrelationInfo:
        return CorrelationInfo(coefficient=0.5, p_value=0.01, sample_count=10, lag_seconds=0)

    async def system_status(self) -> str:
        return "healthy"

    async def timezone(self, token: str) -> str:
        return "UTC"


def bot(understander: Understander, library: HelpLibrary) -> SupportAssistant:
    return SupportAssistant(
        understander=understander, library=library, sources=TwoMetricSources(), clock=lambda: NOW
    )


ANN = Asker(user_id="ann", token="t")


@pytest.mark.parametrize(
    ("text", "said", "unsaid"),
    [
        # No metric named: every metric the device reports, not a question back.
        (
            "latest from the boiler room",
            ["Boiler Room pressure: 1,013.2 hPa", "Boiler Room temperature: 64.5°C"],
            ["which one"],
        ),
        (
            "what did the boiler room read yesterday",
            ["Boiler Room pressure yesterday", "Boiler Room temperature yesterday"],
            ["which one"],
        ),
        # An anomaly's figure in its stream's unit (hPa on a temperature device), and the
        # count by device.
        (
            "any anomalies today",
            [
                "out of range on Boiler Room pressure",
                "1,016.2 hPa",
                "2 on Boiler Room, 1 on Freezer 2",
            ],
            ["1,016.2°C"],
        ),
        # 18:30 UTC: "between 20:00 and 22:00 today" has not begun.
        ("freezer 2 temperature between 20:00 and 22:00 today", ["still to come", "-18°C"], []),
        ("help", ["I can tell you", "for example"], ["couldn't find"]),
    ],
)
async def test_answers_of_the_classes(
    understander: Understander, library: HelpLibrary, text: str, said: list[str], unsaid: list[str]
) -> None:
    reply = await bot(understander, library).reply(text=text, asker=ANN, history=())
    assert all(part in reply.text for part in said), reply.text
    assert not any(part in reply.text for part in unsaid), reply.text
    assert not reply.unsure


async def test_alert_questions_find_the_alerts_article(library: HelpLibrary) -> None:
    for question in ("how do I get a webhook call when a sensor goes above 40",
                     "alert emails never arrive"):  # fmt: skip
        found = library.search(question, limit=1)
        assert found and found[0].slug == "alerts", (question, found)
