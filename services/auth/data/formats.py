"""Rendering a user's data export as JSON, CSV, XML or a ZIP of JSON files.

The input is a plain snapshot (``dict``) built by the data service from
rows that never hold a secret. CSV is one long table (section, item, field,
value) so that every section fits one sheet; cells that a spreadsheet would
run as a formula are quoted. XML keeps free-form keys (metadata, details) in
``key`` attributes, since they need not be valid element names.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree

# Sections whose keys are the user's own (or the log's), not our field names.
FREE_FORM = frozenset({"metadata", "details", "preferences"})
ZIP_SECTIONS = ("user", "profile", "preferences", "sessions", "security_logs")

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True, slots=True)
class RenderedFile:
    """A rendered export."""

    content: bytes
    content_type: str
    extension: str


def render(snapshot: dict[str, Any], fmt: str) -> RenderedFile:
    """``snapshot`` as a file of format ``fmt`` (json, csv, xml or zip)."""
    if fmt == "json":
        return RenderedFile(_json(snapshot), "application/json", "json")
    if fmt == "csv":
        return RenderedFile(_csv(snapshot), "text/csv; charset=utf-8", "csv")
    if fmt == "xml":
        return RenderedFile(_xml(snapshot), "application/xml", "xml")
    if fmt == "zip":
        return RenderedFile(_zip(snapshot), "application/zip", "zip")
    raise ValueError(f"unknown export format {fmt!r}")


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=2, ensure_ascii=False).encode()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv(snapshot: dict[str, Any]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", "item", "field", "value"])
    for section, value in snapshot.items():
        if isinstance(value, list):
            for index, item in enumerate(value, start=1):
                for field, cell in item.items():
                    writer.writerow([section, index, field, _cell(cell)])
        elif isinstance(value, dict):
            for field, cell in value.items():
                writer.writerow([section, "", field, _cell(cell)])
        else:
            writer.writerow([section, "", "", _cell(value)])
    return out.getvalue().encode()


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _XML_INVALID.sub("\ufffd", str(value))


def _free(parent: ElementTree.Element, tag: str, value: Any, key: str | None = None) -> None:
    element = ElementTree.SubElement(parent, tag)
    if key is not None:
        element.set("key", _text(key))
    if isinstance(value, dict):
        for child_key, child in value.items():
            _free(element, "entry", child, child_key)
    elif isinstance(value, list):
        for child in value:
            _free(element, "item", child)
    elif value is not None:
        element.text = _text(value)


def _record(parent: ElementTree.Element, tag: str, record: dict[str, Any]) -> None:
    element = ElementTree.SubElement(parent, tag)
    for field, value in record.items():
        if field in FREE_FORM or isinstance(value, (dict, list)):
            _free(element, field, value)
        else:
            child = ElementTree.SubElement(element, field)
            if value is not None:
                child.text = _text(value)


def _xml(snapshot: dict[str, Any]) -> bytes:
    root = ElementTree.Element("iotsuite_export")
    for section, value in snapshot.items():
        if section in FREE_FORM:
            _free(root, section, value)
        elif isinstance(value, list):
            element = ElementTree.SubElement(root, section)
            item_tag = "event" if section == "security_logs" else section.rstrip("s")
            for item in value:
                _record(element, item_tag, item)
        elif isinstance(value, dict):
            _record(root, section, value)
        else:
            ElementTree.SubElement(root, section).text = _text(value)
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)


def _zip(snapshot: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        manifest = {k: v for k, v in snapshot.items() if k not in ZIP_SECTIONS}
        manifest["files"] = [f"{name}.json" for name in ZIP_SECTIONS if name in snapshot]
        archive.writestr("manifest.json", _json(manifest))
        for name in ZIP_SECTIONS:
            if name in snapshot:
                archive.writestr(f"{name}.json", _json(snapshot[name]))
    return out.getvalue()
