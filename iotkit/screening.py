"""Requests refused before any servicer sees them: bytes that do not parse, text with NUL.

The server interceptor wraps every method's request deserializer with
:func:`screening_deserializer`. A request that does not parse (truncated or
garbage bytes, invalid UTF-8 in a string) or whose text holds a NUL character
(which PostgreSQL cannot store or compare, and no caller means) does not
raise inside gRPC's runtime, where it would become UNKNOWN or INTERNAL: the
deserializer answers a :class:`Refused` holding the :class:`ValidationFailed`
to raise, and the interceptor raises it once the call is authenticated, for a
streamed request at the message that carries it.

The walk visits only string fields and the messages that may hold some, with a
plan built once per message type, so the packed numeric columns of a reading
batch cost nothing; and a message whose bytes hold no zero byte cannot hold a
NUL character, so most requests are not walked at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from iotkit.errors import FieldViolation, ValidationFailed

NUL = "\x00"
NUL_MESSAGE = "must not contain NUL characters"

_STRING = 1
_MESSAGE = 2
_MAP = 3

# One step of a plan: field name, kind, repeated, and for maps whether the key
# and the value are text and the value's message type.
_Step = tuple[str, int, bool, bool, bool, "Descriptor | None"]
_plans: dict[Descriptor, tuple[_Step, ...]] = {}


class Refused:
    """What the screening deserializer answers for a request that must not reach a servicer."""

    __slots__ = ("error",)

    def __init__(self, error: ValidationFailed) -> None:
        self.error = error


def _plan(descriptor: Descriptor) -> tuple[_Step, ...]:
    """The string, message and map fields of ``descriptor``, in field order."""
    plan = _plans.get(descriptor)
    if plan is not None:
        return plan
    steps: list[_Step] = []
    for fd in descriptor.fields:
        repeated = fd.is_repeated
        if fd.type == FieldDescriptor.TYPE_STRING:
            steps.append((fd.name, _STRING, repeated, False, False, None))
        elif fd.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
            entry = fd.message_type
            if entry.GetOptions().map_entry:
                key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
                value_type = (
                    value.message_type if value.type == FieldDescriptor.TYPE_MESSAGE else None
                )
                text_key = key.type == FieldDescriptor.TYPE_STRING
                text_value = value.type == FieldDescriptor.TYPE_STRING
                if text_key or text_value or value_type is not None:
                    steps.append((fd.name, _MAP, True, text_key, text_value, value_type))
            else:
                steps.append((fd.name, _MESSAGE, repeated, False, False, entry))
    plan = tuple(steps)
    _plans[descriptor] = plan
    return plan


def nul_violations(message: Message, prefix: str = "") -> list[FieldViolation]:
    """One violation for each string field of ``message`` (at any depth) that holds a NUL."""
    found: list[FieldViolation] = []
    if _has_nul(message):  # paths are only spelled out for a message that has one
        _walk(message, prefix, found)
    return found


def _has_nul(message: Message) -> bool:
    for name, kind, repeated, text_key, text_value, value_type in _plan(message.DESCRIPTOR):
        value = getattr(message, name)
        if kind == _STRING:
            if (NUL in value) if not repeated else any(NUL in text for text in value):
                return True
        elif kind == _MESSAGE:
            if repeated:
                for item in value:
                    if _has_nul(item):
                        return True
            elif message.HasField(name) and _has_nul(value):
                return True
        else:
            for key, item in value.items():
                if text_key and NUL in key:
                    return True
                if text_value and NUL in item:
                    return True
                if value_type is not None and _has_nul(item):
                    return True
    return False


def _walk(message: Message, prefix: str, found: list[FieldViolation]) -> None:
    for name, kind, repeated, text_key, text_value, value_type in _plan(message.DESCRIPTOR):
        path = prefix + name
        if kind == _STRING:
            if repeated:
                for index, text in enumerate(getattr(message, name)):
                    if NUL in text:
                        found.append(FieldViolation(f"{path}[{index}]", NUL_MESSAGE))
            elif NUL in getattr(message, name):
                found.append(FieldViolation(path, NUL_MESSAGE))
        elif kind == _MESSAGE:
            if repeated:
                for index, item in enumerate(getattr(message, name)):
                    _walk(item, f"{path}[{index}].", found)
            elif message.HasField(name):
                _walk(getattr(message, name), path + ".", found)
        else:
            for key, value in getattr(message, name).items():
                if text_key and NUL in key:
                    found.append(FieldViolation(path, "keys " + NUL_MESSAGE))
                    continue
                if text_value and NUL in value:
                    found.append(FieldViolation(f"{path}[{key}]", NUL_MESSAGE))
                elif value_type is not None:
                    _walk(value, f"{path}[{key}].", found)


def _message_name(deserialize: Callable[[bytes], Any]) -> str:
    owner = getattr(deserialize, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return getattr(descriptor, "name", None) or "request"


def screening_deserializer(
    deserialize: Callable[[bytes], Any] | None,
) -> Callable[[bytes], Any] | None:
    """``deserialize``, answering a :class:`Refused` instead of raising or passing NUL text."""
    if deserialize is None:
        return None
    name = _message_name(deserialize)
    unreadable = f"request is not a valid {name}"

    def load(data: bytes) -> Any:
        try:
            message = deserialize(data)
        except Exception:  # any parse failure is the caller's bytes, not ours
            return Refused(ValidationFailed([], message=unreadable))
        if b"\x00" in data and isinstance(message, Message):
            violations = nul_violations(message)
            if violations:
                return Refused(ValidationFailed(violations))
        return message

    return load
