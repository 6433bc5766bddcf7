"""Proto messages as proto-JSON dicts, as ``json_format.MessageToDict`` makes them, faster.

Every answer of the gateway goes through ``MessageToDict(message,
preserving_proto_field_name=True, always_print_fields_with_no_presence=True)``,
whose printer decides each field's conversion from its descriptor on every
call: about 60 µs of a device read's CPU (BENCHMARKS §20). :func:`message_to_dict`
makes the same decisions once per message type and keeps them, then follows
the library's own algorithm: the set fields in ``ListFields`` order, then the
unset fields without presence (their defaults, ``[]`` or ``{}``) in declaration
order, so that even the keys' order is the library's. Well-known types
(Timestamp, Duration, FieldMask by their ``ToJsonString``; Any, Struct, Value,
the wrappers) and anything unusual (an extension) are left to ``MessageToDict``
itself. tests/unit/test_proto_json.py checks the two agree on every message of
the API, generated field by field.
"""

from __future__ import annotations

import base64
import functools
import math
from collections.abc import Callable
from typing import Any

from google.protobuf import descriptor_pool, json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.internal import type_checkers
from google.protobuf.message import Message

Converter = Callable[[Any], Any]

_FD = FieldDescriptor
_INT64 = frozenset({_FD.CPPTYPE_INT64, _FD.CPPTYPE_UINT64})
_BY_JSON_STRING = frozenset(
    {"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"}
)


def _library(message: Message) -> Any:
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def _enum_options_exist() -> bool:
    """True when the pool knows ``pb.enumvalue.json`` (enum values with JSON names of their
    own, which the library looks up per value): then every message goes to the library."""
    try:
        descriptor_pool.Default().FindExtensionByName("pb.enumvalue.json")
    except KeyError:
        return False
    return True


def _floating(single: bool) -> Converter:
    def convert(value: float) -> Any:
        if math.isinf(value):
            return "-Infinity" if value < 0.0 else "Infinity"
        if math.isnan(value):
            return "NaN"
        return type_checkers.ToShortestFloat(value) if single else value

    return convert


def _enum(field: FieldDescriptor) -> Converter:
    enum = field.enum_type
    if enum.full_name == "google.protobuf.NullValue":
        return lambda value: None
    names = {value.number: value.name for value in enum.values}
    closed = enum.is_closed

    def convert(value: int) -> Any:
        name = names.get(value)
        if name is not None:
            return name
        if closed:
            raise json_format.SerializeToJsonError(
                "Enum field contains an integer value which can not mapped to an enum value."
            )
        return value

    return convert


def _bytes(value: bytes) -> str:
    return base64.b64encode(value).decode("utf-8")


def _same(value: Any) -> Any:
    return value


def _value(field: FieldDescriptor) -> Converter:
    """The conversion of one value of ``field`` (an element, for a repeated field)."""
    kind = field.cpp_type
    if kind == _FD.CPPTYPE_MESSAGE:
        return _message(field.message_type)
    if kind == _FD.CPPTYPE_ENUM:
        return _enum(field)
    if kind == _FD.CPPTYPE_STRING:
        return _bytes if field.type == _FD.TYPE_BYTES else str
    if kind == _FD.CPPTYPE_BOOL:
        return bool
    if kind in _INT64:
        return str
    if kind in (_FD.CPPTYPE_FLOAT, _FD.CPPTYPE_DOUBLE):
        return _floating(kind == _FD.CPPTYPE_FLOAT)
    return _same


def _default(field: FieldDescriptor) -> Any:
    """How an unset ``field`` without presence prints: its default, converted."""
    return _value(field)(field.default_value)


def _is_map(field: FieldDescriptor) -> bool:
    return (
        field.message_type is not None
        and field.message_type.has_options
        and field.message_type.GetOptions().map_entry
    )


def _map_key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def _field(field: FieldDescriptor) -> Converter:
    """The conversion of a set ``field``'s whole value."""
    if _is_map(field):
        value_field = field.message_type.fields_by_name["value"]
        values: list[Converter] = []  # filled on first use: the value type may be the parent

        def convert_map(mapping: Any) -> dict[str, Any]:
            if not values:
                values.append(_value(value_field))
            of = values[0]
            return {_map_key(key): of(mapping[key]) for key in mapping}

        return convert_map
    element: list[Converter] = []  # likewise: a message may hold itself

    def element_of() -> Converter:
        if not element:
            element.append(_value(field))
        return element[0]

    if field.is_repeated:
        return lambda items: [element_of()(item) for item in items]
    return lambda value: element_of()(value)


_MESSAGES: dict[str, Converter] = {}


def _message(descriptor: Descriptor) -> Converter:
    """The conversion of a message of type ``descriptor`` (made once, then kept)."""
    known = _MESSAGES.get(descriptor.full_name)
    if known is not None:
        return known
    full_name = descriptor.full_name
    if full_name in _BY_JSON_STRING:
        converter: Converter = lambda message: message.ToJsonString()  # noqa: E731
    elif full_name.startswith("google.protobuf.") or _enum_options_exist():
        # Any, Struct, Value, ListValue, Empty and the wrappers have JSON forms of their own.
        converter = _library
    else:
        converter = _regular(descriptor)
    _MESSAGES[full_name] = converter
    return converter


def _regular(descriptor: Descriptor) -> Converter:
    converters: dict[int, tuple[str, Converter]] = {}
    # The fields printed when unset: every field without presence, with its default.
    defaults: list[tuple[str, Callable[[], Any]]] = []
    for field in descriptor.fields:
        converters[field.number] = (field.name, _field(field))
        if field.has_presence:
            continue
        if _is_map(field):
            defaults.append((field.name, dict))
        elif field.is_repeated:
            defaults.append((field.name, list))
        else:
            defaults.append((field.name, functools.partial(_default, field)))
    resolved: list[tuple[str, Any, bool]] = []  # name, default or factory, whether a factory

    def convert(message: Message) -> Any:
        js: dict[str, Any] = {}
        for field, value in message.ListFields():
            known = converters.get(field.number)
            if known is None or field.is_extension:
                return _library(message)
            name, of = known
            try:
                js[name] = of(value)
            except ValueError as exc:
                raise json_format.SerializeToJsonError(
                    f"Failed to serialize {field.name} field: {exc}."
                ) from exc
        if not resolved:
            # Scalar defaults are converted once; lists and dicts are made afresh each time.
            for name, make in defaults:
                if make is list or make is dict:
                    resolved.append((name, make, True))
                else:
                    resolved.append((name, make(), False))
        for name, default, factory in resolved:
            if name not in js:
                js[name] = default() if factory else default
        return js

    return convert


def message_to_dict(message: Message) -> Any:
    """``MessageToDict(message, preserving_proto_field_name=True,
    always_print_fields_with_no_presence=True)``, with the same keys in the same order."""
    return _message(message.DESCRIPTOR)(message)
