"""The support assistant on the real NLU and help articles, over an in-memory fake of
its :class:`DataSources` (the gRPC clients are tested against real services in
``tests/gateway/test_gw_chat_assistant.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from services.chat.chat.assistant import SupportAssistant, figure
from services.chat.chat.help.library import HelpLibrary
from services.chat.chat.nlu.understanding import Understander
from services.chat.chat.sources import (
    AnomalyInfo,
    CorrelationInfo,
    DeviceInfo,
    SourceUnavailable,
    Stats,
    StreamInfo,
)
from services.chat.chat.values import Asker

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
TOKEN = "ann-token"


@dataclass
class FakeSources:
    """Ann's data; every call records the token it was made with."""

    zone: str = "Europe/Amsterdam"
    down: bool = False
    tokens: list[str] = field(default_factory=list)
    devices_: list[DeviceInfo] = field(
        default_factory=lambda: [
            DeviceInfo("d1", "Greenhouse North", "temperature", "active", NOW, 1200),
            DeviceInfo("d2", "Greenhouse South", "temperature", "inactive", None, 0),
            DeviceInfo("d3", "Cellar", "pressure", "active", NOW - timedelta(hours=5), 50),
        ]
    )

    def _seen(self, token: str) -> None:
        self.tokens.append(token)
        if self.down:
            raise SourceUnavailable("UNAVAILABLE")

    async def devices(self, token: str) -> list[DeviceInfo]:
        self._seen(token)
        return self.devices_

    async def streams(self, token: str, device_id: str) -> list[StreamInfo]:
        self._seen(token)
        metric = {"d1": "temperature", "d3": "pressure"}.get(device_id)
        return [StreamInfo(f"s-{device_id}", device_id, metric, 21.46, NOW)] if metric else []

    async def stats(self, token: str, stream_id: str, start: datetime, end: datetime) -> Stats:
        self._seen(token)
        return Stats(count=360, min=18.2, max=24.9, mean=21.3, stddev=1.74)

    async def anomalies(self, token: str, **_: object) -> list[AnomalyInfo]:
        self._seen(token)
        return [AnomalyInfo("a1", "s-d1", "d1", "spike", 45.0, NOW - timedelta(hours=1), "pending")]

    async def correlate(self, token: str, *_: object) -> CorrelationInfo:
        self._seen(token)
        return CorrelationInfo(coefficient=-0.82, p_value=0.0004, sample_count=900, lag_seconds=0)

    async def system_status(self) -> str:
        return "healthy"

    async def timezone(self, token: str) -> str:
        self._seen(token)
        return self.zone


def assistant(
    understander: Understander, library: HelpLibrary, sources: FakeSources
) -> SupportAssistant:
    return SupportAssistant(
        understander=understander, library=library, sources=sources, clock=lambda: NOW
    )


ANN = Asker(user_id="ann", token=TOKEN)


async def test_figures_carry_units_and_the_askers_time_zone(
    understander: Understander, library: HelpLibrary
) -> None:
    sources = FakeSources()
    bot = assistant(understander, library, sources)
    latest = await bot.reply(text="what's the temp in greenhouse north now", asker=ANN, history=())
    # 15:00 UTC is 16:00 in Amsterdam in winter.
    assert latest.text == (
        "Greenhouse North temperature: 21.46°C at 16:00 on 30 Nov 2026 (Europe/Amsterdam)."
    )
    assert latest.facts.device_ids == ("d1",) and latest.facts.stream_ids == ("s-d1",)
    stats = await bot.reply(text="min max of the cellar pressure yesterday", asker=ANN, history=())
    assert "min 18.2 hPa, max 24.9 hPa, mean 21.3 hPa over 360 readings" in stats.text
    assert "standard deviation 1.74 hPa" in stats.text  # asked for the spread, it has it
    assert stats.facts.start is not None and stats.facts.end is not None
    assert set(sources.tokens) == {TOKEN}


async def test_counts_lists_and_statuses(understander: Understander, library: HelpLibrary) -> None:
    bot = assistant(understander, library, FakeSources())
    count = await bot.reply(text="how many devices have i got", asker=ANN, history=())
    assert count.text == "You have 3 devices: 1 pressure, 2 temperature (1 inactive)."
    status = await bot.reply(text="is the cellar online?", asker=ANN, history=())
    assert status.intent == "device_status"
    assert "Cellar (pressure) is active" in status.text and "5 hours ago" in status.text
    assert "silent" in status.text  # active, but nothing for five hours


async def test_an_ambiguous_or_unknown_name_gets_a_question_back(
    understander: Understander, library: HelpLibrary
) -> None:
    bot = assistant(understander, library, FakeSources())
    ambiguous = await bot.reply(text="what does the greenhouse read now", asker=ANN, history=())
    assert "Greenhouse North" in ambiguous.text and "Greenhouse South" in ambiguous.text
    assert ambiguous.text.startswith("Which device")


async def test_anomalies_and_correlations(understander: Understander, library: HelpLibrary) -> None:
    bot = assistant(understander, library, FakeSources())
    odd = await bot.reply(text="anything odd last night?", asker=ANN, history=())
    assert odd.intent == "anomalies" and "1 anomaly last night (1 spike)" in odd.text
    assert "45°C" in odd.text and odd.facts.stream_ids == ("s-d1",)
    related = await bot.reply(
        text="how does greenhouse north correlate with the cellar", asker=ANN, history=()
    )
    assert related.intent == "correlation"
    assert "Pearson r = -0.82" in related.text and "opposite directions" in related.text


async def test_no_token_no_data_and_a_down_service_is_said_so(
    understander: Understander, library: HelpLibrary
) -> None:
    sources = FakeSources()
    bot = assistant(understander, library, sources)
    anonymous = await bot.reply(
        text="how many devices do i have", asker=Asker(user_id=None, token=None), history=()
    )
    assert "sign in" in anonymous.text and sources.tokens == []
    sources.down = True
    down = await bot.reply(text="how many devices do i have", asker=ANN, history=())
    assert down.unsure and "can't reach" in down.text


async def test_help_people_and_complaints(understander: Understander, library: HelpLibrary) -> None:
    bot = assistant(understander, library, FakeSources())
    mfa = await bot.reply(text="how do i set up two factor", asker=ANN, history=())
    assert mfa.facts.articles == ("two-factor-authentication",)
    person = await bot.reply(text="can i speak to a human please", asker=ANN, history=())
    assert person.wants_person and not person.unsure
    upset = await bot.reply(text="that's wrong, useless bot", asker=ANN, history=())
    assert upset.unsure and "person" in upset.text


def test_figures_are_written_as_people_write_them() -> None:
    assert figure(21.0, "°C") == "21°C"
    assert figure(1013.25, "hPa") == "1,013.25 hPa"
    assert figure(0.5, "g") == "0.5 g"
    assert figure(-3.456) == "-3.46"
