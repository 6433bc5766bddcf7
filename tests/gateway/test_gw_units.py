"""Unit tests of the pure parts: route table, parse-error reading, conversions, envelope."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format
from google.rpc import status_pb2
from gw_support import rich_status
from starlette.requests import Request
from starlette.responses import Response

from gateway.comments import load_comments
from gateway.discovery import discover, proto_files
from gateway.envelope import failure_body, reason_phrase, rfc3339, success_body
from gateway.errors import GatewayError, from_rpc_error
from gateway.fields import from_text
from gateway.parse_errors import violation_from_parse_error
from gateway.routing import Route, RouteConflict, RouteTable
from gateway.sse import data_event, event_id_of, with_last_event_id
from gateway.templates import parse_template
from gateway.upstream import upstream_of
from iot.auth.v1 import auth_pb2, profile_pb2
from iot.chat.v1 import chat_pb2
from iot.common.v1 import options_pb2
from iot.system.v1 import system_pb2
from iotkit.errors import FieldViolation


async def nothing(request: Request, params: Mapping[str, str]) -> Response:
    return Response()


def route(verb: str, source: str) -> Route:
    return Route(verb, parse_template(source), nothing)


def test_route_table_answers_404_and_405() -> None:
    table = RouteTable([route("GET", "/v1/a/{id}"), route("DELETE", "/v1/a/{id}")])
    assert table.match("GET", "/v1/a/7").params == {"id": "7"}
    with pytest.raises(GatewayError) as not_allowed:
        table.match("POST", "/v1/a/7")
    assert not_allowed.value.status == 405
    assert not_allowed.value.headers == {"Allow": "GET, HEAD, DELETE, OPTIONS"}
    with pytest.raises(GatewayError) as missing:
        table.match("GET", "/v1/b")
    assert missing.value.status == 404
    assert missing.value.code == "NOT_FOUND"


def test_routes_are_found_by_prefix_with_verbs_and_leading_variables() -> None:
    # The table tries the routes under a path's first two segments, plus those that do not
    # start with two literals: each kind must still be found, most specific first.
    table = RouteTable(
        [
            route("GET", "/v1/a/{id}"),
            route("POST", "/v1/a:import"),
            route("GET", "/v1/a/mine"),
            route("GET", "/{page}"),
            route("GET", "/v1/{name=b/*}"),
        ]
    )
    assert table.match("POST", "/v1/a:import").route.template.source == "/v1/a:import"
    assert table.match("GET", "/v1/a/mine").route.template.source == "/v1/a/mine"
    assert table.match("GET", "/v1/a/7").params == {"id": "7"}
    assert table.match("GET", "/healthz").params == {"page": "healthz"}
    assert table.match("GET", "/v1/b/9").params == {"name": "b/9"}
    with pytest.raises(GatewayError) as missing:
        table.match("GET", "/v1/c/9")
    assert missing.value.status == 404


def test_routes_differing_only_in_variable_names_conflict() -> None:
    with pytest.raises(RouteConflict):
        RouteTable([route("GET", "/v1/a/{id}"), route("GET", "/v1/a/{name}")])
    # Different verbs on the same path are fine.
    RouteTable([route("GET", "/v1/a/{id}"), route("PATCH", "/v1/a/{name}")])


def test_rpc_routes_may_not_shadow_the_gateway_pages() -> None:
    method = discover(proto_files())[0]
    table = RouteTable([Route("GET", parse_template("/{page}"), nothing, rpc=method)])
    with pytest.raises(RouteConflict, match="/healthz"):
        table.check_reserved(["/healthz"])


def test_upstream_names_follow_the_package_or_the_served_by_option() -> None:
    services = {s.full_name: s for f in proto_files() for s in f.services_by_name.values()}
    assert upstream_of(services["iot.auth.v1.AuthService"]) == "auth"
    assert upstream_of(services["iot.devices.v1.DeviceService"]) == "devices"
    # No alias in the gateway: the proto says which process serves the status.
    system = services["iot.system.v1.SystemService"]
    assert system.GetOptions().Extensions[options_pb2.served_by] == "auth"
    assert upstream_of(system) == "auth"


def test_a_service_no_process_serves_has_no_upstream() -> None:
    pool = descriptor_pool.DescriptorPool()
    for package in ("iot.billing.v1", "other.auth.v1"):
        pool.Add(
            descriptor_pb2.FileDescriptorProto(
                name=f"{package}.proto",
                package=package,
                service=[descriptor_pb2.ServiceDescriptorProto(name="AuthService")],
            )
        )
        service = pool.FindServiceByName(f"{package}.AuthService")
        assert upstream_of(service) is None


def parse_failure(message_class: type, payload: Any) -> str:
    with pytest.raises(json_format.ParseError) as caught:
        json_format.ParseDict(payload, message_class(), ignore_unknown_fields=False)
    return str(caught.value)


def test_parse_errors_name_the_proto_field_and_hide_the_value() -> None:
    payload: Any = {"displayName": {"secret": "hunter2"}}
    text = parse_failure(auth_pb2.RegisterRequest, payload)
    violation = violation_from_parse_error(text, auth_pb2.RegisterRequest.DESCRIPTOR, payload)
    assert violation == FieldViolation("display_name", "Must be a string")

    payload = {"user": {"created_at": "soon"}}
    text = parse_failure(auth_pb2.LoginResponse, payload)
    violation = violation_from_parse_error(text, auth_pb2.LoginResponse.DESCRIPTOR, payload)
    assert violation.field == "user.created_at"
    assert "RFC 3339" in violation.message

    payload = {"dependencies": [{}, {}, {"latency_ms": "slow"}]}
    text = parse_failure(system_pb2.SystemStatus, payload)
    violation = violation_from_parse_error(text, system_pb2.SystemStatus.DESCRIPTOR, payload)
    assert violation == FieldViolation("dependencies[2].latency_ms", "Must be a number")


def test_an_unreadable_parse_error_still_gives_a_violation() -> None:
    violation = violation_from_parse_error("something odd", auth_pb2.RegisterRequest.DESCRIPTOR)
    assert violation == FieldViolation("", "Invalid value")


def test_text_conversion_by_field_type() -> None:
    fields = system_pb2.SystemMetrics.DESCRIPTOR.fields_by_name
    assert from_text(fields["active_users"], "12") == 12
    assert from_text(fields["error_rate"], "0.5") == 0.5
    with pytest.raises(ValueError, match="from 0 to 4294967295"):
        from_text(fields["active_users"], "-1")
    with pytest.raises(ValueError, match="number"):
        from_text(fields["error_rate"], "half")
    flag = system_pb2.SystemStatus.DESCRIPTOR.fields_by_name["database"]
    assert [from_text(flag, text) for text in ("true", "1", "False", "0")] == [
        True,
        True,
        False,
        False,
    ]


def test_envelopes() -> None:
    assert success_body({"a": 1}, status=201, message="Made") == {
        "http_status_code": 201,
        "success": True,
        "message": "Made",
        "data": {"a": 1},
    }
    error = GatewayError(
        status=409,
        code="EMAIL_TAKEN",
        message="Email already registered",
        violations=[FieldViolation("email", "Already registered")],
        details={"email": "a@b.c"},
    )
    moment = datetime(2026, 1, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=1)))
    assert failure_body(error, path="/v1/auth/register", now=moment) == {
        "http_status_code": 409,
        "success": False,
        "message": "Email already registered",
        "data": {"errors": [{"field": "email", "message": "Already registered"}]},
        "error": {
            "error_code": "EMAIL_TAKEN",
            "status": 409,
            "error": "Conflict",
            "path": "/v1/auth/register",
            "timestamp": "2026-01-01T00:00:00Z",
            "details": {"email": "a@b.c"},
        },
    }
    assert rfc3339(datetime(2026, 5, 4, 3, 2, 1, 999, tzinfo=UTC)) == "2026-05-04T03:02:01Z"
    assert reason_phrase(499) == "Client Closed Request"
    assert reason_phrase(503) == "Service Unavailable"


def rpc_error(code: grpc.StatusCode, details: str, trailing: tuple[tuple[str, object], ...]):  # type: ignore[no-untyped-def]
    return grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailing), details=details
    )


def test_rich_status_with_a_different_code_is_ignored() -> None:
    other = status_pb2.Status(code=grpc.StatusCode.NOT_FOUND.value[0], message="Hidden")
    error = rpc_error(
        grpc.StatusCode.PERMISSION_DENIED,
        "Forbidden here",
        (("grpc-status-details-bin", other.SerializeToString()),),
    )
    result = from_rpc_error(error, service="devices")
    assert result.status == 403
    assert result.code == "PERMISSION_DENIED"
    assert result.message == "Forbidden here"


def test_garbage_status_details_are_ignored() -> None:
    error = rpc_error(
        grpc.StatusCode.NOT_FOUND, "No device", (("grpc-status-details-bin", b"\xff\xff\xff"),)
    )
    result = from_rpc_error(error, service="devices")
    assert (result.status, result.code, result.message) == (404, "NOT_FOUND", "No device")


def test_retry_after_rounds_up_to_whole_seconds() -> None:
    status = rich_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "Slow down", retry_seconds=0.2)
    error = rpc_error(status.code, status.details, status.trailing_metadata)
    assert from_rpc_error(error, service="auth").headers["Retry-After"] == "1"


def test_proto_comments_come_from_generated_descriptors_without_protoc(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Serving must not need grpcio-tools: with it unimportable the comments are still there.
    monkeypatch.setitem(sys.modules, "grpc_tools", None)
    monkeypatch.setitem(sys.modules, "grpc_tools.protoc", None)
    comments = load_comments()
    assert comments["iot.auth.v1.AuthService.Register"].startswith("Creates an account")
    assert comments["iot.auth.v1.RegisterRequest.email"].startswith("Login email")


def test_no_descriptor_set_means_no_descriptions(caplog: pytest.LogCaptureFixture) -> None:
    assert load_comments("gateway") == {}
    assert "has no descriptions" in caplog.text


def test_an_event_id_field_becomes_the_sse_id_and_nothing_else_does(probe: Any) -> None:
    assert event_id_of(chat_pb2.SessionEvent(event_id=42)) == "42"
    assert event_id_of(probe.pb2.Thing(thing_id="7")) is None
    assert data_event({"a": 1}, event_id="42") == b'id: 42\ndata: {"a":1}\n\n'
    assert data_event({"a": 1}) == b'data: {"a":1}\n\n'


def test_last_event_id_fills_only_a_request_that_has_the_field(probe: Any) -> None:
    watch = chat_pb2.WatchSessionRequest.DESCRIPTOR
    query = [("session_token", "t"), ("last_event_id", "3")]
    assert with_last_event_id(watch, query, " 9 ") == [
        ("session_token", "t"),
        ("last_event_id", "9"),
    ]
    assert with_last_event_id(watch, query, None) == query
    assert with_last_event_id(watch, query, "  ") == query
    assert with_last_event_id(probe.pb2.Thing.DESCRIPTOR, [], "9") == []


def test_parse_errors_without_field_prefixes_still_name_the_field() -> None:
    # A proto3 optional field's errors come without "Failed to parse ... field:" prefixes.
    payload: Any = {"display_name": "x", "displayName": "y"}
    text = parse_failure(profile_pb2.UpdateProfileRequest, payload)
    violation = violation_from_parse_error(
        text, profile_pb2.UpdateProfileRequest.DESCRIPTOR, payload
    )
    assert violation == FieldViolation("display_name", "Given more than once")
    # Words of a cause inside a quoted value are not taken for the cause.
    payload = {"dependencies": [{"latency_ms": "Message too deep. surrogates not allowed"}]}
    text = parse_failure(system_pb2.SystemStatus, payload)
    violation = violation_from_parse_error(text, system_pb2.SystemStatus.DESCRIPTOR, payload)
    assert violation == FieldViolation("dependencies[0].latency_ms", "Must be a number")
