"""Requests refused before any servicer sees them: bytes that do not parse, text with NUL.

The server interceptor wraps every method's request deserializer with
:func:`screening_deserializer`. A request that does not parse (truncated or
garbage bytes, invalid UTF-8 in a string) or whose text holds a NUL character
(which PostgreSQL cannot store or compare, and no caller means) does not
raise inside gRPC's runtime, where it would become UNKNOWN or INTERNAL: the
deserializer answers a :class:`Refused` holding the :class:`ValidationFailed`
to raise (naming the field whose own bytes do not parse, such as a Struct
nested past the parser's 100 levels or a string that is not UTF-8, when the
framing around it is sound), and the interceptor raises it once the call is
authenticated, for a streamed request at the message that carries it.

The walk visits only string fields and the messages that may hold some, with a
plan built once per message type, so the packed numeric columns of a reading
batch cost nothing; and a message whose bytes hold no zero byte cannot hold a
NUL character, so most requests are not walked at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf import message_factory
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


def _descriptor_of(deserialize: Callable[[bytes], Any]) -> Descriptor | None:
    owner = getattr(deserialize, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return descriptor if isinstance(descriptor, Descriptor) else None


def _message_name(deserialize: Callable[[bytes], Any]) -> str:
    descriptor = _descriptor_of(deserialize)
    return descriptor.name if descriptor is not None else "request"


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """The varint at ``at`` and where it ends; IndexError or ValueError when it is cut off."""
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


_FIXED = {1: 8, 5: 4}  # wire types of fixed width: 64-bit, 32-bit


# How many levels of messages unreadable_fields takes apart to name the innermost field
# at fault; below, the message field that does not parse is named as a whole. Each level
# parses its fields' bytes once more, so the cost stays a few parses of the request
# however deep its nesting (a message nested past the parser's limit is named at once).
_NAMED_LEVELS = 3


def unreadable_fields(
    descriptor: Descriptor, data: bytes, prefix: str = "", level: int = 0
) -> list[FieldViolation]:
    """The fields of a request that did not parse whose own bytes do not parse: a string
    that is not UTF-8, a message nested past the parser's depth limit or broken inside,
    with its path (``streams[1].metric_name``). Empty when the request's own framing is
    broken: garbage bytes name no field."""
    found: dict[str, FieldViolation] = {}
    seen: dict[int, int] = {}
    at = 0
    try:
        while at < len(data):
            key, at = _varint(data, at)
            number, wire = key >> 3, key & 7
            if wire == 0:
                _, at = _varint(data, at)
                continue
            if wire in _FIXED:
                at += _FIXED[wire]
                continue
            if wire != 2:  # groups and invalid wire types: the framing is broken
                return []
            size, at = _varint(data, at)
            chunk, at = data[at : at + size], at + size
            if len(chunk) != size:
                return []
            fd = descriptor.fields_by_number.get(number)
            if fd is None:
                continue
            index = seen.get(number, 0)
            seen[number] = index + 1
            problem = _chunk_problem(fd, chunk)
            if problem is None:
                continue
            path = prefix + (
                f"{fd.name}[{index}]" if fd.is_repeated and not _is_map(fd) else fd.name
            )
            inner: list[FieldViolation] = []
            # A well-known type (Struct, Timestamp) is named as a whole: its insides are
            # no field a caller wrote.
            if (
                fd.type == FieldDescriptor.TYPE_MESSAGE
                and not _is_map(fd)
                and level + 1 < _NAMED_LEVELS
                and not fd.message_type.full_name.startswith("google.protobuf.")
            ):
                inner = unreadable_fields(fd.message_type, chunk, path + ".", level + 1)
            for violation in inner or [FieldViolation(path, problem)]:
                found.setdefault(violation.field, violation)
    except (IndexError, ValueError):
        return []
    return list(found.values())


def _is_map(fd: FieldDescriptor) -> bool:
    return fd.message_type is not None and fd.message_type.GetOptions().map_entry


def _chunk_problem(fd: FieldDescriptor, chunk: bytes) -> str | None:
    """What is wrong with one length-delimited field's bytes, or None when they parse."""
    if fd.type == FieldDescriptor.TYPE_STRING:
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError:
            return "is not valid UTF-8"
        return None
    if fd.type != FieldDescriptor.TYPE_MESSAGE:
        return None
    try:
        message_factory.GetMessageClass(fd.message_type).FromString(chunk)
    except Exception:
        what = "holds an entry that is not valid" if _is_map(fd) else "is not a valid "
        what += "" if _is_map(fd) else fd.message_type.name
        return f"{what}: malformed, or nested more deeply than the 100 levels a request may have"
    return None


def screening_deserializer(
    deserialize: Callable[[bytes], Any] | None,
) -> Callable[[bytes], Any] | None:
    """``deserialize``, answering a :class:`Refused` instead of raising or passing NUL text."""
    if deserialize is None:
        return None
    name = _message_name(deserialize)
    unreadable = f"request is not a valid {name}"

    descriptor = _descriptor_of(deserialize)

    def load(data: bytes) -> Any:
        try:
            message = deserialize(data)
        except Exception:  # any parse failure is the caller's bytes, not ours
            found = unreadable_fields(descriptor, data) if descriptor is not None else []
            return Refused(ValidationFailed(found, message=unreadable))
        if b"\x00" in data and isinstance(message, Message):
            violations = nul_violations(message)
            if violations:
                return Refused(ValidationFailed(violations))
        return message

    return load
