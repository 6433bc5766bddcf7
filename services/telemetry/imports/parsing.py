"""Reading uploaded files into readings: CSV, JSON and XLSX, row by row.

Pure functions over a seekable binary stream: no database, no network. A
file yields, in order, a :class:`Reading` for each good row and a
:class:`RowProblem` for each bad one; a problem with the file as a whole (not
UTF-8, not a workbook, missing columns, broken syntax) raises
:class:`FileProblem`. Files are read incrementally, never whole into memory.

Columns: ``timestamp`` and ``value`` are required; ``metric_name`` and
``device_id`` are optional when the upload gives defaults. Names are matched
without regard to case or surrounding spaces, and other columns are ignored.

Timestamps are RFC 3339 strings with a time zone (``2026-01-01T00:00:00Z``),
spreadsheet date cells (taken as UTC: a workbook has no time zone), or
numbers since the Unix epoch whose unit follows from their magnitude: below
10^11 they are seconds (10^11 s is the year 5138), below 10^14 milliseconds,
otherwise microseconds. Any real reading since 1973 is thereby read in the
unit it was written in.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import re
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import BinaryIO

from services.telemetry.telemetry.ingest import MAX_MAGNITUDE, METRIC_NAME

FORMATS = ("csv", "json", "xlsx")
REQUIRED_COLUMNS = ("timestamp", "value")
OPTIONAL_COLUMNS = ("metric_name", "device_id")

SECONDS_BELOW = 10**11
MILLISECONDS_BELOW = 10**14
# Year 9999 in microseconds: anything larger cannot be a date (nor fit the store's int64).
MAX_ABS_MICROS = 253_402_300_799_999_999
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)

TEXT_BLOCK = 64 * 1024
MAX_JSON_VALUE_CHARS = 1024 * 1024

MSG_TIMESTAMP = (
    "timestamp must be an RFC 3339 time with a time zone (2026-01-01T00:00:00Z) "
    "or a number of seconds or milliseconds since 1970"
)
MSG_TIMESTAMP_ZONE = "timestamp needs a time zone, such as 2026-01-01T00:00:00Z"
MSG_TIMESTAMP_RANGE = "timestamp is out of range"
MSG_VALUE = "value must be a number"
MSG_VALUE_FINITE = "value must be a finite number"
MSG_VALUE_RANGE = f"value must be within ±{MAX_MAGNITUDE:g}"

_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_SPACE = re.compile(r"[ \t\n\r]*")
_NON_FINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Reading:
    """A good row: one reading of one metric of one device."""

    row: int
    timestamp_us: int
    value: float
    metric_name: str
    device_id: str


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A bad row: which row, which column, and what is wrong."""

    row: int
    column: str
    message: str


Item = Reading | RowProblem


class FileProblem(Exception):
    """The file as a whole cannot be read; nothing after it is imported."""

    def __init__(self, message: str, *, column: str = "", row: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.column = column
        self.row = row


@dataclass(frozen=True, slots=True)
class Defaults:
    """What rows without a metric_name or device_id column get."""

    metric_name: str = ""
    device_id: str = ""


def normalise_column(name: object) -> str:
    """A column name as matched: text, trimmed, lower case."""
    return "" if name is None else str(name).strip().lower()


def _micros_of(moment: datetime) -> int:
    return (moment - EPOCH) // ONE_MICROSECOND


def _checked(micros: int) -> int:
    if abs(micros) > MAX_ABS_MICROS:
        raise ValueError(MSG_TIMESTAMP_RANGE)
    return micros


def _epoch_factor(magnitude: float) -> int:
    if magnitude < SECONDS_BELOW:
        return 1_000_000
    if magnitude < MILLISECONDS_BELOW:
        return 1_000
    return 1


def epoch_micros(number: int | float) -> int:
    """Microseconds for a number since the epoch, its unit read from its magnitude."""
    if isinstance(number, float):
        if not math.isfinite(number):
            raise ValueError(MSG_TIMESTAMP)
        return _checked(round(number * _epoch_factor(abs(number))))
    return _checked(number * _epoch_factor(abs(number)))


def parse_timestamp(raw: object) -> int:
    """Microseconds since the epoch for a cell or JSON value; raises ValueError with the reason."""
    if isinstance(raw, bool):
        raise ValueError(MSG_TIMESTAMP)
    if isinstance(raw, datetime):
        # A spreadsheet date has no zone; UTC is the only reading that does not guess a place.
        return _checked(_micros_of(raw if raw.tzinfo else raw.replace(tzinfo=UTC)))
    if isinstance(raw, date):
        return _micros_of(datetime(raw.year, raw.month, raw.day, tzinfo=UTC))
    if isinstance(raw, int | float):
        return epoch_micros(raw)
    if not isinstance(raw, str):
        raise ValueError(MSG_TIMESTAMP)
    text = raw.strip()
    if _INTEGER.fullmatch(text):
        return epoch_micros(int(text))
    if _DECIMAL.fullmatch(text):
        return epoch_micros(float(text))
    try:
        # RFC 3339 allows lower-case "t" and "z"; fromisoformat does not.
        moment = datetime.fromisoformat(text.upper())
    except ValueError:
        raise ValueError(MSG_TIMESTAMP) from None
    if moment.tzinfo is None:
        raise ValueError(MSG_TIMESTAMP_ZONE)
    return _checked(_micros_of(moment))


def parse_value(raw: object) -> float:
    """A reading's value from a cell or JSON value; raises ValueError with the reason."""
    if isinstance(raw, bool):
        raise ValueError(MSG_VALUE)
    if isinstance(raw, int | float):
        try:
            value = float(raw)
        except OverflowError:
            raise ValueError(MSG_VALUE_FINITE) from None
    elif isinstance(raw, str):
        text = raw.strip()
        # Python's float() also takes "nan", "inf" and "1_000"; a file's value must be plain.
        if not _DECIMAL.fullmatch(text):
            raise ValueError(MSG_VALUE_FINITE if _NON_FINITE.fullmatch(text) else MSG_VALUE)
        value = float(text)
    else:
        raise ValueError(MSG_VALUE)
    if not math.isfinite(value):
        raise ValueError(MSG_VALUE_FINITE)
    if abs(value) > MAX_MAGNITUDE:
        raise ValueError(MSG_VALUE_RANGE)
    return value


def _blank(raw: object) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip())


def to_item(row: int, record: Mapping[str, object], defaults: Defaults) -> Item:
    """A reading from one row's cells by column name, or the first problem found in it."""
    stamp, raw_value = record.get("timestamp"), record.get("value")
    if _blank(stamp):
        return RowProblem(row, "timestamp", "timestamp is missing")
    try:
        timestamp_us = parse_timestamp(stamp)
    except ValueError as exc:
        return RowProblem(row, "timestamp", str(exc))
    if _blank(raw_value):
        return RowProblem(row, "value", "value is missing")
    try:
        value = parse_value(raw_value)
    except ValueError as exc:
        return RowProblem(row, "value", str(exc))
    metric = record.get("metric_name")
    metric_name = defaults.metric_name if _blank(metric) else str(metric).strip()
    if not metric_name:
        return RowProblem(row, "metric_name", "metric_name is missing and the upload has none")
    if not METRIC_NAME.match(metric_name):
        return RowProblem(
            row, "metric_name", "metric_name must be 1 to 64 letters, digits, '_', '.' or '-'"
        )
    device = record.get("device_id")
    device_text = defaults.device_id if _blank(device) else str(device).strip()
    if not device_text:
        return RowProblem(row, "device_id", "device_id is missing and the upload has none")
    try:
        device_id = str(uuid.UUID(device_text))
    except ValueError:
        return RowProblem(row, "device_id", "device_id must be a UUID")
    return Reading(row, timestamp_us, value, metric_name, device_id)


def check_header(
    names: Sequence[object], *, expected_columns: Sequence[str], defaults: Defaults
) -> dict[str, int]:
    """Column positions by normalised name; raises FileProblem for a header that cannot work."""
    positions: dict[str, int] = {}
    for index, raw in enumerate(names):
        name = normalise_column(raw)
        if not name:
            continue
        if name in positions:
            raise FileProblem(f"Column {name!r} appears twice in the header", column=name, row=1)
        positions[name] = index
    _require_columns(positions, expected_columns=expected_columns, defaults=defaults)
    return positions


def _check_expected(present: Mapping[str, object], expected_columns: Sequence[str]) -> None:
    wanted = dict.fromkeys(name for name in map(normalise_column, expected_columns) if name)
    missing = [name for name in wanted if name not in present]
    if missing:
        raise FileProblem(
            f"Expected column(s) missing from the header: {', '.join(missing)}",
            column=missing[0],
            row=1,
        )


def _require_columns(
    present: Mapping[str, object], *, expected_columns: Sequence[str], defaults: Defaults
) -> None:
    _check_expected(present, expected_columns)
    for name in REQUIRED_COLUMNS:
        if name not in present:
            raise FileProblem(f"The header has no {name!r} column", column=name, row=1)
    for name, default in (("metric_name", defaults.metric_name), ("device_id", defaults.device_id)):
        if name not in present and not default:
            raise FileProblem(
                f"The header has no {name!r} column and the upload gives no {name}",
                column=name,
                row=1,
            )


def check_utf8(stream: BinaryIO, *, block: int = 1024 * 1024) -> None:
    """Raise FileProblem unless the whole stream is UTF-8; leaves the stream at its start."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    while True:
        chunk = stream.read(block)
        try:
            decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            position = offset + exc.start
            raise FileProblem(
                f"The file is not UTF-8 text (invalid byte at offset {position}); "
                "save it as UTF-8 and upload it again"
            ) from None
        if not chunk:
            break
        offset += len(chunk)
    stream.seek(0)


def _text(stream: BinaryIO) -> io.TextIOWrapper:
    # utf-8-sig drops the byte-order mark spreadsheet programs put before a CSV.
    return io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")


def _delimiter(header_line: str) -> str:
    # Spreadsheets in many locales save ";"-separated "CSV"; the header tells which one it is.
    counts = {mark: header_line.count(mark) for mark in (",", ";", "\t")}
    best = max(counts, key=lambda mark: counts[mark])
    return best if counts[best] else ","


def read_csv(
    stream: BinaryIO, *, expected_columns: Sequence[str] = (), defaults: Defaults = Defaults()
) -> Iterator[Item]:
    """The rows of a CSV file with a header row (row numbers count the header as row 1)."""
    check_utf8(stream)
    text = _text(stream)
    try:
        first = text.readline()
        if not first.strip():
            raise FileProblem("The file is empty; its first row must be the header", row=1)
        delimiter = _delimiter(first)
        header = next(csv.reader([first], delimiter=delimiter), [])
        positions = check_header(header, expected_columns=expected_columns, defaults=defaults)
        reader = csv.reader(text, delimiter=delimiter)
        row = 1
        try:
            for cells in reader:
                row += 1
                if not any(cell.strip() for cell in cells):
                    continue
                record = {
                    name: cells[index] if index < len(cells) else None
                    for name, index in positions.items()
                }
                yield to_item(row, record, defaults)
        except csv.Error as exc:
            bad = row + 1
            raise FileProblem(f"The CSV is malformed at row {bad}: {exc}", row=bad) from None
    finally:
        # The stream belongs to the caller: let go of it without closing it.
        text.detach()


class _JsonStream:
    """Decodes consecutive JSON values from text read a block at a time."""

    def __init__(self, text: io.TextIOBase) -> None:
        self._text = text
        self._buffer = ""
        self._position = 0
        self._lines_before = 0
        self._ended = False
        self._decoder = json.JSONDecoder()

    def _more(self) -> bool:
        if self._ended:
            return False
        block = self._text.read(TEXT_BLOCK)
        if not block:
            self._ended = True
            return False
        self._lines_before += self._buffer.count("\n", 0, self._position)
        self._buffer = self._buffer[self._position :] + block
        self._position = 0
        return True

    def line(self, offset: int | None = None) -> int:
        """The line (from 1) of ``offset`` in the buffer, the current position by default."""
        at = self._position if offset is None else offset
        return self._lines_before + self._buffer.count("\n", 0, at) + 1

    def problem(self, message: str, offset: int | None = None) -> FileProblem:
        """A FileProblem that says where in the file it was found."""
        return FileProblem(f"The JSON is malformed near line {self.line(offset)}: {message}")

    def peek(self) -> str | None:
        """The next character that is not white space, or None at the end."""
        while True:
            self._position = _SPACE.match(self._buffer, self._position).end()  # type: ignore[union-attr]
            if self._position < len(self._buffer):
                return self._buffer[self._position]
            if not self._more():
                return None

    def take(self, char: str, what: str) -> None:
        """Consume ``char``, or raise naming ``what`` was expected."""
        if self.peek() != char:
            raise self.problem(f"expected {what}")
        self._position += 1

    def value(self) -> object:
        """The next JSON value (at most MAX_JSON_VALUE_CHARS long)."""
        if self.peek() is None:
            raise self.problem("the file ends too early")
        while True:
            try:
                found, end = self._decoder.raw_decode(self._buffer, self._position)
            except json.JSONDecodeError as exc:
                if self._ended or len(self._buffer) - self._position > MAX_JSON_VALUE_CHARS:
                    raise self.problem(exc.msg, exc.pos) from None
                self._more()
                continue
            after = _SPACE.match(self._buffer, end).end()  # type: ignore[union-attr]
            # A number cut at the end of the buffer would decode short: wait for what follows.
            if after >= len(self._buffer) and self._more():
                continue
            self._position = end
            return found


def _json_array(stream: _JsonStream) -> Iterator[tuple[int, object]]:
    stream.take("[", "'['")
    if stream.peek() == "]":
        stream.take("]", "']'")
        return
    index = 0
    while True:
        index += 1
        yield index, stream.value()
        mark = stream.peek()
        if mark == ",":
            stream.take(",", "','")
        elif mark == "]":
            stream.take("]", "']'")
            return
        else:
            raise stream.problem("expected ',' or ']' after a reading")


def _json_records(stream: _JsonStream) -> Iterator[tuple[int, object]]:
    start = stream.peek()
    if start == "[":
        yield from _json_array(stream)
    elif start == "{":
        stream.take("{", "'{'")
        found = False
        while stream.peek() != "}":
            key = stream.value()
            if not isinstance(key, str):
                raise stream.problem("expected a key")
            stream.take(":", "':'")
            if normalise_column(key) == "readings" and stream.peek() == "[" and not found:
                found = True
                yield from _json_array(stream)
            else:
                stream.value()
            if stream.peek() == ",":
                stream.take(",", "','")
            elif stream.peek() != "}":
                raise stream.problem("expected ',' or '}'")
        stream.take("}", "'}'")
        if not found:
            raise FileProblem('A JSON object must hold its readings in a "readings" array')
    else:
        raise FileProblem(
            'The JSON must be an array of readings or an object with a "readings" array'
        )
    if stream.peek() is not None:
        raise stream.problem("unexpected content after the readings")


def read_json(
    stream: BinaryIO, *, expected_columns: Sequence[str] = (), defaults: Defaults = Defaults()
) -> Iterator[Item]:
    """The readings of a JSON array of objects, or of an object's ``readings`` array.

    The first reading's keys act as the header for ``expected_columns``; a
    reading's row is its position in the array, from 1.
    """
    check_utf8(stream)
    text = _text(stream)
    try:
        first = True
        for index, record in _json_records(_JsonStream(text)):
            if not isinstance(record, dict):
                yield RowProblem(index, "", "each reading must be a JSON object")
                continue
            cells = {normalise_column(key): value for key, value in record.items()}
            if first:
                first = False
                # Required keys are checked per reading: one bad first reading must not fail all.
                _check_expected(cells, expected_columns)
            yield to_item(index, cells, defaults)
    finally:
        text.detach()


def read_xlsx(
    stream: BinaryIO, *, expected_columns: Sequence[str] = (), defaults: Defaults = Defaults()
) -> Iterator[Item]:
    """The rows of the first sheet of an XLSX workbook, whose first row is the header."""
    from openpyxl import load_workbook

    try:
        with warnings.catch_warnings():
            # openpyxl warns about styles and extensions it ignores; they do not matter here.
            warnings.simplefilter("ignore")
            book = load_workbook(stream, read_only=True, data_only=True)
    except Exception:
        raise FileProblem("The file is not an XLSX workbook (or it is damaged)") from None
    row = 1
    try:
        if not book.worksheets:
            raise FileProblem("The workbook has no sheet")
        rows = book.worksheets[0].iter_rows(values_only=True)
        header = next(rows, None)
        if header is None or not any(not _blank(cell) for cell in header):
            raise FileProblem("The first sheet is empty; its first row must be the header", row=1)
        positions = check_header(header, expected_columns=expected_columns, defaults=defaults)
        for cells in rows:
            row += 1
            if all(_blank(cell) for cell in cells):
                continue
            record = {
                name: cells[index] if index < len(cells) else None
                for name, index in positions.items()
            }
            yield to_item(row, record, defaults)
    except FileProblem:
        raise
    except Exception:
        raise FileProblem(f"The workbook is damaged near row {row}", row=row) from None
    finally:
        book.close()


def read_file(
    kind: str,
    stream: BinaryIO,
    *,
    expected_columns: Sequence[str] = (),
    defaults: Defaults = Defaults(),
) -> Iterator[Item]:
    """The rows of a file of format ``kind`` (csv, json or xlsx)."""
    readers = {"csv": read_csv, "json": read_json, "xlsx": read_xlsx}
    return readers[kind](stream, expected_columns=expected_columns, defaults=defaults)
