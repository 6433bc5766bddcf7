"""Parsing a bulk device import: limits hold while parsing, not after it (issue 12)."""

from __future__ import annotations

import json
import tracemalloc

import pytest

from iotkit.errors import ValidationFailed
from services.devices.devices.importer import MAX_ROWS, parse_content

MILLION = 1_000_000
# Parsing every row of a million-row content costs hundreds of MB; 1,000 rows cost well under 1.
PEAK_BYTES = 4 * 1024 * 1024


def _refusal(format: str, content: str) -> list[tuple[str, str]]:
    with pytest.raises(ValidationFailed) as caught:
        parse_content(format=format, content=content)
    return [(v.field, v.message) for v in caught.value.violations]


@pytest.mark.parametrize(
    ("format", "content"),
    [
        ("csv", "name,type\n" + "Pump,pressure\n" * MILLION),
        ("json", "[" + ",".join(['{"name": "Pump", "type": "pressure"}'] * MILLION) + "]"),
    ],
    ids=["csv", "json"],
)
def test_a_million_rows_are_refused_without_parsing_them_all(format: str, content: str) -> None:
    tracemalloc.start()
    try:
        refusal = _refusal(format, content)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refusal == [("content", f"At most {MAX_ROWS} rows per import")]
    assert peak < PEAK_BYTES, f"parsing peaked at {peak:,} bytes"


@pytest.mark.parametrize("format", ["csv", "json"])
def test_the_limit_itself_is_accepted_and_one_more_refused(format: str) -> None:
    def content(rows: int) -> str:
        if format == "csv":
            return "name,type\n" + "Pump,pressure\n" * rows
        return json.dumps([{"name": "Pump", "type": "pressure"}] * rows)

    assert len(parse_content(format=format, content=content(MAX_ROWS))) == MAX_ROWS
    assert _refusal(format, content(MAX_ROWS + 1)) == [
        ("content", f"At most {MAX_ROWS} rows per import")
    ]


@pytest.mark.parametrize(
    "content",
    ["[" * 100_000 + "]" * 100_000, '[{"name": ' + '{"a": ' * 100_000, "{" * 100_000],
    ids=["array", "in-a-row", "object"],
)
def test_deeply_nested_json_is_refused_naming_content(content: str) -> None:
    refusal = _refusal("json", content)
    assert [field for field, _ in refusal] == ["content"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "Content is not valid JSON (line 1, column 1)"),
        ("[", "Content is not valid JSON (line 1, column 2)"),
        ('[{"name": "a"}\n {"name": "b"}]', "Content is not valid JSON (line 2, column 2)"),
        ("[1,]", "Content is not valid JSON (line 1, column 4)"),
        ("[] []", "Content is not valid JSON (line 1, column 4)"),
        ('{"name": "x"}', "JSON content must be an array of devices"),
        (" [ ] ", "Content holds no rows"),
    ],
)
def test_unusable_json_says_where(content: str, message: str) -> None:
    assert _refusal("json", content) == [("content", message)]


def test_rows_are_read_as_before() -> None:
    rows = parse_content(
        format="csv",
        content='name,type,latitude,longitude\r\n"Two\nlines",motion,,\r\n Pump , pressure,1,2',
    )
    assert [(r.device.name, r.device.type) for r in rows if r.device] == [
        ("Two\nlines", "motion"),
        ("Pump", "pressure"),
    ]
    from_json = parse_content(
        format="json",
        content=' [ {"name": "Fan", "type": "motion", "location": {"latitude": 1, "longitude": 2}},'
        " 3 ] ",
    )
    assert from_json[0].device is not None and from_json[0].device.location == (1.0, 2.0)
    assert [e.field for e in from_json[1].errors] == ["row"]
