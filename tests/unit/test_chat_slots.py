"""Slot rules: device type and status, metric, anomaly type, review status (nlu/slots.py)."""

from __future__ import annotations

import pytest

from services.chat.chat.nlu import periods, slots
from services.chat.chat.nlu.text import Speller, allowed_edits

SPELLER = Speller(keywords=periods.KEYWORDS | slots.KEYWORDS, known={"spending", "outline"})


def slot(text: str, name: str) -> str | None:
    return slots.find_slots(SPELLER.normalise(text).text)[name]


@pytest.mark.parametrize(
    ("text", "metric"),
    [
        ("what's the temp", "temperature"),
        ("temperature please", "temperature"),
        ("how hot is it", "temperature"),
        ("in celsius", "temperature"),
        ("the temprature", "temperature"),  # typo
        ("pressure in hPa", "pressure"),
        ("barometric reading", "pressure"),
        ("relative humidity", "humidity"),
        ("the RH", "humidity"),
        ("humidty now", "humidity"),  # typo
        ("vibration on line 4", "acceleration"),
        ("acceleration", "acceleration"),
        ("how many devices", None),
    ],
)
def test_metric_synonyms(text: str, metric: str | None) -> None:
    assert slot(text, "metric") == metric


@pytest.mark.parametrize(
    ("text", "device_type", "metric"),
    [
        ("how many temperature sensors", "temperature", None),
        ("list my thermometers", "temperature", None),
        ("pressure devices", "pressure", None),
        ("motion detectors", "motion", None),
        ("accelerometers", "motion", None),
        ("my generic sensors", "generic", None),
        # a type and, elsewhere, a metric
        ("max temp on the temperature sensors", "temperature", "temperature"),
        ("the temperature of sensor 3", None, "temperature"),
    ],
)
def test_device_type_is_not_also_the_metric(
    text: str, device_type: str | None, metric: str | None
) -> None:
    assert (slot(text, "device_type"), slot(text, "metric")) == (device_type, metric)


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("which sensors are offline", "inactive"),
        ("inactive devices", "inactive"),
        ("is it down", "inactive"),
        ("not reporting", "inactive"),
        ("which are online", "active"),
        ("active ones", "active"),
        ("not active", "inactive"),
        ("under maintenance", "maintenance"),
        ("being serviced", "maintenance"),
        ("the temperature went down", None),
        ("how many devices", None),
    ],
)
def test_device_status(text: str, status: str | None) -> None:
    assert slot(text, "device_status") == status


@pytest.mark.parametrize(
    ("text", "anomaly"),
    [
        ("any spikes", "spike"),
        ("it jumped up", "spike"),
        ("peaks last night", "spike"),
        ("did it dip", "dip"),
        ("a sudden drop", "dip"),
        ("flatline", "flatline"),
        ("was it stuck", "flatline"),
        ("the value froze", "flatline"),
        ("frozen readings", "flatline"),
        ("any gaps", "gap"),
        ("missing data", "gap"),
        ("the sensor went silent", "gap"),
        ("out of range", "out_of_range"),
        ("out of bounds", "out_of_range"),
        ("above the threshold", "out_of_range"),
        ("rate of change", "rate_of_change"),
        ("any sudden jumps", "rate_of_change"),
        ("anything odd", None),
    ],
)
def test_anomaly_type_synonyms(text: str, anomaly: str | None) -> None:
    assert slot(text, "anomaly_type") == anomaly


@pytest.mark.parametrize(
    ("text", "review"),
    [
        ("pending anomalies", "pending"),
        ("unreviewed ones", "pending"),
        ("not yet reviewed", "pending"),
        ("unconfirmed", "pending"),
        ("confirmed anomalies", "confirmed"),
        ("dismissed", "dismissed"),
        ("false positives", "dismissed"),
        ("all anomalies", None),
    ],
)
def test_review_status(text: str, review: str | None) -> None:
    assert slot(text, "review_status") == review


def test_speller_corrects_only_near_misses_of_keywords() -> None:
    assert SPELLER.correct("yesteday") == "yesterday"
    assert SPELLER.correct("anomlies") == "anomalies"
    assert SPELLER.correct("spending") == "spending"  # a known word
    assert SPELLER.correct("about") == "about"  # far from every keyword
    assert SPELLER.correct("hours") == "hours"
    assert SPELLER.correct("pendng") == "pending"
    assert SPELLER.correct("zzzzzzz") == "zzzzzzz"


def test_allowed_edits_grow_with_length() -> None:
    assert [allowed_edits(n) for n in (1, 4, 5, 7, 8, 20)] == [0, 0, 1, 1, 2, 2]


def test_normalised_text_maps_back_to_the_original() -> None:
    normalised = SPELLER.normalise("Max TEMPRATURE İstanbul")
    assert normalised.text.startswith("max temperature ")
    at = normalised.text.index("temperature")
    assert normalised.original(at, at + len("temperature")) == "TEMPRATURE"
