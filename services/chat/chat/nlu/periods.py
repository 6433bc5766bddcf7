"""Time phrases resolved to a UTC range in the user's time zone.

Calendar phrases are local: "today" starts at the user's midnight, "this week"
on their Monday at 00:00, so a DST change inside the range is honoured (the
range is then 23 or 25 hours long). Durations are absolute: "the past 3 hours"
is three hours back from now whatever the clocks did. Every range ends at
``now`` at the latest.

Definitions where usage varies (all local time):

- "now", "right now", "currently", "at the moment": the instant ``now`` (start = end).
- "last night", "overnight": yesterday 18:00 to today 06:00.
- "this morning" 06:00-12:00, "this afternoon" 12:00-18:00, "this evening" 18:00-24:00.
- "this week": Monday 00:00 to now; "last week": the Monday before to this Monday.
- "last N <unit>", "past <unit>", "previous N <unit>": rolling, back from now.
  "last week" and "last month" without a number are the calendar ones ("in the last
  week" too); "past week" and "the last 7 days" are rolling.
- "over the weekend": the Saturday 00:00 to Monday 00:00 of the weekend in progress,
  else of the last one; "last weekend" is always the last complete one.
- "monday", "on tuesday": that whole day, the latest one on or before today;
  "last monday": the latest one before today.
- "since X": from the start of X to now ("since monday", "since 8am", "since yesterday",
  "since 2026-11-30", "since yesterday morning").
- A duration alone ("1 week", "for 3 days", "over a fortnight") is rolling, as "the past ...";
  "the whole month" ("the entire week", "all day") is this month (week, day) so far.
- "from monday to wednesday" ("tue-thu"): the first day's start to the end of the last;
  "from the 1st to the 15th of last month" ("1-15 november"): those days of that month.
- "yesterday evening", "on tuesday morning": that part of that day (as "this ..." above;
  a night runs to 06:00 the next morning). "This morning" asked before 06:00 starts at
  midnight: it is the morning the asker is in.
- "on 30 November", "nov 30th", "2026-11-30": that whole day; without a year, the latest
  one on or before today. "The day before yesterday", "2 days ago": that whole day;
  "3 hours ago": the hour around then; "2 weeks ago": that calendar week.
- Clock times: "between 6pm and 9pm", "from 18:00 to 21:00", "6-9pm" are that range;
  "at 7pm" the hour around it (18:30-19:30). Their day is the one the message names
  anywhere ("... yesterday", "on monday", "on 30 nov"), else today, or yesterday when
  today's is still to come.

When a message holds several phrases, the first one wins.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.chat.chat.nlu.text import Normalised
from services.chat.chat.nlu.values import Period

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_ABBREV = {
    "mon": 0,
    "tue": 1,
    "tues": 1,
    "wed": 2,
    "thu": 3,
    "thur": 3,
    "thurs": 3,
    "fri": 4,
    "sat": 5,
    "sun": 6,
}
DAY_ABBREVIATIONS = frozenset(_DAY_ABBREV)
"""Short names of weekdays ("mon to wed"), words of time rather than of a device's name."""
_NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "few": 3,
    "couple": 2,
    "couple of": 2,
    "several": 3,
}
_UNITS: dict[str, timedelta] = {
    "m": timedelta(minutes=1),
    "min": timedelta(minutes=1),
    "mins": timedelta(minutes=1),
    "minute": timedelta(minutes=1),
    "minutes": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "hr": timedelta(hours=1),
    "hrs": timedelta(hours=1),
    "hour": timedelta(hours=1),
    "hours": timedelta(hours=1),
    "d": timedelta(days=1),
    "day": timedelta(days=1),
    "days": timedelta(days=1),
    "wk": timedelta(weeks=1),
    "wks": timedelta(weeks=1),
    "week": timedelta(weeks=1),
    "weeks": timedelta(weeks=1),
    "fortnight": timedelta(days=14),
    "fortnights": timedelta(days=14),
    "month": timedelta(days=30),
    "months": timedelta(days=30),
}
KEYWORDS = frozenset(
    {
        "today",
        "yesterday",
        "tonight",
        "overnight",
        "morning",
        "afternoon",
        "evening",
        "weekend",
        "minutes",
        "minute",
        "hours",
        "since",
        "month",
        "previous",
        "currently",
        "midnight",
        "moment",
        "couple",
        "several",
        "twenty",
        "thirty",
        "fifteen",
        "eleven",
        "twelve",
        "before",
        "fortnight",
        *WEEKDAYS,
        *(m for m in ("january", "february", "march", "april", "june", "july", "august",
                      "september", "october", "november", "december")),
    }
)
"""Words of time phrases, for the speller."""

_NUM = (
    r"(?P<num>\d{1,4}|"
    + "|".join(sorted((re.escape(k) for k in _NUMBERS), key=len, reverse=True))
    + r")"
)
_UNIT = r"(?P<unit>" + "|".join(sorted(_UNITS, key=len, reverse=True)) + r")"
_DAY = r"(?P<day>" + "|".join(WEEKDAYS) + "|" + "|".join(_DAY_ABBREV) + r")"
_CLOCK = r"(?P<hour>\d{1,2})(?::(?P<minute>\d{2}))?\s*(?P<ampm>am|pm|a\.m\.|p\.m\.)?"
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")  # fmt: skip
_MONTH = (
    r"(?P<month>"
    + "|".join(sorted({*MONTHS, *(m[:3] for m in MONTHS), "sept"}, key=len, reverse=True))
    + r")\.?"
)
_DAY_OF_MONTH = r"(?P<dom>\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?:,?\s+(?P<year>\d{4}))?"
_DATE = (
    r"(?:(?:the\s+)?"
    + _DAY_OF_MONTH
    + r"\s+(?:of\s+)?"
    + _MONTH
    + _YEAR
    + r"|"
    + _MONTH.replace("month", "month2")
    + r"\s+(?:the\s+)?"
    + _DAY_OF_MONTH.replace("dom", "dom2")
    + _YEAR.replace("year", "year2")
    + r"|(?P<iso_y>\d{4})-(?P<iso_m>\d{1,2})-(?P<iso_d>\d{1,2}))\b"
)
_PART = r"(?P<part>morning|afternoon|evening|night)"
_PARTS = {"morning": (6, 12), "afternoon": (12, 18), "evening": (18, 24), "night": (18, 30)}
"""Parts of a day in local hours; a night ends at 06:00 the next day (hour 30)."""
# A clock time people write: "7pm", "7 pm", "19:00", "noon", "midnight"; a bare "7" only
# where the other end of a range says am or pm.
_TIME = r"(?:\d{1,2}(?::\d{2})?\s*(?:am|pm|a\.m\.|p\.m\.)?|noon|midday|midnight)"
_TIME_PIECE = re.compile(
    r"(?P<hour>\d{1,2})(?::(?P<minute>\d{2}))?\s*(?P<ampm>am|pm|a\.m\.|p\.m\.)?|(?P<word>noon|midday|midnight)"
)

Resolver = Callable[[re.Match[str], datetime, ZoneInfo], tuple[datetime, datetime] | None]


def _at(day: date, hour: int, tz: ZoneInfo, minute: int = 0) -> datetime:
    """Local wall-clock time ``hour:minute`` on ``day``, in UTC."""
    return datetime.combine(day, time(hour, minute), tzinfo=tz).astimezone(UTC)


def _local_today(now: datetime, tz: ZoneInfo) -> date:
    return now.astimezone(tz).date()


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _day_index(name: str) -> int:
    return WEEKDAYS.index(name) if name in WEEKDAYS else _DAY_ABBREV[name]


def _latest(weekday: int, today: date, *, before_today: bool) -> date:
    back = (today.weekday() - weekday) % 7
    if back == 0 and before_today:
        back = 7
    return today - timedelta(days=back)


def _number(word: str | None) -> int:
    if not word:
        return 1
    return int(word) if word.isdigit() else _NUMBERS[word]


def _rolling(m: re.Match[str], now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    if m.group("num") is None and re.search(r"\blast\s+(?:week|month)\b", m.group()):
        return None  # the calendar week and month (see the module's definitions)
    count = _number(m.group("num"))
    if count <= 0:
        return None
    try:
        return now - count * _UNITS[m.group("unit")], now
    except OverflowError:
        return None


def _half_hour(m: re.Match[str], now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    return now - timedelta(minutes=30), now


def _now(m: re.Match[str], now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    return now, now


def _today(m: re.Match[str], now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    return _at(_local_today(now, tz), 0, tz), now


def _yesterday(m: re.Match[str], now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    today = _local_today(now, tz)
    return _at(today - timedelta(days=1), 0, tz), _at(today, 0, tz)


def _last_night(m: re.Match[str], now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    today = _local_today(now, tz)
    return _at(today - timedelta(days=1), 18, tz), _at(today, 6, tz)


def _part_of_today(first: int, last: int) -> Resolver:
    def resolve(m: re.Match[str], now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
        today = _local_today(now, tz)
        end = _at(today + timedelta(days=1), 0, tz) if last == 24 else _at(today, last, tz)
        return _at(today, first, tz), end

    return resolve


def _this_week(m: re.Match[str], now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    return _at(_monday(_local_today(now, tz)), 0, tz), now


def _last_week(m: re.Match[str], now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    monday = _monday(_local_today(now, tz))
    return _at(monday - timedelta(days=7), 0, tz), _at(monday, 0, tz)


def _this_month(m: re.Match[str], now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    return _at(_local_today(now, tz).replace(day=1), 0, tz), now


def _last_month(m: re.Match[str], now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    first = _local_today(now, tz).replace(day=1)
    return _at((first - timedelta(days=1)).replace(day=1), 0, tz), _at(first, 0, tz)


def _weekend(*, complete: bool) -> Resolver:
    def resolve(m: re.Match[str], now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
        today = _local_today(now, tz)
        saturday = _latest(5, today, before_today=False)
        if complete and today.weekday() >= 5:
            saturday -= timedelta(days=7)
        return _at(saturday, 0, tz), _at(saturday + timedelta(days=2), 0, tz)

    return resolve


def _weekday(m: re.Match[str], now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    day = _latest(
        _day_index(m.group("day")), _local_today(now, tz), before_today=bool(m.group("last"))
    )
    return _at(day, 0, tz), _at(day + timedelta(days=1), 0, tz)


def _since_day(m: re.Match[str], now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    day = _latest(_day_index(m.group("day")), _local_today(now, tz), before_today=False)
    return _at(day, 0, tz), now


def _24h(hour: int, minute: int, ampm: str) -> tuple[int, int] | None:
    """``hour:minute`` with "am"/"pm" (or "") on a 24-hour clock; None if no such time."""
    if ampm == "pm" and hour < 12:
        hour += 12
    elif ampm == "am" and hour == 12:
        hour = 0
    if hour > 23 or minute > 59:
        return None
    return hour, minute


def _since_clock(m: re.Match[str], now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    ampm = (m.group("ampm") or "").replace(".", "")
    if not ampm and m.group("minute") is None:
        return None  # "since 2 days" is no clock time
    clock = _24h(int(m.group("hour")), int(m.group("minute") or 0), ampm)
    if clock is None:
        return None
    hour, minute = clock
    today = _local_today(now, tz)
    start = _at(today, hour, tz, minute)
    # "since 9pm" asked at 8am means yesterday evening.
    if start > now:
        start = _at(today - timedelta(days=1), hour, tz, minute)
    return start, now


def _since(resolver: Resolver) -> Resolver:
    """From the start of what ``resolver`` answers to now."""

    def resolve(m: re.Match[str], now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
        found = resolver(m, now, tz)
        return None if found is None else (found[0], now)

    return resolve


def _month_day(m: re.Match[str], today: date) -> date | None:
    """The date a matched ``_DATE`` names; without a year, the latest on or before today."""
    groups = m.groupdict()
    try:
        if groups.get("iso_y"):
            return date(int(groups["iso_y"]), int(groups["iso_m"]), int(groups["iso_d"]))
        name = groups.get("month") or groups.get("month2") or ""
        number = int(groups.get("dom") or groups.get("dom2") or 0)
        year_text = groups.get("year") or groups.get("year2")
        month = next(i for i, full in enumerate(MONTHS, 1) if full.startswith(name[:3]))
        if year_text:
            return date(int(year_text), month, number)
        found = date(today.year, month, number)
        return found if found <= today else date(today.year - 1, month, number)
    except (ValueError, StopIteration):
        return None


def _date(m: re.Match[str], now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    if (m.group("month") or m.group("month2")) == "may" and not re.match(
        r"\s*(?:on|since|the)\b", m.group()
    ):
        return None  # "sensor 5 may be off": "may" is a month only after "on" or "the"
    day = _month_day(m, _local_today(now, tz))
    if day is None:
        return None
    return _at(day, 0, tz), _at(day + timedelta(days=1), 0, tz)


def _days_before(count: int) -> Resolver:
    def resolve(m: re.Match[str], now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
        day = _local_today(now, tz) - timedelta(days=count)
        return _at(day, 0, tz), _at(day + timedelta(days=1), 0, tz)

    return resolve


def _ago(m: re.Match[str], now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    count = _number(m.group("num"))
    unit = _UNITS[m.group("unit")]
    if count <= 0 or count > 10_000:
        return None
    today = _local_today(now, tz)
    if unit == timedelta(days=1):
        day = today - timedelta(days=count)
        return _at(day, 0, tz), _at(day + timedelta(days=1), 0, tz)
    if unit == timedelta(weeks=1):
        monday = _monday(today) - timedelta(weeks=count)
        return _at(monday, 0, tz), _at(monday + timedelta(days=7), 0, tz)
    if unit > timedelta(weeks=1):
        return None  # "2 months ago": no calendar month is meant precisely enough
    moment = now - count * unit
    return moment - unit / 2, moment + unit / 2


def _part_of_day(m: re.Match[str], now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    today = _local_today(now, tz)
    said = (m.group("which") or "").strip()
    if m.group("day"):
        day = _latest(_day_index(m.group("day")), today, before_today=False)
    elif said == "yesterday":
        day = today - timedelta(days=1)
    else:
        day = today
    first, last = _PARTS[m.group("part")]
    start = _at(day, first, tz)
    if m.group("part") == "morning" and day == today and now < start:
        start = _at(day, 0, tz)  # asked at 3 am: the morning the asker is in
    return start, _at(day + timedelta(days=last // 24), last % 24, tz)


_NAMED_DAY = re.compile(
    r"\b(?P<before>(?:the\s+)?day\s+before\s+yesterday)\b|\b(?P<yesterday>yesterday|yday)\b"
    r"|\b(?P<today>today|tonight)\b|\b(?:on\s+|last\s+)(?P<day>" + "|".join(WEEKDAYS) + r")\b"
    r"|\b(?:on\s+)?" + _DATE
)


def _day_of(text: str, now: datetime, tz: ZoneInfo, *, start: time) -> date:
    """The day a clock time of ``text`` is on: the one ``text`` names, else today, or
    yesterday when ``start`` today is still to come ("between 9pm and 11pm" at 8 am)."""
    today = _local_today(now, tz)
    m = _NAMED_DAY.search(text)
    if m is not None:
        if m.group("before"):
            return today - timedelta(days=2)
        if m.group("yesterday"):
            return today - timedelta(days=1)
        if m.group("today"):
            return today
        if m.group("day"):
            return _latest(_day_index(m.group("day")), today, before_today=False)
        found = _month_day(m, today)
        if found is not None:
            return found
    if datetime.combine(today, start, tzinfo=tz) > now:
        return today - timedelta(days=1)
    return today


def _clock(text: str, *, default_ampm: str = "") -> tuple[int, int] | None:
    """Hour and minute of a written clock time ("7pm", "19:00", "noon"); None if it is none."""
    m = _TIME_PIECE.fullmatch(text.strip())
    if m is None:
        return None
    if m.group("word"):
        return (0, 0) if m.group("word") == "midnight" else (12, 0)
    ampm = (m.group("ampm") or default_ampm).replace(".", "")
    return _24h(int(m.group("hour")), int(m.group("minute") or 0), ampm)


def _ampm(text: str) -> str:
    m = re.search(r"(am|pm|a\.m\.|p\.m\.)\s*$", text.strip())
    return m.group(1).replace(".", "") if m else ""


def _clock_range(m: re.Match[str], now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    first_text, last_text = m.group("first"), m.group("last")
    if not (_ampm(first_text) or _ampm(last_text) or ":" in first_text + last_text) and not (
        re.search(r"noon|midday|midnight", first_text + last_text)
    ):
        return None  # "from 2 to 5" may be anything
    last = _clock(last_text)
    # "6-9pm", "between 6 and 9 pm": the first end takes the last one's am/pm.
    first = _clock(first_text, default_ampm=_ampm(last_text))
    if first is None or last is None:
        return None
    if last == (0, 0):
        last = (24, 0)  # "until midnight": the end of that day
    day = _day_of(m.string, now, tz, start=time(*first))
    start = _at(day, first[0], tz, first[1])
    end = _at(day + timedelta(days=last[0] // 24), last[0] % 24, tz, last[1])
    if end <= start:
        end += timedelta(days=1)  # "from 10pm to 2am"
    return start, end


def _at_clock(m: re.Match[str], now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    said = m.group("time")
    if not (_ampm(said) or ":" in said or re.search(r"noon|midday|midnight", said)):
        return None  # "at 7" may be a count or a sensor
    clock = _clock(said)
    if clock is None:
        return None
    day = _day_of(m.string, now, tz, start=time(*clock))
    moment = _at(day, clock[0], tz, clock[1])
    return moment - timedelta(minutes=30), moment + timedelta(minutes=30)


def _day_range(m: re.Match[str], now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    first = _latest(
        _day_index(m.group("day")), _local_today(now, tz), before_today=bool(m.group("last"))
    )
    days = (_day_index(m.group("day2")) - first.weekday()) % 7 + 1
    return _at(first, 0, tz), _at(first + timedelta(days=days), 0, tz)


def _days_of_month(
    m: re.Match[str], now: datetime, tz: ZoneInfo
) -> tuple[datetime, datetime] | None:
    first_day, last_day = int(m.group("d1")), int(m.group("d2"))
    which = " ".join(m.group("which").split())
    today = _local_today(now, tz)
    if which == "this month":
        month = today.replace(day=1)
    elif which == "last month":
        month = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    else:
        number = next(i for i, full in enumerate(MONTHS, 1) if full.startswith(which[:3]))
        year = today.year if date(today.year, number, 1) <= today else today.year - 1
        month = date(year, number, 1)
    try:
        start, last = month.replace(day=first_day), month.replace(day=last_day)
    except ValueError:
        return None
    if last < start:
        return None
    return _at(start, 0, tz), _at(last + timedelta(days=1), 0, tz)


def _duration(m: re.Match[str], now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    count = _number(m.group("num"))
    unit = _UNITS.get(m.group("unit").strip())
    if unit is None or count <= 0:
        return None
    try:
        return now - count * unit, now
    except OverflowError:
        return None


def _since_date(m: re.Match[str], now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    found = _date(m, now, tz)
    return None if found is None else (found[0], now)


_LAST = r"(?:last|past|previous|prior|recent|preceding)"
_RULES: tuple[tuple[re.Pattern[str], Resolver], ...] = tuple(
    (re.compile(pattern), resolver)
    for pattern, resolver in (
        (
            r"\b(?:(?:from|between)\s+)?(?P<last>last\s+)?" + _DAY + r"\s*"
            r"(?:-|\u2013|to|till|until|through|thru|and)\s*(?P<day2>"
            + "|".join(WEEKDAYS)
            + "|"
            + "|".join(_DAY_ABBREV)
            + r")\b",
            _day_range,
        ),
        (
            r"\b(?:(?:from|between)\s+)?(?:the\s+)?(?P<d1>\d{1,2})(?:st|nd|rd|th)?\s*"
            r"(?:-|\u2013|to|till|until|through|thru|and)\s*(?:the\s+)?"
            r"(?P<d2>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?"
            r"(?P<which>last\s+month|this\s+month|"
            + "|".join(sorted({*MONTHS, *(m[:3] for m in MONTHS), "sept"}, key=len, reverse=True))
            + r")\b",
            _days_of_month,
        ),
        (
            r"\bsince\s+(?:(?P<which>yesterday|this)\s+|(?:last\s+)?(?P<day>"
            + "|".join(WEEKDAYS)
            + r")\s+)"
            + _PART
            + r"\b",
            _since(_part_of_day),
        ),
        (
            r"\b(?:for|over|during|within)\s+(?:the\s+|a\s+|an\s+)?"
            r"(?P<num>\d{1,4}|one|two|three|four|five|six|seven|eight|nine|ten|twelve|a|an)?"
            r"\s*(?P<unit>fortnights?|months?|weeks?|days?|hours?|hrs?|minutes?|mins)\b"
            r"(?!\s+ago\b)",
            _duration,
        ),
        (
            r"(?<!every\s)(?<!each\s)(?<!per\s)(?<!since\s)\b"
            r"(?P<num>\d{1,4}|two|three|four|five|six|seven|eight|nine|ten|twelve|"
            r"fifteen|twenty|thirty|forty)"
            r"(?P<unit>\s*(?:fortnights?|months?|weeks?|wks?|days?|hours?|hrs?|minutes?|mins)"
            r"|h|d|wk)\b(?!\s+(?:ago|later|from\s+now)\b)",
            _duration,
        ),
        (
            r"\b(?:the\s+)?(?:whole|entire|full)\s+(?:of\s+)?(?:this\s+|the\s+)?month\b"
            r"|\ball\s+month\b",
            _this_month,
        ),
        (
            r"\b(?:the\s+)?(?:whole|entire|full)\s+(?:of\s+)?(?:this\s+|the\s+)?week\b"
            r"|\ball\s+week\b",
            _this_week,
        ),
        (
            r"\b(?:the\s+)?(?:whole|entire|full)\s+(?:of\s+)?(?:today|the\s+day)\b"
            r"|\ball\s+day(?:\s+today)?\b",
            _today,
        ),
        (r"\bsince\s+(?:last\s+)?" + _DAY + r"\b", _since_day),
        (r"\bsince\s+yesterday\b", _since(_yesterday)),
        (r"\bsince\s+last\s+night\b", _since(_last_night)),
        (r"\bsince\s+this\s+morning\b", _since(_part_of_today(6, 12))),
        (r"\bsince\s+midnight\b", _today),
        (
            r"\bsince\s+(?:the\s+start\s+of\s+|the\s+beginning\s+of\s+)?(?:this|the)\s+week\b",
            _this_week,
        ),
        (r"\bsince\s+last\s+week\b", _since(_last_week)),
        (r"\bsince\s+(?:the\s+)?" + _DATE, _since_date),
        (r"\bsince\s+" + _CLOCK, _since_clock),
        (
            r"\b(?:between\s+|from\s+)?(?P<first>" + _TIME + r")\s*"
            r"(?:-|\u2013|to|and|until|till)\s*(?P<last>" + _TIME + r")"
            r"(?!\s*(?:days?|hours?|h|d|mins?|minutes?|weeks?)\b)",
            _clock_range,
        ),
        (r"\b(?:at|around|about)\s+(?P<time>" + _TIME + r")", _at_clock),
        (
            r"\b(?:(?P<which>yesterday|this)\s+|(?:on\s+)?(?:last\s+)?(?P<day>"
            + "|".join(WEEKDAYS)
            + r")\s+)"
            + _PART
            + r"\b",
            _part_of_day,
        ),
        (r"\b(?:the\s+)?day\s+before\s+yesterday\b", _days_before(2)),
        (r"\b" + _NUM + r"\s*" + _UNIT + r"\s+ago\b", _ago),
        (r"\b(?:on\s+)?" + _DATE, _date),
        (
            r"\b(?:in\s+|over\s+|during\s+|for\s+|within\s+)?(?:the\s+)?"
            + _LAST
            + r"\s+"
            + r"(?:"
            + _NUM
            + r"\s*)?"
            + r"(?:\s*of\s+)?"
            + _UNIT
            + r"\b",
            _rolling,
        ),
        (
            r"\b(?:in\s+|over\s+|within\s+)?(?:the\s+)?" + _LAST + r"\s+half\s+(?:an\s+)?hour\b",
            _half_hour,
        ),
        (r"\b(?:last|yesterday)\s+night\b|\bovernight\b|\bduring\s+the\s+night\b", _last_night),
        (r"\byesterday\b|\byday\b", _yesterday),
        (r"\b(?:earlier\s+|so\s+far\s+)?today\b|\bso\s+far\s+today\b", _today),
        (r"\bthis\s+afternoon\b", _part_of_today(12, 18)),
        (r"\bthis\s+evening\b|\btonight\b", _part_of_today(18, 24)),
        (r"\b(?:this|the\s+current)\s+(?:week|wk)\b|\bso\s+far\s+this\s+week\b", _this_week),
        (r"\blast\s+(?:week|wk)\b|\bthe\s+week\s+before\b", _last_week),
        (r"\bthis\s+month\b", _this_month),
        (r"\blast\s+month\b", _last_month),
        (r"\blast\s+weekend\b", _weekend(complete=True)),
        (r"\b(?:over|at|on|during)?\s*(?:the|this)\s+weekend\b", _weekend(complete=False)),
        (r"\b(?:on\s+)?(?P<last>last\s+)?" + _DAY + r"(?:'s)?\b", _weekday),
        (
            r"\b(?:right\s+now|now|currently|at\s+the\s+moment|atm|at\s+present|as\s+of\s+now)\b",
            _now,
        ),
    )
)


def find_period(text: Normalised, *, now: datetime, tz: ZoneInfo) -> Period | None:
    """The first time phrase of ``text`` as a UTC range, or None when it names no time.

    ``now`` must be aware; the answer never ends after it.
    """
    now = now.astimezone(UTC)
    found: list[tuple[int, int, datetime, datetime]] = []
    for pattern, resolver in _RULES:
        for m in pattern.finditer(text.text):
            if m.group().strip() in _BARE_ABBREVIATIONS:
                continue
            resolved = resolver(m, now, tz)
            if resolved is not None:
                found.append((m.start(), -(m.end() - m.start()), *resolved))
                break
    if not found:
        return None
    start_at, negative_length, start, end = min(found, key=lambda f: (f[0], f[1]))
    end = min(end, now)
    start = min(start, end)
    phrase = text.original(start_at, start_at - negative_length)
    return Period(start=start, end=end, phrase=phrase)


# "sat", "sun", "wed" alone are words ("the sun", "I sat"): only with "on"/"since"/"last".
_BARE_ABBREVIATIONS = frozenset(_DAY_ABBREV)
