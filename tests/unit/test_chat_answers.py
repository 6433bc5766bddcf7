"""How the assistant answers what the probe of unseen messages found misread: several
metrics at once, a past moment asked as "what was it", correlations of two metrics of one
device, and the wording of figures (services/chat/chat/assistant.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

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

NOW = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)
ASKER = Asker(user_id="u", token="t")


@dataclass
class Sources:
    """An attic with two streams, a pump house and a hall motion sensor."""

    coefficient: float = 0.8
    devices_: list[DeviceInfo] = field(
        default_factory=lambda: [
            DeviceInfo("at", "Attic", "temperature", "active", NOW, 100),
            DeviceInfo("ph", "Pump House", "pressure", "active", NOW, 100),
            DeviceInfo("hm", "Hall motion", "motion", "active", NOW, 100),
        ]
    )
    stats_asked: list[tuple[str, datetime, datetime]] = field(default_factory=list)
    correlated: list[tuple[str, str]] = field(default_factory=list)

    async def devices(self, token: str) -> list[DeviceInfo]:
        return self.devices_

    async def streams(self, token: str, device_id: str) -> list[StreamInfo]:
        metrics = {"at": [("temperature", 24.5), ("humidity", 41.0)], "ph": [("pressure", 2.5)]}
        metrics["hm"] = [("motion", 0.0)]
        return [StreamInfo(f"{device_id}-{m}", device_id, m, v, NOW) for m, v in metrics[device_id]]

    async def stats(self, token: str, stream_id: str, start: datetime, end: datetime) -> Stats:
        self.stats_asked.append((stream_id, start, end))
        return Stats(count=60, min=20.0, max=30.0, mean=25.0)

    async def anomalies(self, token: str, **_: object) -> list[AnomalyInfo]:
        return []

    async def correlate(
        self, token: str, a: str, b: str, start: datetime, end: datetime
    ) -> CorrelationInfo:
        self.correlated.append((a, b))
        return CorrelationInfo(self.coefficient, 0.5, 1000, 0)

    async def system_status(self) -> str:
        return "healthy"

    async def timezone(self, token: str) -> str:
        return "UTC"


def bot(understander: Understander, library: HelpLibrary, sources: Sources) -> SupportAssistant:
    return SupportAssistant(
        understander=understander, library=library, sources=sources, clock=lambda: NOW
    )


async def test_two_metrics_of_one_device_are_both_answered(
    understander: Understander, library: HelpLibrary
) -> None:
    reply = await bot(understander, library, Sources()).reply(
        text="humidity and temperature of the attic", asker=ASKER, history=()
    )
    assert "Attic humidity: 41%" in reply.text and "Attic temperature: 24.5°C" in reply.text
    assert reply.facts.stream_ids == ("at-humidity", "at-temperature")


async def test_a_past_moment_is_answered_from_that_time_not_the_newest_value(
    understander: Understander, library: HelpLibrary
) -> None:
    sources = Sources()
    reply = await bot(understander, library, sources).reply(
        text="what was the attic temperature at 6am yesterday", asker=ASKER, history=()
    )
    nine_days = datetime(2026, 6, 9, 6, 0, tzinfo=UTC)
    assert sources.stats_asked == [
        ("at-temperature", nine_days - timedelta(minutes=30), nine_days + timedelta(minutes=30))
    ]
    assert "min 20°C, max 30°C" in reply.text


async def test_two_metrics_of_one_device_are_correlated_with_each_other(
    understander: Understander, library: HelpLibrary
) -> None:
    sources = Sources()
    reply = await bot(understander, library, sources).reply(
        text="does the attic humidity follow the attic temperature", asker=ASKER, history=()
    )
    assert sources.correlated == [("at-humidity", "at-temperature")]
    assert "Attic humidity and Attic temperature move strongly together" in reply.text


async def test_each_side_of_a_correlation_keeps_its_own_metric(
    understander: Understander, library: HelpLibrary
) -> None:
    sources = Sources(coefficient=0.03)
    reply = await bot(understander, library, sources).reply(
        text="correlate the attic humidity with the pump house pressure", asker=ASKER, history=()
    )
    assert sources.correlated == [("at-humidity", "ph-pressure")]
    # r = 0.03 is no relation at all, not a weak one.
    assert "show no linear relation" in reply.text and "weakly" not in reply.text


async def test_a_name_that_says_its_metric_is_not_repeated_nor_given_a_unit(
    understander: Understander, library: HelpLibrary
) -> None:
    reply = await bot(understander, library, Sources()).reply(
        text="hall motion now", asker=ASKER, history=()
    )
    assert reply.text.startswith("Hall motion: 0 at ")


@pytest.mark.parametrize(
    "text",
    [
        "how much is the premium tier per month",
        "please stop my subscription at the end of the month",
        "i was charged twice, i want my money back: refund please",
        "remove my account and everything in it",
        "can three colleagues join my team account",
        "what is your uptime sla",
    ],
)
async def test_billing_and_the_account_itself_are_offered_a_person(
    understander: Understander, library: HelpLibrary, text: str
) -> None:
    reply = await bot(understander, library, Sources()).reply(text=text, asker=ASKER, history=())
    assert (reply.unsure or reply.wants_person) and "person" in reply.text
    assert reply.facts.articles == ()


async def test_the_system_status_is_public(
    understander: Understander, library: HelpLibrary
) -> None:
    reply = await bot(understander, library, Sources()).reply(
        text="is iotsuite working at the moment?", asker=Asker(user_id=None, token=None), history=()
    )
    assert (reply.intent, reply.text) == (
        "system_status",
        "Everything is running normally: every service is healthy.",
    )


async def test_an_off_topic_request_gets_no_article_on_one_shared_word(
    understander: Understander, library: HelpLibrary
) -> None:
    reply = await bot(understander, library, Sources()).reply(
        text="can you write code to sort a list in java", asker=ASKER, history=()
    )
    # "sort" finds how to sort the device list (score 0.15): no answer to this.
    assert library.search("can you write code to sort a list in java", limit=1)
    assert reply.intent == "out_of_scope" and reply.facts.articles == ()


async def test_an_article_answer_drops_a_yes_that_answers_its_heading(
    understander: Understander, library: HelpLibrary
) -> None:
    assistant = bot(understander, library, Sources())
    how = await assistant.reply(
        text="how can dismissals make the detector quieter", asker=ASKER, history=()
    )
    assert how.facts.articles == ("reviewing-anomalies",)
    assert "Each dismissal makes" in how.text and "Yes." not in how.text
    asked = await assistant.reply(
        text="does dismissing false alarms teach the detector?", asker=ASKER, history=()
    )
    assert "Yes. Each dismissal" in asked.text


async def test_a_device_in_maintenance_is_said_so(
    understander: Understander, library: HelpLibrary
) -> None:
    sources = Sources()
    sources.devices_[1] = DeviceInfo("ph", "Pump House", "pressure", "maintenance", NOW, 100)
    reply = await bot(understander, library, sources).reply(
        text="status of the pump house", asker=ASKER, history=()
    )
    assert reply.text.startswith("Pump House (pressure) is in maintenance.")
