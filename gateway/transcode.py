"""HTTP request -> proto request message, following the route's HTTP binding.

The JSON body (all of it for ``body: "*"``, or one field's value for
``body: "field"``), the path variables and the query parameters are merged
into one proto-JSON dict, which ``json_format.ParseDict`` turns into the
request message. A field bound by the path is set by the path alone: a body
that names it too is refused (a 400 naming the field), whatever its value, as
a query parameter naming it is; the OpenAPI body schemas leave such fields out.
Every failure is a 400 naming the field; nothing here raises anything else.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from gateway.discovery import HttpBinding, RpcMethod
from gateway.errors import GatewayError, bad_request
from gateway.fields import (
    FLOAT_TYPES,
    FREE_FORM,
    WRAPPERS,
    accepts_text,
    expectation,
    find_field,
    from_text,
    is_map,
    is_plain_message,
    resolve_path,
)
from gateway.parse_errors import violation_from_parse_error
from iotkit.errors import FieldViolation

_MAX_SHOWN_NAME = 100


def _invalid(field: str, message: str, summary: str = "Validation failed") -> GatewayError:
    return bad_request(summary, [FieldViolation(field[:_MAX_SHOWN_NAME], message)])


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


class _NotStandard(ValueError):
    """A token that Python's json reads but JSON does not have (``NaN``, ``Infinity``)."""


def _refuse_constant(name: str) -> object:
    raise _NotStandard(name)


def parse_json_body(raw: bytes) -> object:
    """The JSON value of a request body; raises a 400 ``INVALID_JSON`` when it is not JSON.

    Python's json also reads ``NaN``, ``Infinity`` and ``-Infinity``, which JSON has not:
    refused here, since a Struct holding one cannot be written back as JSON (protobuf's
    JSON mapping spells such doubles as the strings ``"NaN"`` and ``"Infinity"``, which
    stay accepted). An integer of more digits than Python converts (4300) is refused too.
    """
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except _NotStandard as exc:
        message = f"Request body is not valid JSON: {exc} is not a JSON value"
        raise bad_request(message, code="INVALID_JSON") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise bad_request("Request body is not valid JSON", code="INVALID_JSON") from None
    except ValueError:
        # int() refuses a number of more than sys.get_int_max_str_digits() digits.
        message = "Request body is not valid JSON: a number has too many digits"
        raise bad_request(message, code="INVALID_JSON") from None


def _set_path(
    payload: dict[str, Any], fields: Sequence[FieldDescriptor], value: object, *, append: bool
) -> None:
    """Store ``value`` at the field path in the proto-JSON dict, by proto names."""
    target = payload
    for field in fields[:-1]:
        nested = target.get(field.name)
        if nested is None and field.json_name in target:
            # The body used the camelCase name: move it, or ParseDict sees the field twice.
            nested = target.pop(field.json_name)
        if not isinstance(nested, dict):
            nested = {}
        target[field.name] = nested
        target = nested
    leaf = fields[-1]
    if leaf.json_name != leaf.name:
        target.pop(leaf.json_name, None)
    if append:
        target.setdefault(leaf.name, []).append(value)
    else:
        target[leaf.name] = value


def _text_fields(message: Descriptor, name: str) -> list[FieldDescriptor]:
    """The field path a query key names; raises a 400 when it cannot take text."""
    try:
        fields = resolve_path(message, name.split("."))
    except KeyError:
        raise _invalid(name, "Unknown field") from None
    leaf = fields[-1]
    if not accepts_text(leaf) or any(field.is_repeated for field in fields[:-1]):
        raise _invalid(name, "Cannot be set from a query parameter")
    return fields


def _apply_query(
    payload: dict[str, Any],
    message: Descriptor,
    binding: HttpBinding,
    query: Sequence[tuple[str, str]],
    finish_field: str = "",
) -> None:
    path_fields = {
        ".".join(field.name for field in resolve_path(message, var.field_path))
        for var in binding.template.variables
    }
    seen: set[str] = set()
    for key, text in query:
        if binding.body == "*":
            raise _invalid(key, "Unknown query parameter; send fields in the JSON body")
        fields = _text_fields(message, key)
        canonical = ".".join(field.name for field in fields)
        if canonical in path_fields or canonical.split(".")[0] == binding.body:
            raise _invalid(key, "Is set by the path or body, not by a query parameter")
        if canonical == finish_field:
            raise _invalid(key, "Is set by the gateway after the body, not by a query parameter")
        leaf = fields[-1]
        if not leaf.is_repeated and canonical in seen:
            raise _invalid(key, "Given more than once")
        seen.add(canonical)
        try:
            value = from_text(leaf, text)
        except ValueError as exc:
            raise _invalid(canonical, _sentence(str(exc))) from None
        _set_path(payload, fields, value, append=leaf.is_repeated)


def _refuse_path_fields(payload: dict[str, Any], message: Descriptor, binding: HttpBinding) -> None:
    """Raise a 400 when the JSON body sets a field that a path variable binds."""
    for var in binding.template.variables:
        target: object = payload
        for field in resolve_path(message, var.field_path):
            if not isinstance(target, dict):
                break
            key = field.name if field.name in target else field.json_name
            if key not in target:
                break
            target = target[key]
        else:
            raise _invalid(var.name, "Is set by the path, not by the body")


def _takes_bool(field: FieldDescriptor) -> bool:
    """False for number, string and enum fields (and wrappers of them), which JSON
    ``true``/``false`` must not set."""
    if field.message_type is None:
        return field.type == FieldDescriptor.TYPE_BOOL
    if field.message_type.full_name in WRAPPERS:
        return _takes_bool(field.message_type.fields_by_name["value"])
    return True  # a message: json_format judges it (Value and Struct take anything)


_LARGEST_DOUBLE = sys.float_info.max
_TOO_LARGE = "Holds a number too large to store (the largest is about 1.8e308)"


def _takes_float(field: FieldDescriptor) -> bool:
    """True for double and float fields, and wrappers of them."""
    if field.message_type is not None and field.message_type.full_name in WRAPPERS:
        return _takes_float(field.message_type.fields_by_name["value"])
    return field.message_type is None and field.type in FLOAT_TYPES


def _too_large(value: object) -> bool:
    """True for a JSON number no double holds: an integer past the largest double (json_format
    raised OverflowError for it) or a literal that Python read as infinity (``1e309``)."""
    if isinstance(value, float):
        return math.isinf(value)
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > _LARGEST_DOUBLE


def _holds_too_large(value: object) -> bool:
    """True when any number in the JSON ``value`` is :func:`_too_large` (walked without
    recursion: the body may nest as deep as the JSON parser allows)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif _too_large(item):
            return True
    return False


def _screen(value: object, message: Descriptor, prefix: str = "") -> None:
    """Raise a 400 naming the field for what json_format would take wrongly or fail on
    without saying where.

    - A field given by both its names (``display_name`` and ``displayName``): json_format
      keeps one in silence, or fails naming no field.
    - ``true``/``false`` for a field that is not boolean: json_format takes them as 1 and 0
      for number fields (a bool is an int in Python), so ``{"longitude": false}`` would
      silently mean 0.
    - A number too large for a double, in a double field or in free-form JSON (``Struct``,
      ``Value``, ``ListValue``): json_format raises OverflowError for a long integer and
      stores ``1e309`` in a Struct as infinity, which the service cannot write back as JSON.
    """
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        field = find_field(message, key) if isinstance(key, str) else None
        if field is None or is_map(field):
            continue  # unknown fields are json_format's to name; maps are rare and free-form
        name = prefix + field.name
        if key == field.json_name != field.name and field.name in value:
            raise _invalid(name, f"Given twice, as {field.name} and {field.json_name}")
        elements: list[tuple[str, object]] = [(name, item)]
        if field.is_repeated:
            elements = (
                [(f"{name}[{i}]", e) for i, e in enumerate(item)] if isinstance(item, list) else []
            )
        free_form = field.message_type is not None and field.message_type.full_name in FREE_FORM
        for where, element in elements:
            if isinstance(element, bool) and not _takes_bool(field):
                raise _invalid(where, _sentence("must be " + expectation(field, element=True)))
            if _takes_float(field) and _too_large(element):
                raise _invalid(where, _TOO_LARGE)
            if free_form and _holds_too_large(element):
                raise _invalid(where, _TOO_LARGE)
            if is_plain_message(field):
                _screen(element, field.message_type, where + ".")


def _apply_path(payload: dict[str, Any], message: Descriptor, params: Mapping[str, str]) -> None:
    for name, text in params.items():
        # Discovery checked that every path variable binds a singular text field.
        fields = resolve_path(message, name.split("."))
        try:
            value = from_text(fields[-1], text)
        except ValueError as exc:
            raise _invalid(name, _sentence(str(exc))) from None
        _set_path(payload, fields, value, append=False)


# Keyed by identity, not by the binding's value: hashing a frozen binding hashes its whole
# template, segment by segment, on every request. Each entry keeps its objects, so that
# their ids stay theirs.
_TEXT_PATHS: dict[tuple[int, int], tuple[Descriptor, HttpBinding, bool]] = {}


def _text_path_fields(descriptor: Descriptor, binding: HttpBinding) -> bool:
    """True when every path variable of ``binding`` names a plain string field of the request
    itself (``device_id``): such a path alone needs no proto-JSON dict to set."""
    key = (id(descriptor), id(binding))
    known = _TEXT_PATHS.get(key)
    if known is not None and known[0] is descriptor and known[1] is binding:
        return known[2]
    answer = True
    for var in binding.template.variables:
        field = descriptor.fields_by_name.get(var.field_path[0])
        if (
            len(var.field_path) != 1
            or field is None
            or field.type != FieldDescriptor.TYPE_STRING
            or field.is_repeated
        ):
            answer = False
            break
    _TEXT_PATHS[key] = (descriptor, binding, answer)
    return answer


def _from_path_alone(
    method: RpcMethod, binding: HttpBinding, path_params: Mapping[str, str]
) -> Message | None:
    """The request of a path that binds only string fields, set directly: what ``ParseDict``
    would make of the same dict, for a fraction of its cost on the commonest reads (``GET
    /v1/devices/{device_id}``). None when the path binds anything else, or when a value is
    one the full path must judge (a lone surrogate: its 400 is ParseDict's)."""
    if not _text_path_fields(method.request_class.DESCRIPTOR, binding):
        return None
    try:
        return method.request_class(**path_params)
    except (ValueError, TypeError, UnicodeError):
        return None


def build_request(
    method: RpcMethod,
    binding: HttpBinding,
    *,
    path_params: Mapping[str, str],
    query: Sequence[tuple[str, str]],
    body: bytes,
) -> Message:
    """The request message for ``method`` from the parts of an HTTP request; raises 400s."""
    if not query and not (binding.body and body.strip()):
        request = _from_path_alone(method, binding, path_params)
        if request is not None:
            return request
    descriptor = method.request_class.DESCRIPTOR
    payload: dict[str, Any] = {}
    if binding.body == "*":
        value = parse_json_body(body) if body.strip() else {}
        if not isinstance(value, dict):
            raise bad_request("Request body must be a JSON object", code="INVALID_JSON")
        payload = value
        _refuse_path_fields(payload, descriptor, binding)
    elif binding.body and body.strip():
        payload = {binding.body: parse_json_body(body)}
    _screen(payload, descriptor)
    _apply_query(payload, descriptor, binding, query, method.presentation.finish_field)
    _apply_path(payload, descriptor, path_params)
    request = method.request_class()
    try:
        json_format.ParseDict(payload, request, ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        violation = violation_from_parse_error(str(exc), descriptor, payload)
        raise bad_request("Validation failed", [violation]) from None
    except (RecursionError, ValueError, TypeError, AttributeError, OverflowError):
        # Pathological input (absurd nesting) that json_format does not wrap in ParseError.
        raise bad_request("Request body cannot be read as this request type") from None
    return request
