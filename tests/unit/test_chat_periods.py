"""Time phrases resolved in the user's zone (services/chat/chat/nlu/periods.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from services.chat.chat.nlu.periods import KEYWORDS, find_period
from services.chat.chat.nlu.text import Speller

NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
# Wednesday 11 March 2026, 14:30 in New York (EDT, UTC-4; EST, UTC-5, until Sunday 8 March).
NOW = datetime(2026, 3, 11, 18, 30, tzinfo=UTC)
SPELLER = Speller(keywords=KEYWORDS)


def utc(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def period(text: str, *, now: datetime = NOW, tz: ZoneInfo = NEW_YORK) -> tuple[datetime, datetime]:
    found = find_period(SPELLER.normalise(text), now=now, tz=tz)
    assert found is not None, text
    assert found.start.tzinfo is not None and found.start.utcoffset() == UTC.utcoffset(None)
    return found.start, found.end


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("what's the temp now", NOW, NOW),
        ("currently", NOW, NOW),
        ("anything today", utc(3, 11, 4), NOW),
        ("yesterday", utc(3, 10, 4), utc(3, 11, 4)),
        ("anything odd last night", utc(3, 10, 22), utc(3, 11, 10)),
        ("overnight", utc(3, 10, 22), utc(3, 11, 10)),
        ("this morning", utc(3, 11, 10), utc(3, 11, 16)),
        ("this afternoon", utc(3, 11, 16), NOW),  # cut at now
        ("this week", utc(3, 9, 4), NOW),
        # Monday 2 March was still on EST: midnight is 05:00 UTC.
        ("last week", utc(3, 2, 5), utc(3, 9, 4)),
        ("in the last week", utc(3, 2, 5), utc(3, 9, 4)),
        ("the past week", utc(3, 4, 18, 30), NOW),
        ("the past 3 hours", utc(3, 11, 15, 30), NOW),
        ("last 30 minutes", utc(3, 11, 18), NOW),
        ("last 30 mins", utc(3, 11, 18), NOW),
        ("in the last 2 days", utc(3, 9, 18, 30), NOW),
        ("past hour", utc(3, 11, 17, 30), NOW),
        ("the last couple of hours", utc(3, 11, 16, 30), NOW),
        ("past 24h", utc(3, 10, 18, 30), NOW),
        ("over the last half hour", utc(3, 11, 18), NOW),
        # Ranges of days, bare durations and whole calendar spans.
        ("from monday to wednesday", utc(3, 9, 4), NOW),
        ("mon-tue", utc(3, 9, 4), utc(3, 11, 4)),
        ("between tuesday and thursday", utc(3, 10, 4), NOW),
        ("from the 1st to the 15th of last month", utc(2, 1, 5), utc(2, 16, 5)),
        ("2-5 march", utc(3, 2, 5), utc(3, 6, 5)),
        ("temperature 1 week", utc(3, 4, 18, 30), NOW),
        ("for 3 days", utc(3, 8, 18, 30), NOW),
        ("over a fortnight", utc(2, 25, 18, 30), NOW),
        ("the past fortnight", utc(2, 25, 18, 30), NOW),
        ("for the whole month", utc(3, 1, 5), NOW),
        ("the entire week", utc(3, 9, 4), NOW),
        ("since yesterday morning", utc(3, 10, 10), NOW),
        ("since monday", utc(3, 9, 4), NOW),
        ("since mon", utc(3, 9, 4), NOW),
        ("since yesterday", utc(3, 10, 4), NOW),
        ("since 8am", utc(3, 11, 12), NOW),
        ("since 08:15", utc(3, 11, 12, 15), NOW),
        ("since 9pm", utc(3, 11, 1), NOW),  # yesterday evening: 9 pm today is still to come
        # The weekend of the DST change: Saturday 00:00 EST to Monday 00:00 EDT, 47 hours.
        ("over the weekend", utc(3, 7, 5), utc(3, 9, 4)),
        ("last weekend", utc(3, 7, 5), utc(3, 9, 4)),
        ("on tuesday", utc(3, 10, 4), utc(3, 11, 4)),
        ("wednesday", utc(3, 11, 4), NOW),
        ("last wednesday", utc(3, 4, 5), utc(3, 5, 5)),
        ("this month", utc(3, 1, 5), NOW),
        ("last month", utc(2, 1, 5), utc(3, 1, 5)),
        ("yesteday", utc(3, 10, 4), utc(3, 11, 4)),  # a typo of a keyword
        ("YESTERDAY", utc(3, 10, 4), utc(3, 11, 4)),
    ],
)
def test_phrases_resolve_in_the_users_zone(text: str, start: datetime, end: datetime) -> None:
    assert period(text) == (start, end)


def test_dst_spring_forward_day() -> None:
    """On Sunday 8 March 2026 New York skips 02:00-03:00: the night before is 11 hours."""
    now = datetime(2026, 3, 8, 16, 0, tzinfo=UTC)  # 12:00 EDT
    assert period("today", now=now) == (utc(3, 8, 5), now)
    assert period("last night", now=now) == (utc(3, 7, 23), utc(3, 8, 10))
    # Durations stay absolute across the change.
    assert period("past 3 hours", now=now) == (utc(3, 8, 13), now)


def test_dst_fall_back_day() -> None:
    """London's 25 October 2026 has 25 hours; yesterday started on BST."""
    now = datetime(2026, 10, 25, 23, 30, tzinfo=UTC)  # 23:30 GMT
    assert period("today", now=now, tz=LONDON) == (datetime(2026, 10, 24, 23, 0, tzinfo=UTC), now)
    assert period("yesterday", now=now, tz=LONDON) == (
        datetime(2026, 10, 23, 23, 0, tzinfo=UTC),
        datetime(2026, 10, 24, 23, 0, tzinfo=UTC),
    )


def test_phrase_is_quoted_as_written() -> None:
    found = find_period(
        SPELLER.normalise("Anything odd in the Past 3 Hours?"), now=NOW, tz=NEW_YORK
    )
    assert found is not None
    assert found.phrase == "in the Past 3 Hours"
    typo = find_period(SPELLER.normalise("max temp yesteday pls"), now=NOW, tz=NEW_YORK)
    assert typo is not None and typo.phrase == "yesteday"


def test_first_phrase_wins() -> None:
    assert period("yesterday or maybe today") == (utc(3, 10, 4), utc(3, 11, 4))


@pytest.mark.parametrize(
    "text",
    [
        "how many devices do I have",
        "the sun is hot",
        "I sat down",
        "since 2 days",
        "last",
        "",
        "readings every 5 minutes",
        "it sends twice a day",
    ],
)
def test_no_time_phrase(text: str) -> None:
    assert find_period(SPELLER.normalise(text), now=NOW, tz=NEW_YORK) is None


def test_never_ends_after_now_nor_starts_after_its_end() -> None:
    early = datetime(2026, 3, 11, 8, 0, tzinfo=UTC)  # 04:00 EDT: the evening is still to come
    for text in ("this evening", "last night", "this morning", "today", "since 9pm"):
        start, end = period(text, now=early)
        assert start <= end <= early


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        # Parts of a named day (local 12:00-18:00 on Tuesday 10 March, EDT).
        ("yesterday afternoon", utc(3, 10, 16), utc(3, 10, 22)),
        ("on monday evening", utc(3, 9, 22), utc(3, 10, 4)),
        ("tuesday night", utc(3, 10, 22), utc(3, 11, 10)),
        # Clock ranges, on the day the message names anywhere, else today.
        ("between 9am and 11:30am", utc(3, 11, 13), utc(3, 11, 15, 30)),
        ("from 20:00 to 22:00 yesterday", utc(3, 11, 0), utc(3, 11, 2)),
        ("8-10pm on monday", utc(3, 10, 0), utc(3, 10, 2)),
        ("from 11pm to 1am on monday", utc(3, 10, 3), utc(3, 10, 5)),
        # A moment is the hour around it.
        ("at 6am", utc(3, 11, 9, 30), utc(3, 11, 10, 30)),
        ("around 4:15 pm yesterday", utc(3, 10, 19, 45), utc(3, 10, 20, 45)),
        # Dates: the whole local day; 3 March was still on EST (UTC-5).
        ("on 3 march", utc(3, 3, 5), utc(3, 4, 5)),
        ("march 9th", utc(3, 9, 4), utc(3, 10, 4)),
        ("2026-03-01", utc(3, 1, 5), utc(3, 2, 5)),
        ("since march 2", utc(3, 2, 5), NOW),
        # Days back: Sunday 8 March, the day the clocks changed, is 23 hours long.
        ("the day before yesterday", utc(3, 9, 4), utc(3, 10, 4)),
        ("3 days ago", utc(3, 8, 5), utc(3, 9, 4)),
        ("two hours ago", utc(3, 11, 16), utc(3, 11, 17)),
        ("a week ago", utc(3, 2, 5), utc(3, 9, 4)),
        ("this wk", utc(3, 9, 4), NOW),
    ],
)
def test_days_parts_clock_times_and_dates(text: str, start: datetime, end: datetime) -> None:
    assert period(text) == (start, end)


def test_a_date_without_a_year_is_the_latest_one_so_far() -> None:
    assert period("on 25 december") == (
        datetime(2025, 12, 25, 5, 0, tzinfo=UTC),
        datetime(2025, 12, 26, 5, 0, tzinfo=UTC),
    )


def test_this_morning_before_six_is_the_morning_so_far() -> None:
    early = datetime(2026, 3, 11, 7, 40, tzinfo=UTC)  # 03:40 EDT
    assert period("this morning", now=early) == (utc(3, 11, 4), early)
    assert period("this morning") == (utc(3, 11, 10), utc(3, 11, 16))


def test_a_clock_range_still_to_come_today_is_yesterdays() -> None:
    early = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)  # 08:00 EDT
    assert period("between 6pm and 9pm", now=early) == (utc(3, 10, 22), utc(3, 11, 1))


@pytest.mark.parametrize(
    "text",
    ["sensor 5 may need a look", "between 2 and 5 sensors", "devices 3-4", "at 7 devices"],
)
def test_numbers_that_are_no_time(text: str) -> None:
    assert find_period(SPELLER.normalise(text), now=NOW, tz=NEW_YORK) is None
