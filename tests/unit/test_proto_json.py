"""``message_to_dict`` answers what ``json_format.MessageToDict`` answers, keys in the same
order, for every message the gateway prints: each RPC's response (and, through them, every
message they hold), generated field by field at the edges (NaN, infinities, int64 bounds,
unknown enum numbers, bytes, maps, nesting)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.proto_json import message_to_dict
from tests.service.proto_strategies import messages, rpc_methods

RESPONSES = sorted(
    {rpc.method.output_type.full_name: rpc.method.output_type for rpc in rpc_methods()}.items()
)


def _printed(convert: Any, message: Message) -> str:
    """The JSON text of a conversion, or the error it raised (by type: an ``Any`` of a type
    the pool does not know is a TypeError from the library, and must be from both)."""
    try:
        return json.dumps(convert(message), ensure_ascii=False)
    except (json_format.SerializeToJsonError, TypeError, ValueError) as exc:
        return f"error: {type(exc).__name__}"


def _library(message: Message) -> Any:
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


@pytest.mark.parametrize("name", [name for name, _ in RESPONSES])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_response_prints_as_the_library_prints_it(name: str, data: st.DataObject) -> None:
    descriptor = dict(RESPONSES)[name]
    message = data.draw(messages(descriptor))
    assert _printed(message_to_dict, message) == _printed(_library, message)


def test_an_empty_message_prints_its_defaults() -> None:
    from iot.devices.v1 import devices_pb2

    device = devices_pb2.Device()
    printed = message_to_dict(device)
    assert printed == _library(device)
    assert printed["readings_total"] == "0" and "location" not in printed
