"""Parsing a bulk device import: CSV with a header row, or a JSON array.

Whole-request problems (unknown format, unreadable content, too many rows)
are validation errors; a bad row only marks that row.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from typing import Any

from iotkit.errors import FieldViolation
from iotkit.validation import Violations
from services.devices.devices.values import NewDevice, ParsedRow

MAX_ROWS = 1000
# The largest content an import reads, checked before any of it is parsed.
MAX_CONTENT_CHARS = 1024 * 1024
FORMATS = ("csv", "json")
CSV_COLUMNS = ("name", "type", "latitude", "longitude")
_JSON_SPACE = " \t\n\r"


def _coordinate(raw: Any, name: str, errors: list[FieldViolation]) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        errors.append(FieldViolation(f"location.{name}", f"{name.capitalize()} must be a number"))
        return None
    if isinstance(raw, bool) or not math.isfinite(value):
        errors.append(FieldViolation(f"location.{name}", f"{name.capitalize()} must be a number"))
        return None
    return value


def parse_row(record: dict[str, Any]) -> ParsedRow:
    """One row from a mapping with name, type and optional latitude/longitude (or location)."""
    errors: list[FieldViolation] = []
    name, kind = record.get("name"), record.get("type")
    if not isinstance(name, str):
        errors.append(FieldViolation("name", "Name is required"))
    if not isinstance(kind, str):
        errors.append(FieldViolation("type", "Type is required"))
    location = record.get("location")
    if isinstance(location, dict):
        latitude = _coordinate(location.get("latitude"), "latitude", errors)
        longitude = _coordinate(location.get("longitude"), "longitude", errors)
    else:
        latitude = _coordinate(record.get("latitude"), "latitude", errors)
        longitude = _coordinate(record.get("longitude"), "longitude", errors)
    if (latitude is None) != (longitude is None) and not errors:
        errors.append(FieldViolation("location", "Give both latitude and longitude, or neither"))
    if errors:
        return ParsedRow(None, errors)
    pair = (latitude, longitude) if latitude is not None and longitude is not None else None
    return ParsedRow(NewDevice(str(name), str(kind), pair))


def _json_records(content: str, violations: Violations) -> Iterator[Any]:
    """The elements of a JSON array one at a time, never more than one element decoded at once.

    A deeply nested element is refused like any other unreadable content.
    """
    decoder = json.JSONDecoder()
    end = len(content)

    def skip(at: int) -> int:
        while at < end and content[at] in _JSON_SPACE:
            at += 1
        return at

    def unreadable(message: str, at: int) -> None:
        error = json.JSONDecodeError(message, content, min(at, end))
        violations.add(
            "content", f"Content is not valid JSON (line {error.lineno}, column {error.colno})"
        )
        violations.raise_if_any()

    at = skip(0)
    if at == end:
        unreadable("Expecting value", at)
    if content[at] != "[":
        try:
            decoder.raw_decode(content, at)
        except json.JSONDecodeError as exc:
            unreadable(exc.msg, exc.pos)
        except RecursionError:
            violations.add("content", "JSON content is nested too deeply")
            violations.raise_if_any()
        violations.add("content", "JSON content must be an array of devices")
        violations.raise_if_any()
    at = skip(at + 1)
    if at < end and content[at] == "]":
        at += 1
    else:
        while True:
            try:
                record, at = decoder.raw_decode(content, at)
            except json.JSONDecodeError as exc:
                unreadable(exc.msg, exc.pos)
            except RecursionError:
                violations.add("content", "JSON content is nested too deeply")
                violations.raise_if_any()
            yield record
            at = skip(at)
            if at < end and content[at] == "]":
                at += 1
                break
            if at >= end or content[at] != ",":
                unreadable("Expecting ',' delimiter", at)
            at = skip(at + 1)
    if skip(at) != end:
        unreadable("Extra data", skip(at))


def _lines(text: str) -> Iterator[str]:
    """The lines of ``text`` with their ending, one at a time (a StringIO would copy it all)."""
    start, end = 0, len(text)
    while start < end:
        stop = text.find("\n", start)
        stop = end if stop == -1 else stop + 1
        yield text[start:stop]
        start = stop


def _csv_records(content: str, violations: Violations) -> Iterator[dict[str, Any]]:
    """The rows of a CSV with a header row, one at a time, values trimmed."""
    reader = csv.DictReader(_lines(content))
    try:
        fieldnames = reader.fieldnames
    except csv.Error as exc:
        violations.add("content", f"CSV cannot be read: {exc}")
        violations.raise_if_any()
    header = [column.strip().lower() for column in fieldnames or []]
    missing = [c for c in ("name", "type") if c not in header]
    if missing:
        violations.add("content", f"CSV header must name the columns {', '.join(CSV_COLUMNS)}")
        violations.raise_if_any()
    reader.fieldnames = header
    try:
        for row in reader:
            yield {
                key: (value.strip() if isinstance(value, str) else value)
                for key, value in row.items()
            }
    except csv.Error as exc:
        violations.add("content", f"CSV cannot be read: {exc}")
        violations.raise_if_any()


def parse_content(*, format: str, content: str) -> list[ParsedRow]:
    """Every row of ``content``; raises ValidationFailed when the content as a whole is unusable.

    Rows are read one at a time and reading stops at the first row over ``MAX_ROWS``,
    so a huge content costs no more than ``MAX_ROWS`` rows before it is refused.
    """
    violations = Violations()
    kind = format.strip().lower()
    if kind not in FORMATS:
        violations.add("format", "Format must be one of: csv, json")
    violations.raise_if_any()
    records = (
        _json_records(content, violations) if kind == "json" else _csv_records(content, violations)
    )
    rows: list[ParsedRow] = []
    for record in records:
        if len(rows) == MAX_ROWS:
            violations.add("content", f"At most {MAX_ROWS} rows per import")
            violations.raise_if_any()
        rows.append(
            parse_row(record)
            if isinstance(record, dict)
            else ParsedRow(None, [FieldViolation("row", "Row must be an object")])
        )
    if not rows:
        violations.add("content", "Content holds no rows")
    violations.raise_if_any()
    return rows
