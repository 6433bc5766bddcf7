"""Reading uploaded files (CSV, JSON, XLSX) and keeping them safely, with properties over inputs."""

from __future__ import annotations

import csv
import io
import json
import string
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from services.telemetry.imports import parsing
from services.telemetry.imports.parsing import (
    Defaults,
    FileProblem,
    Reading,
    RowProblem,
    parse_timestamp,
    parse_value,
    read_csv,
    read_json,
    read_xlsx,
)
from services.telemetry.objects import InvalidKey, LocalObjectStore, check_key, safe_filename
from services.telemetry.telemetry.ingest import MAX_MAGNITUDE

DEVICE = str(uuid.uuid4())
DEFAULTS = Defaults(metric_name="temp", device_id=DEVICE)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
# Every value a reading may hold: finite, and within telemetry's bound.
finite = st.floats(min_value=-MAX_MAGNITUDE, max_value=MAX_MAGNITUDE, width=64)
metrics = st.text(alphabet=string.ascii_letters + string.digits + "_.-", min_size=1, max_size=64)
rows_strategy = st.lists(st.tuples(moments, finite, metrics), min_size=0, max_size=30)


def micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# Timestamps and values


@given(moments)
def test_rfc3339_strings_are_exact_to_the_microsecond(moment: datetime) -> None:
    assert parse_timestamp(rfc3339(moment)) == micros(moment)
    assert parse_timestamp(rfc3339(moment).lower()) == micros(moment)
    shifted = moment.astimezone(datetime.now().astimezone().tzinfo)
    assert parse_timestamp(shifted.isoformat()) == micros(moment)


@given(st.integers(min_value=100_000_000, max_value=10**11 - 1))
def test_the_unit_of_an_epoch_number_follows_from_its_magnitude(seconds: int) -> None:
    # The same instant written in seconds, milliseconds or microseconds reads the same.
    expected = seconds * 1_000_000
    assert parse_timestamp(seconds) == expected
    assert parse_timestamp(str(seconds)) == expected
    assert parse_timestamp(seconds * 1000) == expected
    assert parse_timestamp(float(seconds * 1000)) == expected
    assert parse_timestamp(f"{seconds}.5") == expected + 500_000
    assert parse_timestamp(seconds * 1_000_000) == expected


def test_timestamp_magnitude_boundaries() -> None:
    assert parse_timestamp(10**11 - 1) == (10**11 - 1) * 1_000_000
    assert parse_timestamp(10**11) == 10**11 * 1000
    assert parse_timestamp(10**14) == 10**14


def test_spreadsheet_dates_are_utc() -> None:
    naive = datetime(2026, 1, 2, 3, 4, 5, 678)
    assert parse_timestamp(naive) == micros(naive.replace(tzinfo=UTC))
    assert parse_timestamp(naive.date()) == micros(datetime(2026, 1, 2, tzinfo=UTC))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("2026-01-01T00:00:00", parsing.MSG_TIMESTAMP_ZONE),
        ("2026-01-01", parsing.MSG_TIMESTAMP_ZONE),
        ("yesterday", parsing.MSG_TIMESTAMP),
        ("", parsing.MSG_TIMESTAMP),
        (True, parsing.MSG_TIMESTAMP),
        (None, parsing.MSG_TIMESTAMP),
        (float("nan"), parsing.MSG_TIMESTAMP),
        (10**30, parsing.MSG_TIMESTAMP_RANGE),
        ("1e300", parsing.MSG_TIMESTAMP_RANGE),
    ],
)
def test_bad_timestamps_say_why(raw: object, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        parse_timestamp(raw)


@given(finite)
def test_values_read_back_exactly(value: float) -> None:
    assert parse_value(value) == value
    assert parse_value(repr(value)) == value
    assert parse_value(f"  {value!r} ") == value


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("nan", parsing.MSG_VALUE_FINITE),
        ("-Infinity", parsing.MSG_VALUE_FINITE),
        (float("inf"), parsing.MSG_VALUE_FINITE),
        ("1e999", parsing.MSG_VALUE_FINITE),
        (10**400, parsing.MSG_VALUE_FINITE),
        ("1.79e308", parsing.MSG_VALUE_RANGE),
        (-1.0000000001e150, parsing.MSG_VALUE_RANGE),
        (10**151, parsing.MSG_VALUE_RANGE),
        ("1_000", parsing.MSG_VALUE),
        ("1,5", parsing.MSG_VALUE),
        ("12°", parsing.MSG_VALUE),
        (True, parsing.MSG_VALUE),
        ([1], parsing.MSG_VALUE),
    ],
)
def test_bad_values_say_why(raw: object, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_value(raw)
    assert str(caught.value) == message


# Whole files


def expected_readings(rows: list[tuple[datetime, float, str]], first_row: int) -> list[Reading]:
    return [
        Reading(first_row + i, micros(moment), value, metric, DEVICE)
        for i, (moment, value, metric) in enumerate(rows)
    ]


@settings(max_examples=60)
@given(
    rows_strategy,
    st.sampled_from([",", ";", "\t"]),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
    st.sampled_from(["timestamp", " Timestamp ", "TIMESTAMP"]),
)
def test_csv_reads_back_what_was_written(
    rows: list[tuple[datetime, float, str]], delimiter: str, newline: str, bom: bool, ts_name: str
) -> None:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=newline)
    writer.writerow([ts_name, "value", "metric_name", "note"])
    for moment, value, metric in rows:
        writer.writerow([rfc3339(moment), repr(value), metric, "a, b; c"])
    content = ("\ufeff" if bom else "") + out.getvalue()
    items = list(read_csv(io.BytesIO(content.encode()), defaults=Defaults(device_id=DEVICE)))
    assert items == expected_readings(rows, first_row=2)


@settings(max_examples=60)
@given(rows_strategy, st.booleans(), st.integers(min_value=1, max_value=64), st.booleans())
def test_json_reads_back_at_any_block_size(
    rows: list[tuple[datetime, float, str]], wrapped: bool, block: int, pretty: bool
) -> None:
    readings = [
        {"Timestamp": rfc3339(m), "value": v, "metric_name": metric} for m, v, metric in rows
    ]
    document: object = {"source": {"x": [1, 2]}, "readings": readings} if wrapped else readings
    content = json.dumps(document, indent=2 if pretty else None).encode()
    # Small blocks cut numbers, strings and keys at every possible place.
    with mock.patch.object(parsing, "TEXT_BLOCK", block):
        items = list(read_json(io.BytesIO(content), defaults=Defaults(device_id=DEVICE)))
    assert items == expected_readings(rows, first_row=1)


@settings(max_examples=15, deadline=None)
@given(
    st.lists(
        # A workbook keeps 15 significant digits; a sensor's resolution is well within that.
        st.tuples(moments, st.integers(-(10**9), 10**9).map(lambda n: n / 100), metrics),
        max_size=30,
    )
)
def test_xlsx_reads_back_what_was_written(rows: list[tuple[datetime, float, str]]) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["value", "timestamp", "metric_name"])
    for moment, value, metric in rows:
        sheet.append([value, rfc3339(moment), metric])
    out = io.BytesIO()
    book.save(out)
    items = list(read_xlsx(io.BytesIO(out.getvalue()), defaults=Defaults(device_id=DEVICE)))
    assert items == expected_readings(rows, first_row=2)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.sampled_from(["csv", "json", "xlsx"]))
def test_any_bytes_give_rows_problems_or_a_file_problem_never_a_crash(
    content: bytes, kind: str
) -> None:
    try:
        for item in parsing.read_file(kind, io.BytesIO(content), defaults=DEFAULTS):
            assert isinstance(item, Reading | RowProblem)
    except FileProblem as problem:
        assert problem.message


@given(st.data())
def test_truncated_json_is_a_file_problem(data: st.DataObject) -> None:
    content = json.dumps([{"timestamp": 1_700_000_000 + i, "value": i} for i in range(5)])
    cut = data.draw(st.integers(min_value=0, max_value=len(content) - 1))
    with pytest.raises(FileProblem):
        list(read_json(io.BytesIO(content[:cut].encode()), defaults=DEFAULTS))


def test_bad_rows_are_reported_with_row_and_column() -> None:
    content = (
        "timestamp,value,device_id\n"
        "2026-01-01T00:00:00Z,1,\n"
        "2026-01-01T00:00:01Z,,\n"
        "soon,2,\n"
        "\n"
        "2026-01-01T00:00:02Z,3,not-a-device\n"
        "2026-01-01T00:00:03Z\n"
    )
    items = list(read_csv(io.BytesIO(content.encode()), defaults=DEFAULTS))
    assert [type(i).__name__ for i in items] == ["Reading"] + ["RowProblem"] * 4
    problems = [(i.row, i.column) for i in items if isinstance(i, RowProblem)]
    assert problems == [(3, "value"), (4, "timestamp"), (6, "device_id"), (7, "value")]


@pytest.mark.parametrize(
    ("content", "expected", "defaults", "column"),
    [
        (b"timestamp,value\n1,2\n", ["value", "unit"], DEFAULTS, "unit"),
        (b"time,value\n1,2\n", [], DEFAULTS, "timestamp"),
        (b"timestamp,Value,VALUE\n1,2,3\n", [], DEFAULTS, "value"),
        (b"timestamp,value\n1,2\n", [], Defaults(device_id=DEVICE), "metric_name"),
        (b"timestamp,value\n1,2\n", [], Defaults(metric_name="t"), "device_id"),
        (b"", [], DEFAULTS, ""),
    ],
)
def test_header_problems_fail_the_file(
    content: bytes, expected: list[str], defaults: Defaults, column: str
) -> None:
    with pytest.raises(FileProblem) as caught:
        list(read_csv(io.BytesIO(content), expected_columns=expected, defaults=defaults))
    assert caught.value.column == column and caught.value.row == 1


@given(
    st.text(alphabet=string.ascii_letters + ",\n", max_size=200),
    st.data(),
)
def test_a_byte_that_is_not_utf8_is_found_where_it_is(text: str, data: st.DataObject) -> None:
    encoded = text.encode()
    at = data.draw(st.integers(min_value=0, max_value=len(encoded)))
    stream = io.BytesIO(encoded[:at] + b"\xff" + encoded[at:])
    with pytest.raises(FileProblem, match=f"offset {at}\\)"):
        parsing.check_utf8(stream, block=7)


def test_a_json_object_without_readings_fails() -> None:
    with pytest.raises(FileProblem, match='"readings"'):
        list(read_json(io.BytesIO(b'{"rows": []}'), defaults=DEFAULTS))
    problems = list(read_json(io.BytesIO(b'[1, {"timestamp": 1}]'), defaults=DEFAULTS))
    assert problems == [
        RowProblem(1, "", "each reading must be a JSON object"),
        RowProblem(2, "value", "value is missing"),
    ]


def test_an_xlsx_that_is_not_one_fails() -> None:
    for content in (b"timestamp,value\n1,2\n", b"PK\x03\x04broken", b""):
        with pytest.raises(FileProblem, match="not an XLSX"):
            list(read_xlsx(io.BytesIO(content), defaults=DEFAULTS))


def test_the_stream_is_left_open_for_its_owner() -> None:
    stream = io.BytesIO(b"timestamp,value\n1700000000,1\n")
    assert len(list(read_csv(stream, defaults=DEFAULTS))) == 1
    assert not stream.closed


# Object storage


@given(st.text(max_size=300))
def test_safe_filenames_stay_inside_the_store(name: str) -> None:
    safe = safe_filename(name)
    assert safe and len(safe) <= 100
    assert "/" not in safe and "\\" not in safe and not safe.startswith(".")
    root = Path("/srv/objects")
    store = LocalObjectStore(root)
    assert store.path_of(f"uploads/abc/{safe}").parent == root / "uploads" / "abc"


def test_safe_filenames_keep_what_they_can() -> None:
    assert safe_filename("../../etc/passwd.xlsx") == "passwd.xlsx"
    assert safe_filename("C:\\Users\\ann\\Données 2026.csv") == "Donnees_2026.csv"
    assert safe_filename("..") == "upload"
    assert safe_filename("x" * 300 + ".json").endswith(".json")


@pytest.mark.parametrize(
    "key", ["", "..", "a/../b", "/etc/passwd", "a//b", "a/./b", "a\\b", "c:/x", "a/\x00"]
)
def test_keys_that_could_escape_are_refused(key: str) -> None:
    with pytest.raises(InvalidKey):
        check_key(key)
    with pytest.raises(InvalidKey):
        LocalObjectStore(Path("/srv/objects")).path_of(key)


async def test_local_store_round_trip(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")

    async def chunks() -> AsyncIterator[bytes]:
        for piece in (b"abc", b"", b"def"):
            yield piece

    assert await store.put("batches/b1/f1/data.csv", chunks()) == 6
    assert await store.exists("batches/b1/f1/data.csv")
    with store.open("batches/b1/f1/data.csv") as handle:
        assert handle.read() == b"abcdef"
    await store.delete("batches/b1/f1/data.csv")
    assert not await store.exists("batches/b1/f1/data.csv")
    await store.delete("batches/b1/f1/data.csv")  # deleting twice is fine


async def test_a_failed_put_leaves_nothing_behind(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)

    async def broken() -> AsyncIterator[bytes]:
        yield b"partial"
        raise ConnectionError("client left")

    with pytest.raises(ConnectionError):
        await store.put("uploads/f/data.csv", broken())
    assert not await store.exists("uploads/f/data.csv")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
