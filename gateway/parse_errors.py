"""Turn ``json_format.ParseError`` messages into a field name and a safe message.

protobuf words its parse errors for developers and often quotes the value it
rejected (a password, or megabytes of it). Only the field path is taken from
the message: the nested ``Failed to parse <field> field:`` prefixes and the
``has no field named "<x>"`` of unknown fields. The failing element of a
repeated field is found by parsing the elements one by one. The wording shown
to the user is built from the field descriptor.
"""

from __future__ import annotations

import re
from typing import Any

from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from gateway.fields import expectation, find_field, is_map, is_plain_message
from iotkit.errors import FieldViolation

_PREFIX = re.compile(r"Failed to parse (\S+) field: ")
_UNKNOWN = re.compile(r'has no field named "([^"]{1,200})"')
_MAX_NAME = 100


def _failing_element(field: FieldDescriptor, items: object) -> int | None:
    """Index of the first element of a repeated message field that does not parse."""
    if not isinstance(items, list):
        return None
    element_class = message_factory.GetMessageClass(field.message_type)
    for index, item in enumerate(items):
        try:
            json_format.ParseDict(item, element_class(), ignore_unknown_fields=False)
        except Exception:
            return index
    return None


def _index_of(name: str, text: str, field: FieldDescriptor, items: object) -> int | None:
    # Re-parsing is exact; the message's own "name[i]" is the fallback, since the
    # message also quotes user values that could look like one.
    failing = _failing_element(field, items)
    if failing is not None:
        return failing
    found = re.search(re.escape(name) + r"\[(\d+)\]", text)
    return int(found[1]) if found else None


def violation_from_parse_error(
    text: str, message: Descriptor, payload: object = None
) -> FieldViolation:
    """The field violation described by ParseError ``text``.

    ``message`` is the request type and ``payload`` the dict given to ParseDict
    (used to find which element of a repeated field failed).
    """
    names: list[str] = []
    position = 0
    while (found := _PREFIX.match(text, position)) is not None:
        names.append(found[1])
        position = found.end()
    rest = text[position:]
    unknown = _UNKNOWN.search(rest)
    if unknown is not None:
        names.append(unknown[1])

    parts: list[str] = []
    current: Descriptor | None = message
    leaf: FieldDescriptor | None = None
    value: Any = payload
    for depth, name in enumerate(names):
        field = find_field(current, name) if current is not None else None
        if field is None:
            parts.append(name[:_MAX_NAME])
            leaf = None
            break
        leaf = field
        value = value.get(name) if isinstance(value, dict) else None
        part = field.name
        if depth < len(names) - 1 and field.is_repeated and not is_map(field):
            index = _index_of(name, text, field, value)
            if index is not None:
                part += f"[{index}]"
                value = value[index] if isinstance(value, list) else None
            else:
                value = None
        parts.append(part)
        current = field.message_type if is_plain_message(field) else None

    path = ".".join(parts)
    if unknown is not None and leaf is None:
        return FieldViolation(path, "Unknown field")
    if leaf is None:
        return FieldViolation(path, "Invalid value")
    return FieldViolation(path, "Must be " + expectation(leaf))
