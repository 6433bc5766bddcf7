"""The request screening: NUL text found at any depth, garbage bytes answered, not raised."""

from __future__ import annotations

from google.protobuf import struct_pb2

from iot.auth.v1 import profile_pb2
from iot.common.v1 import options_pb2
from iot.telemetry.v1 import telemetry_pb2
from iotkit.errors import FieldViolation
from iotkit.screening import (
    NUL_MESSAGE,
    Refused,
    nul_violations,
    screening_deserializer,
    unreadable_fields,
)


def test_nul_is_found_in_nested_repeated_and_map_fields() -> None:
    rules = options_pb2.MethodRules(scopes=["a", "b\x00"], success_message="ok\x00")
    assert nul_violations(rules) == [
        FieldViolation("scopes[1]", NUL_MESSAGE),
        FieldViolation("success_message", NUL_MESSAGE),
    ]
    document = struct_pb2.Struct()
    document.update({"room": "a\x00", "bad\x00key": 1, "list": [1, "ok", {"deep": "x\x00"}]})
    found = sorted(nul_violations(document), key=lambda v: v.field)
    assert found == [
        FieldViolation("fields", "keys " + NUL_MESSAGE),
        FieldViolation(
            "fields[list].list_value.values[2].struct_value.fields[deep].string_value", NUL_MESSAGE
        ),
        FieldViolation("fields[room].string_value", NUL_MESSAGE),
    ]
    assert (
        nul_violations(struct_pb2.Struct(fields={"fine": struct_pb2.Value(string_value="x")})) == []
    )


def test_numeric_columns_full_of_zero_bytes_are_not_mistaken_for_text() -> None:
    batch = telemetry_pb2.ReadingBatch(
        sequence=0,
        streams=[telemetry_pb2.StreamReadings(metric_name="t", timestamps=[0] * 10, values=[0.0])],
    )
    load = screening_deserializer(telemetry_pb2.ReadingBatch.FromString)
    assert load is not None
    assert load(batch.SerializeToString()) == batch


def test_bytes_that_do_not_parse_are_answered_as_a_refusal_naming_the_message() -> None:
    load = screening_deserializer(telemetry_pb2.ReadingBatch.FromString)
    assert load is not None
    refused = load(b"\xff\xff\xff")
    assert isinstance(refused, Refused)
    assert refused.error.message == "request is not a valid ReadingBatch"
    nul = load(telemetry_pb2.ReadingBatch(streams=[{"device_id": "\x00"}]).SerializeToString())
    assert isinstance(nul, Refused)
    assert nul.error.violations == [FieldViolation("streams[0].device_id", NUL_MESSAGE)]
    assert screening_deserializer(None) is None


def refusal(deserialize: object, data: bytes) -> Refused:
    load = screening_deserializer(deserialize)  # type: ignore[arg-type]
    assert load is not None
    refused = load(data)
    assert isinstance(refused, Refused)
    return refused


def test_a_struct_nested_past_the_parsers_limit_names_its_field() -> None:
    # A client library builds and sends it without complaint (the depth limit is the
    # parser's); it was refused with no field violation at all.
    metadata = struct_pb2.Struct()
    inner = metadata
    for _ in range(60):  # Struct -> Value -> Struct: 120 levels
        inner = inner.fields["a"].struct_value
    request = profile_pb2.UpdateProfileRequest(display_name="Ann")
    request.metadata.CopyFrom(metadata)
    refused = refusal(profile_pb2.UpdateProfileRequest.FromString, request.SerializeToString())
    assert refused.error.message == "request is not a valid UpdateProfileRequest"
    [violation] = refused.error.violations
    assert violation.field == "metadata" and "nested more deeply" in violation.message


def test_a_string_that_is_not_utf8_is_named_by_its_path() -> None:
    batch = telemetry_pb2.ReadingBatch(
        sequence=1,
        streams=[
            telemetry_pb2.StreamReadings(metric_name="temp"),
            telemetry_pb2.StreamReadings(device_id="dev", metric_name="@@"),
        ],
    )
    data = batch.SerializeToString().replace(b"@@", b"\xff\xfe")
    refused = refusal(telemetry_pb2.ReadingBatch.FromString, data)
    assert refused.error.violations == [
        FieldViolation("streams[1].metric_name", "is not valid UTF-8")
    ]


def test_bytes_whose_framing_is_broken_name_no_field() -> None:
    for garbage in (b"\xff\xff\xff", b"\x12\x7fshort", b"\x0b\x00"):
        assert unreadable_fields(telemetry_pb2.ReadingBatch.DESCRIPTOR, garbage) == []
