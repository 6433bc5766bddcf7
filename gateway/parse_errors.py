"""Turn ``json_format.ParseError`` messages into a field name and a safe message.

protobuf words its parse errors for developers and often quotes the value it
rejected (a password, or megabytes of it). Only the field path is taken from
the message: the nested ``Failed to parse <field> field:`` prefixes and the
``has no field named "<x>"`` of unknown fields. The failing element of a
repeated field is found by parsing the elements one by one. The wording shown
to the user is built from the field descriptor.

A service names a bad field by its proto path, which inside free-form JSON
(``Struct``, ``ListValue``, ``Value``) runs through protobuf's own fields:
:func:`readable_violation` names the field holding the JSON instead, and says
where inside it in JSON's terms.
"""

from __future__ import annotations

import re
from typing import Any

from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from gateway.fields import FREE_FORM, expectation, find_field, is_map, is_plain_message
from iotkit.errors import FieldViolation

_PREFIX = re.compile(r"Failed to parse (\S+) field: ")
_UNKNOWN = re.compile(r'has no field named "([^"]{1,200})"')
# Given twice: two members of a oneof, or a proto3 optional field (its oneof is "_<field>")
# under both its names.
_TWICE = re.compile(
    r'Message type "[A-Za-z0-9_.]+" should not have multiple "_?([A-Za-z0-9_]{1,200})" '
    r"(?:oneof )?fields"
)
# Causes told by their own words, anchored: a quoted value could hold the same words.
_TOO_DEEP = re.compile(r"Message too deep\. ")
_SURROGATE = re.compile(
    r"Unpaired surrogate at |'utf-8' codec can't encode character '\\ud[89a-f][0-9a-f]{2}' "
    r"in position \d+: surrogates not allowed"
)
# Errors raised without the prefixes (those of proto3 optional fields) end with the path.
_TAIL = re.compile(r' at "?[A-Za-z0-9_]+((?:\.[A-Za-z0-9_]+(?:\[\d+\])?){1,32})"?\.?\Z')
_INDEX = re.compile(r"\[\d+\]\Z")
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
    twice = _TWICE.match(rest)
    if not names and (tail := _TAIL.search(rest)) is not None:
        names = [_INDEX.sub("", part) for part in tail[1].split(".")[1:]]
    if unknown is not None:
        names.append(unknown[1])
    elif twice is not None:
        names.append(twice[1])

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
    if twice is not None:
        return FieldViolation(path, "Given more than once")
    if _TOO_DEEP.match(rest):
        # json_format's own limit (100 levels of messages; a Struct counts two a level).
        return FieldViolation(path, "Is nested too deeply")
    if _SURROGATE.match(rest):
        return FieldViolation(path, "Holds text that is not valid Unicode (an unpaired surrogate)")
    if leaf is None:
        return FieldViolation(path, "Invalid value")
    return FieldViolation(path, "Must be " + expectation(leaf))


# One step of a service's field path: a field name, and an index or map key in brackets.
_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(\[[^\]]*\])?")
# Inside free-form JSON: a Struct's member ("fields[key]") or a list's element ("values[3]").
_INNER = re.compile(r"fields\[([^\]]*)\]|values\[(\d+)\]")


def readable_violation(violation: FieldViolation, message: Descriptor) -> FieldViolation:
    """``violation`` from a service, named by the field of request type ``message`` that holds
    free-form JSON when its path goes inside one (``metadata.fields[a].string_value``: the
    ``metadata``), the place inside it told in the message; other violations as they are."""
    path = violation.field
    position = 0
    current: Descriptor | None = message
    while current is not None:
        step = _STEP.match(path, position)
        field = current.fields_by_name.get(step[1]) if step is not None else None
        if step is None or field is None:
            return violation
        position = step.end()
        if field.message_type is not None and field.message_type.full_name in FREE_FORM:
            if position == len(path):
                return violation
            steps = _INNER.findall(path, position)
            inner = "".join(f"[{index}]" if index else f".{key}" for key, index in steps)
            text = violation.message[:1].upper() + violation.message[1:]
            shown = (path[:position] + inner)[:_MAX_NAME]
            return FieldViolation(path[:position], f"{text} (at {shown})" if inner else text)
        if position == len(path) or path[position] != ".":
            return violation
        position += 1
        current = field.message_type
        if current is not None and is_map(field):
            current = current.fields_by_name["value"].message_type
    return violation
