"""Parsing a bulk device import: CSV with a header row, or a JSON array.

Whole-request problems (unknown format, unreadable content, too many rows)
are validation errors; a bad row only marks that row.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from iotkit.errors import FieldViolation
from iotkit.validation import Violations
from services.devices.devices.values import NewDevice, ParsedRow

MAX_ROWS = 1000
FORMATS = ("csv", "json")
CSV_COLUMNS = ("name", "type", "latitude", "longitude")


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


def parse_content(*, format: str, content: str) -> list[ParsedRow]:
    """Every row of ``content``; raises ValidationFailed when the content as a whole is unusable."""
    violations = Violations()
    kind = format.strip().lower()
    if kind not in FORMATS:
        violations.add("format", "Format must be one of: csv, json")
    violations.raise_if_any()
    records: list[Any]
    if kind == "json":
        try:
            loaded = json.loads(content)
        except json.JSONDecodeError as exc:
            violations.add(
                "content", f"Content is not valid JSON (line {exc.lineno}, column {exc.colno})"
            )
            violations.raise_if_any()
        if not isinstance(loaded, list):
            violations.add("content", "JSON content must be an array of devices")
            violations.raise_if_any()
        records = loaded
    else:
        reader = csv.DictReader(io.StringIO(content))
        header = [column.strip().lower() for column in reader.fieldnames or []]
        missing = [c for c in ("name", "type") if c not in header]
        if missing:
            violations.add("content", f"CSV header must name the columns {', '.join(CSV_COLUMNS)}")
            violations.raise_if_any()
        reader.fieldnames = header
        try:
            records = [
                {
                    key: (value.strip() if isinstance(value, str) else value)
                    for key, value in row.items()
                }
                for row in reader
            ]
        except csv.Error as exc:
            violations.add("content", f"CSV cannot be read: {exc}")
            violations.raise_if_any()
    if len(records) > MAX_ROWS:
        violations.add("content", f"At most {MAX_ROWS} rows per import")
    if not records:
        violations.add("content", "Content holds no rows")
    violations.raise_if_any()
    return [
        parse_row(r)
        if isinstance(r, dict)
        else ParsedRow(None, [FieldViolation("row", "Row must be an object")])
        for r in records
    ]
