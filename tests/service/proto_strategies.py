"""Hypothesis strategies that build any protobuf request from its descriptor, field by field.

Every RPC of the suite is found in the generated descriptors (:func:`rpc_methods`),
so a new RPC is fuzzed without a line here. Values lean on the edges a parser
or a database trips over: integer bounds, NaN and infinities, empty, huge,
NUL and odd-unicode text, enum numbers no proto defines, nested messages
(depth-limited, since ``google.protobuf.Struct`` nests itself), and unknown
fields appended to the encoded bytes.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

import iot
from gateway.upstream import upstream_of
from iotkit.config import SERVICES

_MAX_DEPTH = 3
_FD = FieldDescriptor

_INT_RANGES = {
    _FD.TYPE_INT32: (-(2**31), 2**31 - 1),
    _FD.TYPE_SINT32: (-(2**31), 2**31 - 1),
    _FD.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    _FD.TYPE_INT64: (-(2**63), 2**63 - 1),
    _FD.TYPE_SINT64: (-(2**63), 2**63 - 1),
    _FD.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    _FD.TYPE_UINT32: (0, 2**32 - 1),
    _FD.TYPE_FIXED32: (0, 2**32 - 1),
    _FD.TYPE_UINT64: (0, 2**64 - 1),
    _FD.TYPE_FIXED64: (0, 2**64 - 1),
}

HOSTILE_TEXT = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "x" * 5000,
    "\U0001f600" * 300,
    "\u202eevil\u0301\u200d",
    "../../etc/passwd",
    "'; DROP TABLE users; --",
    "%s%s%n{0}{}",
    "NaN",
    "-1",
    "9" * 40,
    "1e309",
    "2026-13-45T25:61:61Z",
    "0000-00-00T00:00:00Z",
    "00000000-0000-0000-0000-000000000000",
    "*",
    "temperature",
    "csv",
    "pearson",
    "user@example.com",
)


@dataclass(frozen=True)
class Rpc:
    """One RPC of the suite: its path, its descriptor and the process that serves it."""

    path: str
    method: MethodDescriptor
    process: str

    @property
    def streaming(self) -> tuple[bool, bool]:
        """Whether the client and the server stream."""
        return self.method.client_streaming, self.method.server_streaming


def rpc_methods() -> list[Rpc]:
    """Every RPC of every service of the suite, from the generated ``iot`` package.

    A service no single process owns (the diagnostics every process serves) is
    listed once for each process.
    """
    rpcs: list[Rpc] = []
    for found in sorted(pkgutil.walk_packages(iot.__path__, "iot."), key=lambda m: m.name):
        if not found.name.endswith("_pb2"):
            continue
        module = importlib.import_module(found.name)
        for service in module.DESCRIPTOR.services_by_name.values():
            owner = upstream_of(service)
            for process in (owner,) if owner else SERVICES:
                rpcs.extend(
                    Rpc(f"/{service.full_name}/{method.name}", method, process)
                    for method in service.methods
                )
    return rpcs


def _text() -> st.SearchStrategy[str]:
    # UUIDs get past the id checks, to the lookups behind them.
    return st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=24), st.uuids().map(str))


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        edges = st.sampled_from(sorted({low, high, 0, 1, -1 if low < 0 else 2, 10**6}))
        return st.one_of(edges, st.integers(low, high))
    if kind == _FD.TYPE_DOUBLE:
        return st.floats()
    if kind == _FD.TYPE_FLOAT:
        return st.floats(width=32)
    if kind == _FD.TYPE_BOOL:
        return st.booleans()
    if kind == _FD.TYPE_STRING:
        return _text()
    if kind == _FD.TYPE_BYTES:
        return st.one_of(st.binary(max_size=64), st.just(b"\xff" * 5000))
    if kind == _FD.TYPE_ENUM:
        defined = [value.number for value in field.enum_type.values]
        # Proto3 enums are open: any int32 reaches the servicer.
        return st.one_of(st.sampled_from(defined), st.integers(-(2**31), 2**31 - 1))
    raise AssertionError(f"no strategy for field type {kind} of {field.full_name}")


def _is_map(field: FieldDescriptor) -> bool:
    return field.type == _FD.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def _field(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any] | None:
    if _is_map(field):
        entry = field.message_type
        value = _value(entry.fields_by_name["value"], depth)
        if value is None:
            return None
        return st.dictionaries(_scalar(entry.fields_by_name["key"]), value, max_size=3)
    single = _value(field, depth)
    if single is None:
        return None
    if field.is_repeated:
        return st.lists(single, max_size=4)
    return single


def _value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any] | None:
    if field.type in (_FD.TYPE_MESSAGE, _FD.TYPE_GROUP):
        if depth >= _MAX_DEPTH:
            return None
        return messages(field.message_type, depth + 1)
    return _scalar(field)


def _assign(message: Message, field: FieldDescriptor, value: Any) -> None:
    target = getattr(message, field.name)
    if _is_map(field):
        for key, item in value.items():
            if isinstance(item, Message):
                target[key].CopyFrom(item)
            else:
                target[key] = item
    elif field.is_repeated:
        for item in value:
            if isinstance(item, Message):
                target.add().CopyFrom(item)
            else:
                target.append(item)
    elif isinstance(value, Message):
        target.CopyFrom(value)
    else:
        setattr(message, field.name, value)


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Messages of ``descriptor`` with any subset of their fields set to edge values."""
    cls = message_factory.GetMessageClass(descriptor)
    optional = {}
    for field in descriptor.fields:
        strategy = _field(field, depth)
        if strategy is not None:
            optional[field.name] = strategy

    def build(values: dict[str, Any]) -> Message:
        message = cls()
        for name, value in values.items():
            _assign(message, descriptor.fields_by_name[name], value)
        return message

    return st.fixed_dictionaries({}, optional=optional).map(build)


def varint(number: int) -> bytes:
    """The protobuf varint encoding of a non-negative ``number``."""
    out = bytearray()
    while True:
        low, number = number & 0x7F, number >> 7
        out.append(low | (0x80 if number else 0))
        if not number:
            return bytes(out)


def unknown_fields() -> st.SearchStrategy[bytes]:
    """Encoded fields of numbers no request uses (varint, length-delimited), to append."""
    number = st.integers(1000, 2**29 - 1)
    numeric = st.builds(lambda n, v: varint(n << 3) + varint(v), number, st.integers(0, 2**64 - 1))
    blob = st.builds(
        lambda n, b: varint(n << 3 | 2) + varint(len(b)) + b, number, st.binary(max_size=32)
    )
    return st.lists(st.one_of(numeric, blob), max_size=2).map(b"".join)


def encoded_requests(descriptor: Descriptor) -> st.SearchStrategy[bytes]:
    """Encoded requests of ``descriptor``, sometimes followed by unknown fields."""
    return st.builds(
        lambda message, extra: message.SerializeToString() + extra,
        messages(descriptor),
        unknown_fields(),
    )
