"""Loose matching of device names in messages (services/chat/chat/nlu/devices.py)."""

from __future__ import annotations

import pytest

from services.chat.chat.nlu.devices import find_devices

NAMES = (
    "Greenhouse North",
    "Greenhouse South",
    "Sensor-03",
    "Sensor-30",
    "Boiler Room",
    "Cellar",
    "Walk-in Freezer",
)


def matches(text: str, names: tuple[str, ...] = NAMES) -> list[tuple[str, ...]]:
    return [ref.matches for ref in find_devices(text, names)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("greenhouse north temp", [("Greenhouse North",)]),
        ("GREENHOUSE NORTH", [("Greenhouse North",)]),
        ("the cellar", [("Cellar",)]),
        ("boiler room pressure", [("Boiler Room",)]),
        ("status of the walk in freezer", [("Walk-in Freezer",)]),
        # partial names
        ("how's the boiler doing", [("Boiler Room",)]),
        ("the freezer", [("Walk-in Freezer",)]),
        # typos within one or two letters, transpositions counting once
        ("greenhuose south", [("Greenhouse South",)]),
        ("grenhouse nort", [("Greenhouse North",)]),
        ("the celler", [("Cellar",)]),
        ("boilr rom", [("Boiler Room",)]),
        # spaces do not count
        ("green house south", [("Greenhouse South",)]),
        # numbers: zeros and punctuation do not count, the value does
        ("sensor 3", [("Sensor-03",)]),
        ("sensor03", [("Sensor-03",)]),
        ("Sensor 30 please", [("Sensor-30",)]),
        ("sensr 3", [("Sensor-03",)]),
    ],
)
def test_loose_matches(text: str, expected: list[tuple[str, ...]]) -> None:
    assert matches(text) == expected


def test_ambiguous_mention_lists_every_candidate() -> None:
    refs = find_devices("what's the temp in the greenhouse", NAMES)
    assert len(refs) == 1
    assert refs[0].mention == "greenhouse"
    assert refs[0].matches == ("Greenhouse North", "Greenhouse South")


def test_the_more_complete_match_wins() -> None:
    names = ("Greenhouse", "Greenhouse North")
    assert matches("the greenhouse", names) == [("Greenhouse",)]
    assert matches("greenhouse north", names) == [("Greenhouse North",)]


def test_several_mentions_in_order_as_written() -> None:
    refs = find_devices("compare Sensor 30 with the Boiler Room", NAMES)
    assert [(r.mention, r.matches) for r in refs] == [
        ("Sensor 30", ("Sensor-30",)),
        ("Boiler Room", ("Boiler Room",)),
    ]


def test_numbered_device_the_user_does_not_have() -> None:
    refs = find_devices("why is sensor 4 offline", NAMES)
    assert [(r.mention, r.matches) for r in refs] == [("sensor 4", ())]
    assert matches("what about node #12", ()) == [()]


@pytest.mark.parametrize(
    "text",
    [
        "how many sensors do I have",  # generic words name no device
        "what's new",
        "sensor",
        "the temperature room",
        "",
    ],
)
def test_no_device(text: str) -> None:
    assert matches(text) == []


def test_short_words_must_be_exact() -> None:
    # "shed" is one edit from "she", and "lab" from "lap": short words never fuzzy-match.
    assert matches("she said", ("Shed",)) == []
    assert matches("the shed", ("Shed",)) == [("Shed",)]
    assert matches("lap top", ("Lab",)) == []


def test_long_text_is_searched_quickly_enough() -> None:
    text = ("the greenhouse north is lovely " * 200)[:4000]
    refs = find_devices(text, NAMES)
    assert refs and all(r.matches == ("Greenhouse North",) for r in refs)
