"""Field descriptors: lookup by name, text conversion, and what a field expects.

Path and query parameters arrive as text; they are converted here to the JSON
value the field's proto JSON form takes, so that one ``ParseDict`` call builds
the request from body, path and query alike. The same type knowledge words the
400 messages, which name the expected type and never echo the value sent.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.descriptor import Descriptor, FieldDescriptor

_T = FieldDescriptor

INT_RANGES: dict[int, tuple[int, int]] = {
    _T.TYPE_INT32: (-(2**31), 2**31 - 1),
    _T.TYPE_SINT32: (-(2**31), 2**31 - 1),
    _T.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    _T.TYPE_UINT32: (0, 2**32 - 1),
    _T.TYPE_FIXED32: (0, 2**32 - 1),
    _T.TYPE_INT64: (-(2**63), 2**63 - 1),
    _T.TYPE_SINT64: (-(2**63), 2**63 - 1),
    _T.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    _T.TYPE_UINT64: (0, 2**64 - 1),
    _T.TYPE_FIXED64: (0, 2**64 - 1),
}
"""Inclusive bounds of every integer field type."""

FLOAT_TYPES = frozenset({_T.TYPE_DOUBLE, _T.TYPE_FLOAT})

# Well-known types whose proto JSON form is a string, with what that string must look like.
STRING_WKT: dict[str, str] = {
    "google.protobuf.Timestamp": "an RFC 3339 timestamp such as 2026-01-01T00:00:00Z",
    "google.protobuf.Duration": "a duration in seconds such as 1.5s",
    "google.protobuf.FieldMask": "a comma-separated list of field names",
}

FREE_FORM = frozenset(
    {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"}
)
"""The well-known types that hold any JSON (``Struct``: an object, ``ListValue``: an array)."""

# Wrapper types carry one scalar named ``value``; in JSON they are that scalar.
WRAPPERS = frozenset(
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
)

_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})
_MAX_ENUM_NAMES = 20


def find_field(message: Descriptor, name: str) -> FieldDescriptor | None:
    """The field of ``message`` called ``name`` (proto name, or its JSON camelCase name)."""
    field = message.fields_by_name.get(name)
    if field is not None:
        return field
    for candidate in message.fields:
        if candidate.json_name == name:
            return candidate
    return None


def resolve_path(message: Descriptor, path: Sequence[str]) -> list[FieldDescriptor]:
    """The fields along a dotted path; raises KeyError naming the first unknown part."""
    fields: list[FieldDescriptor] = []
    current: Descriptor | None = message
    for depth, name in enumerate(path):
        field = find_field(current, name) if current is not None else None
        if field is None:
            raise KeyError(".".join(path[: depth + 1]))
        fields.append(field)
        current = field.message_type if is_plain_message(field) else None
    return fields


def is_map(field: FieldDescriptor) -> bool:
    """True for ``map<K, V>`` fields."""
    return bool(field.message_type is not None and field.message_type.GetOptions().map_entry)


def is_plain_message(field: FieldDescriptor) -> bool:
    """True for message fields that JSON writes as an object of their own fields."""
    return (
        field.message_type is not None
        and not is_map(field)
        and field.message_type.full_name not in STRING_WKT
        and field.message_type.full_name not in WRAPPERS
        and not field.message_type.full_name.startswith("google.protobuf.")
    )


def accepts_text(field: FieldDescriptor) -> bool:
    """True when a path or query parameter can set the field: scalars, enums, string-like types."""
    if field.message_type is None:
        return True
    return field.message_type.full_name in STRING_WKT or field.message_type.full_name in WRAPPERS


def _scalar_type(field: FieldDescriptor) -> FieldDescriptor:
    """The field that holds the actual scalar: the ``value`` of a wrapper, else the field."""
    if field.message_type is not None and field.message_type.full_name in WRAPPERS:
        return field.message_type.fields_by_name["value"]
    return field


def expectation(field: FieldDescriptor, *, element: bool = False) -> str:
    """What the field takes, as the end of "must be ...": "an integer from 0 to 4294967295"."""
    if field.is_repeated and not element and not is_map(field):
        return "an array of " + _plural(field)
    if is_map(field):
        return "a JSON object"
    if field.message_type is not None:
        name = field.message_type.full_name
        if name in STRING_WKT:
            return STRING_WKT[name]
        if name == "google.protobuf.ListValue":
            return "an array"
        if name not in WRAPPERS:
            return "a JSON object"
    scalar = _scalar_type(field)
    if scalar.type in INT_RANGES:
        low, high = INT_RANGES[scalar.type]
        return f"an integer from {low} to {high}"
    if scalar.type in FLOAT_TYPES:
        return "a number"
    if scalar.type == _T.TYPE_BOOL:
        return "true or false"
    if scalar.type == _T.TYPE_BYTES:
        return "base64-encoded bytes"
    if scalar.type == _T.TYPE_ENUM:
        names = [value.name for value in scalar.enum_type.values]
        shown = ", ".join(names[:_MAX_ENUM_NAMES]) + (
            ", ..." if len(names) > _MAX_ENUM_NAMES else ""
        )
        return f"one of {shown}"
    return "a string"


def _plural(field: FieldDescriptor) -> str:
    single = expectation(field, element=True)
    plurals = {
        "a JSON object": "JSON objects",
        "a number": "numbers",
        "a string": "strings",
        "true or false": "true or false values",
        "base64-encoded bytes": "base64-encoded byte strings",
    }
    if single in plurals:
        return plurals[single]
    if single.startswith("an integer"):
        return "integers" + single.removeprefix("an integer")
    return "values, each " + single


def from_text(field: FieldDescriptor, text: str) -> object:
    """The proto JSON value for ``text`` given in a path or query parameter.

    Raises ValueError with "must be ..." wording (never containing ``text``).
    """
    problem = ValueError("must be " + expectation(field, element=True))
    if field.message_type is not None and field.message_type.full_name in STRING_WKT:
        # ParseDict validates the string form of these types.
        return text
    scalar = _scalar_type(field)
    kind = scalar.type
    if kind in INT_RANGES:
        try:
            number = int(text.strip(), 10)
        except ValueError:
            raise problem from None
        low, high = INT_RANGES[kind]
        if not low <= number <= high:
            raise problem
        return number
    if kind in FLOAT_TYPES:
        try:
            return float(text)
        except ValueError:
            raise problem from None
    if kind == _T.TYPE_BOOL:
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise problem
    if kind == _T.TYPE_ENUM:
        enum = scalar.enum_type
        if text in enum.values_by_name:
            return text
        by_upper = {name.upper(): name for name in enum.values_by_name}
        if text.upper() in by_upper:
            return by_upper[text.upper()]
        if text.lstrip("-").isdigit() and int(text) in enum.values_by_number:
            return enum.values_by_number[int(text)].name
        raise problem
    return text
