"""``/openapi.json`` is generated from the same descriptors as the routes."""

from __future__ import annotations

import functools
import re
from typing import Any

import httpx
import pytest
from gw_support import Probe
from jsonschema import Draft202012Validator

from gateway.discovery import discover, proto_files
from gateway.openapi import build_openapi, check_string_bounds
from gateway.proxy import RpcHandler
from gateway.routing import Route
from gateway.upstream import Upstreams
from iot.common.v1 import options_pb2
from iot.telemetry.v1 import telemetry_pb2
from iotkit.config import Settings
from iotkit.listing import LIMIT_MAX
from services.auth import rules as auth_rules
from services.devices.devices import rules as device_rules


def schema_of(document: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(document["components"]["schemas"][name])


async def test_openapi_lists_the_auth_and_system_routes(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    register = document["paths"]["/v1/auth/register"]["post"]
    body_schema = register["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema == {"$ref": "#/components/schemas/iot.auth.v1.RegisterRequest"}
    assert register["security"] == []
    assert register["responses"]["201"]["description"] == "User registered successfully"
    envelope = register["responses"]["201"]["content"]["application/json"]["schema"]["allOf"]
    assert envelope[1]["properties"]["data"] == {
        "$ref": "#/components/schemas/iot.auth.v1.RegisterResponse"
    }
    assert "get" in document["paths"]["/v1/system/status"]
    assert document["paths"]["/v1/auth/me"]["get"]["security"] == [{"bearerAuth": []}]
    # A chat session is open to anonymous visitors and to signed-in users alike.
    sessions = document["paths"]["/v1/chat/sessions"]["post"]
    assert sessions["security"] == [{}, {"bearerAuth": []}]
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    # The JWKS is documented bare, as it is served.
    jwks = document["paths"]["/.well-known/jwks.json"]["get"]["responses"]["200"]
    assert jwks["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/iot.auth.v1.Jwks"
    }
    assert "/healthz" in document["paths"]


async def test_schemas_follow_proto_json(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    request = schema_of(document, "iot.auth.v1.RegisterRequest")
    assert set(request["properties"]) == {"email", "password", "display_name", "mfa_enabled"}
    # null is proto JSON's "not set": any field that is not required takes it.
    assert request["properties"]["mfa_enabled"]["type"] == ["boolean", "null"]
    user = schema_of(document, "iot.auth.v1.User")
    assert user["properties"]["created_at"]["format"] == "date-time"
    profile = schema_of(document, "iot.auth.v1.Profile")
    assert profile["properties"]["tags"]["type"] == ["array", "null"]
    assert profile["properties"]["metadata"]["type"] == ["object", "null"]
    status = schema_of(document, "iot.system.v1.SystemStatus")
    assert status["properties"]["uptime"]["type"] == ["number", "null"]
    login = schema_of(document, "iot.auth.v1.LoginResponse")
    assert login["properties"]["expires_in"]["type"] == ["integer", "null"]
    # Comments of the proto sources become descriptions.
    assert "Creates an account" in document["paths"]["/v1/auth/register"]["post"]["description"]
    assert request["properties"]["email"]["description"].startswith("Login email")


def test_parameters_and_types_of_the_probe(probe: Probe) -> None:
    methods = discover([probe.file], upstream=lambda _: "devices")
    upstreams = Upstreams(Settings(), {"devices"})
    routes = [
        Route(b.verb, b.template, RpcHandler(m, b, upstreams, deadline=1), rpc=m, binding=b)
        for m in methods
        for b in m.bindings
    ]
    document = build_openapi(routes)
    get_thing = document["paths"]["/v1/things/{thing_id}"]["get"]
    parameters = {p["name"]: p for p in get_thing["parameters"]}
    assert parameters["thing_id"]["in"] == "path"
    assert parameters["thing_id"]["required"] is True
    assert parameters["limit"]["in"] == "query"
    assert parameters["limit"]["schema"]["type"] == "integer"
    # Proto JSON writes 64-bit integers as strings.
    assert parameters["big"]["schema"]["type"] == "string"
    assert parameters["big"]["schema"]["format"] == "int64"
    kinds = parameters["kind"]["schema"]["enum"]
    assert kinds == ["KIND_UNSPECIFIED", "KIND_SENSOR", "KIND_ACTUATOR"]
    assert parameters["tags"]["schema"]["type"] == "array"
    assert parameters["location.latitude"]["schema"]["type"] == "number"
    assert parameters["since"]["schema"]["format"] == "date-time"
    assert "extra" not in parameters  # A Struct cannot come from a query string.
    assert "/v1/legacy/things/{thing_id}" in document["paths"]
    nested = document["paths"]["/v1/{location.label}/things"]["get"]
    assert nested["parameters"][0]["name"] == "location.label"
    update = document["paths"]["/v1/things/{thing_id}"]["patch"]
    assert update["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/gwprobe.v1.Thing"
    }
    assert all(p["name"] != "thing" for p in update["parameters"])
    assert "/v1/things:import" in document["paths"]
    watch = document["paths"]["/v1/things:watch"]["get"]["responses"]["200"]["content"]
    assert "text/event-stream" in watch
    imported = schema_of(document, "gwprobe.v1.ImportThingsResponse")
    assert imported["properties"]["total_bytes"]["type"] == ["string", "null"]
    location = document["paths"]["/v1/things/{thing_id}/location"]["get"]["responses"]["200"]
    data = location["content"]["application/json"]["schema"]["allOf"][1]["properties"]["data"]
    assert data["$ref"] == "#/components/schemas/gwprobe.v1.Location"


def test_every_discovered_route_is_in_the_document() -> None:
    document = _real_document()
    for method in discover(proto_files()):
        for binding in method.bindings:
            assert binding.verb.lower() in document["paths"][binding.template.openapi_path()]


def _real_document() -> dict[str, Any]:
    methods = discover(proto_files())
    upstreams = Upstreams(Settings(), {m.upstream for m in methods})
    return build_openapi(
        [
            Route(b.verb, b.template, RpcHandler(m, b, upstreams, deadline=1), rpc=m, binding=b)
            for m in methods
            for b in m.bindings
        ]
    )


def test_required_fields_formats_bounds_and_enums_come_from_the_protos() -> None:
    # The document once had none of these, and accepted what the services refuse.
    document = _real_document()
    register = schema_of(document, "iot.auth.v1.RegisterRequest")
    assert register["required"] == ["email", "password"]
    assert document["paths"]["/v1/auth/register"]["post"]["requestBody"]["required"] is True
    email, password = register["properties"]["email"], register["properties"]["password"]
    # 254, not the seed's 255: the address check refuses longer ones (RFC 5321).
    assert (email["format"], email["maxLength"]) == ("email", 254)
    assert (password["minLength"], password["maxLength"]) == (
        auth_rules.PASSWORD_MIN,
        auth_rules.PASSWORD_MAX,
    )
    pattern = re.compile(password["allOf"][0]["pattern"])
    for candidate in ("Str0ng!pass", "weakpass", "NOLOWER1!", "Sh0rt!", "Tab\t0k!Aa"):
        assert bool(pattern.search(candidate)) == bool(
            auth_rules.PASSWORD_PATTERN.match(candidate)
        ), candidate
    device = schema_of(document, "iot.devices.v1.RegisterDeviceRequest")
    assert device["required"] == ["name", "type"]
    assert device["properties"]["type"]["enum"] == list(device_rules.DEVICE_TYPES)
    assert device["properties"]["name"]["maxLength"] == device_rules.NAME_MAX
    location = schema_of(document, "iot.devices.v1.Location")["properties"]
    assert (location["latitude"]["minimum"], location["latitude"]["maximum"]) == (-90, 90)
    get_device = document["paths"]["/v1/devices/{device_id}"]["get"]["parameters"][0]
    assert get_device["schema"]["format"] == "uuid"
    listing = {p["name"]: p for p in document["paths"]["/v1/devices"]["get"]["parameters"]}
    assert (listing["limit"]["schema"]["minimum"], listing["limit"]["schema"]["maximum"]) == (
        0,
        LIMIT_MAX,
    )
    # Proto JSON's 64-bit integers are strings of digits, not any string.
    expires = {
        p["name"]: p
        for p in document["paths"]["/v1/downloads/{export_id}/{file_name}"]["get"]["parameters"]
    }["expires"]
    assert not re.search(expires["schema"]["pattern"], "")
    assert re.search(expires["schema"]["pattern"], "-1764547200")


@functools.cache
def _document() -> dict[str, Any]:
    return _real_document()


def _valid(schema: dict[str, Any], value: object) -> bool:
    """Whether ``value`` is valid by ``schema``, a part of the real document."""
    root = {**schema, "components": _document()["components"]}
    checker = Draft202012Validator.FORMAT_CHECKER
    return bool(Draft202012Validator(root, format_checker=checker).is_valid(value))


def _field(path: str, verb: str, name: str) -> tuple[dict[str, Any], bool]:
    """The schema of a parameter or body field of an operation, and whether it is required."""
    operation = _document()["paths"][path][verb]
    for parameter in operation["parameters"]:
        if parameter["name"] == name:
            return parameter["schema"], parameter["required"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    message = schema_of(_document(), body["$ref"].rsplit("/", 1)[1])
    return message["properties"][name], name in message.get("required", [])


_ADMIN_ACCOUNT = "/v1/admin/accounts/{account_id}"
_BLANKS = ["", " ", "\x1c\x1f", "\u3000"]


# Each field once documented less than its service refuses (an outside Schemathesis run
# found a request valid by the document and refused with a 400 for each).
@pytest.mark.parametrize(
    ("path", "verb", "name", "required", "accepted", "refused"),
    [
        ("/v1/security/download-data", "post", "format", False,
         [None, "", " ", "json", " CSV ", "Xml"], ["zip", "c sv", "jsonx"]),
        ("/v1/resilience/offline-data", "post", "format", False,
         [None, "", "ZIP", "json\n"], ["csv", "xml"]),
        ("/v1/batches", "get", "status", False,
         ["", "ACTIVE", " completed ", "Fa\u0131led", "EXPIRED"], ["PENDING", "ACTIVE1"]),
        ("/v1/admin/users", "get", "role", False, ["", "user", "admin"], ["Admin", " user"]),
        ("/v1/admin/users/{uuid}", "patch", "role", False, [None, "user", "admin"], ["", "x"]),
        ("/v1/uploads", "post", "metric_name", False,
         [None, "", "temp.c-1_x", "m" * 64, "abc\n"], ["Ω", "m" * 65, "a b", "abc\n\n"]),
        ("/v1/uploads", "post", "checksum", False,
         [None, "", "d41d8cd98f00b204e9800998ecf8427E"],
         ["python-httpx/0.28.1", "d41d8cd98f00b204e9800998ecf8427e\n", "0" * 31]),
        ("/v1/admin/accounts", "post", "email", True,
         ["ops@example.com"], [None, "", "ops@plant.test", "a@b.LOCALHOST"]),
        ("/v1/admin/accounts", "post", "name", True,
         ["x", " Plant 7 ", "x" * 100, " " + "x" * 100 + " "], [None, *_BLANKS, "x" * 101]),
        ("/v1/admin/accounts", "post", "max_concurrent_batches", False,
         [None, 0, 1, 1000], [-1, 1001]),
        (_ADMIN_ACCOUNT, "patch", "name", False, [None, "x"], [*_BLANKS, "x" * 101]),
        (_ADMIN_ACCOUNT, "patch", "max_concurrent_batches", False, [None, 1, 1000], [0, 1001]),
        ("/v1/admin/sites/{site_id}", "patch", "name", False, [None, "x"], _BLANKS),
        (f"{_ADMIN_ACCOUNT}/sites", "post", "name", True, ["x"], [None, *_BLANKS]),
        (f"{_ADMIN_ACCOUNT}/sites", "post", "domain", True,
         ["plant-7.example.com", " Plant-7.Example.COM.. ", "a.b1", "x." * 126 + "y"],
         [None, "", "example", "a.12", "-a.com", "a-.com", "a..com", "a_b.com", "x." * 127 + "y",
          f"{'a' * 64}.com"]),
        ("/v1/chat/sessions/{session_id}/agent-messages", "post", "content", True,
         ["hi", " hi ", "x" * 4000], [None, *_BLANKS, "x" * 4001]),
        ("/v1/chat/sessions/{session_id}/messages", "post", "content", True,
         ["hi"], [None, *_BLANKS]),
        ("/v1/streams/{stream_id}/readings:watch", "get", "last_event_id", False,
         ["0", "1764547200000000", "-0"], ["-3", "-1", "", "1.5"]),
        ("/v1/auth/login", "post", "email", True, ["a@example.com"], ["i@s.wa2.test"]),
        ("/v1/auth/forgot-password", "post", "email", True,
         ["a@example.com"], ["8ux@y.test", "a@x.onion"]),
        ("/v1/auth/register", "post", "email", True, ["a@example.com"], ["a@b.invalid"]),
    ],
)  # fmt: skip
def test_the_document_states_what_the_service_refuses(
    path: str,
    verb: str,
    name: str,
    required: bool,
    accepted: list[object],
    refused: list[object],
) -> None:
    schema, is_required = _field(path, verb, name)
    assert is_required is required
    for value in accepted:
        assert _valid(schema, value), value
    for value in refused:
        assert not _valid(schema, value), value


def test_a_site_is_named_by_more_than_spaces() -> None:
    # U+001C to U+001F are spaces to the service (str.strip), though not to every "\S".
    body = {"$ref": "#/components/schemas/iot.auth.v1.IssueSiteTokenRequest"}
    assert _valid(body, {"site_id": "f3f1b4be", "client_secret": "s"})
    assert _valid(body, {"domain": "plant.example.com", "client_secret": "s"})
    for blank in _BLANKS:
        assert not _valid(body, {"site_id": blank, "client_secret": "s"}), blank
        assert not _valid(body, {"domain": blank, "client_secret": "s"}), blank


def test_bounds_of_a_64_bit_integer_are_a_pattern() -> None:
    # JSON Schema's minimum says nothing of the string that proto JSON makes of an int64.
    field = telemetry_pb2.WatchStreamReadingsRequest.DESCRIPTOR.fields_by_name["last_event_id"]
    with pytest.raises(ValueError, match="pattern"):
        check_string_bounds(field, {"type": "string"}, options_pb2.FieldRules(minimum=0))
    check_string_bounds(field, {"type": "string"}, options_pb2.FieldRules(pattern="^[0-9]+$"))
