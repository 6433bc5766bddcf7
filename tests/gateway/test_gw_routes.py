"""Routes discovered from the protos, served through real HTTP into real gRPC servers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping

import httpx
import pytest
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from gw_support import Fakes, Probe
from starlette.requests import Request
from starlette.responses import Response

from gateway.app import build_app
from gateway.console import STATIC_DIR
from gateway.discovery import DiscoveryError, discover, proto_files
from gateway.errors import GatewayError
from gateway.routing import Route, RouteTable
from gateway.templates import parse_template
from iot.common.v1 import options_pb2
from iotkit.config import Settings


def test_every_annotated_rpc_of_the_iot_protos_is_discovered() -> None:
    methods = {method.descriptor.full_name: method for method in discover(proto_files())}
    register = methods["iot.auth.v1.AuthService.Register"]
    assert [(b.verb, b.template.source, b.body) for b in register.bindings] == [
        ("POST", "/v1/auth/register", "*")
    ]
    assert register.upstream == "auth"
    assert register.presentation.success_status == 201
    assert register.presentation.public
    assert methods["iot.system.v1.SystemService.GetSystemStatus"].upstream == "auth"
    assert methods["iot.auth.v1.AuthService.GetJwks"].presentation.raw_response
    # No http option: gRPC only.
    assert "iot.system.v1.DiagnosticsService.GetProcessStatus" not in methods


def test_an_annotation_naming_a_missing_field_is_refused_at_startup(probe: Probe) -> None:
    with pytest.raises(DiscoveryError, match="missing_id"):
        discover([probe.bad_file], upstream=lambda _: "devices")


def test_a_service_outside_the_suite_has_no_upstream(probe: Probe) -> None:
    with pytest.raises(DiscoveryError, match="no upstream"):
        discover([probe.file])


def test_client_streaming_rpcs_are_not_exposed(probe: Probe) -> None:
    names = {m.descriptor.name for m in discover([probe.file], upstream=lambda _: "devices")}
    assert "UploadThings" not in names
    assert "WatchThings" in names


async def test_register_answers_201_with_its_success_message(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    response = await client.post(
        "/v1/auth/register", json={"email": "ada@example.com", "password": "S3cret!pass"}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["http_status_code"] == 201
    assert body["success"] is True
    assert body["message"] == "User registered successfully"
    assert body["data"]["user"]["email"] == "ada@example.com"
    # Defaults are emitted, with proto field names.
    assert body["data"]["user"]["is_verified"] is False
    assert body["data"]["profile"]["tags"] == []
    assert body["data"]["user"]["created_at"] == "2026-01-01T00:00:00Z"
    assert "error" not in body
    request, _ = fakes.recorder.last("Register")
    assert request.email == "ada@example.com"
    assert request.password == "S3cret!pass"


async def test_jwks_is_answered_raw_without_the_envelope(client: httpx.AsyncClient) -> None:
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.json() == {
        "keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": "abc", "kid": "k1", "use": "sig", "alg": "EdDSA"}
        ]
    }


async def test_system_status_goes_to_the_auth_address(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    response = await client.get("/v1/system/status")
    assert response.status_code == 200
    body = response.json()
    assert body["message"] == "System status"
    assert body["data"]["status"] == "healthy"
    assert body["data"]["uptime"] == 1.5
    assert body["data"]["dependencies"] == []
    fakes.recorder.last("GetSystemStatus")


async def test_an_unknown_route_is_a_404_envelope(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nowhere")
    assert response.status_code == 404
    body = response.json()
    assert body["success"] is False
    assert body["error"]["error_code"] == "NOT_FOUND"
    assert body["error"]["path"] == "/v1/nowhere"
    assert body["error"]["error"] == "Not Found"
    assert body["data"] == {"errors": []}


async def test_a_known_path_with_the_wrong_method_is_a_405_envelope(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/v1/auth/register")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST, OPTIONS"
    body = response.json()
    assert body["error"]["error_code"] == "METHOD_NOT_ALLOWED"
    assert body["error"]["error"] == "Method Not Allowed"

    response = await client.put("/v1/things/abc")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {
        "GET",
        "HEAD",
        "PATCH",
        "DELETE",
        "OPTIONS",
    }


async def test_client_streaming_route_is_not_served(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/things:upload", json={})
    assert response.status_code == 404


async def test_healthz_is_the_gateway_liveness(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "http_status_code": 200,
        "success": True,
        "message": "OK",
        "data": {"status": "ok"},
    }


async def test_the_console_is_served_with_a_strict_content_security_policy(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    scripts = re.findall(r'src="([^"]+)"', page.text)
    assert scripts == ["/static/js/app.js"]
    script = await client.get("/static/js/app.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    signin = await client.get("/static/js/screens/signin.js")
    assert "/v1/auth/login" in signin.text
    missing = await client.get("/static/../app.py")
    assert missing.status_code == 404


CONSOLE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


async def test_the_console_carries_every_security_header_and_json_answers_none(
    client: httpx.AsyncClient,
) -> None:
    for path in ("/", "/static/js/app.js"):
        console = await client.get(path)
        assert console.headers["content-security-policy"] == CONSOLE_POLICY, path
        assert console.headers["x-content-type-options"] == "nosniff", path
        assert console.headers["referrer-policy"] == "no-referrer", path
        # The gateway does not terminate TLS, so it promises no HTTPS.
        assert "strict-transport-security" not in console.headers, path
    answer = await client.get("/v1/system/status")
    assert answer.headers["content-type"].startswith("application/json")
    for name in (
        "content-security-policy",
        "x-content-type-options",
        "referrer-policy",
        "strict-transport-security",
    ):
        assert name not in answer.headers, name


async def test_head_answers_like_get_without_a_body(client: httpx.AsyncClient) -> None:
    for path in ("/", "/static/js/app.js", "/favicon.ico", "/healthz", "/v1/system/status"):
        got = await client.get(path)
        head = await client.head(path)
        assert head.status_code == got.status_code == 200, path
        assert head.content == b"", path
        assert head.headers["content-type"] == got.headers["content-type"], path
        assert head.headers["content-length"] == str(len(got.content)), path
    missing = await client.head("/v1/nowhere")
    assert (missing.status_code, missing.content) == (404, b"")
    wrong = await client.head("/v1/auth/register")
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "POST, OPTIONS")


async def test_head_of_a_live_stream_answers_its_headers_and_ends_the_call(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    head = await client.head("/v1/things:watch", params={"limit": "-1"})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"].startswith("text/event-stream")
    await asyncio.wait_for(fakes.recorder.stream_cancelled.wait(), 10)


async def test_options_lists_the_methods_of_a_known_path(client: httpx.AsyncClient) -> None:
    things = await client.options("/v1/things/abc")
    assert (things.status_code, things.content) == (204, b"")
    assert things.headers["allow"].split(", ") == ["GET", "HEAD", "PATCH", "DELETE", "OPTIONS"]
    register = await client.options("/v1/auth/register")
    assert (register.status_code, register.headers["allow"]) == (204, "POST, OPTIONS")
    page = await client.options("/")
    assert (page.status_code, page.headers["allow"]) == (204, "GET, HEAD, OPTIONS")
    missing = await client.options("/v1/nowhere")
    assert missing.status_code == 404
    assert missing.json()["error"]["error_code"] == "NOT_FOUND"


async def test_the_favicon_is_the_consoles_svg_icon(client: httpx.AsyncClient) -> None:
    icon = await client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
    assert (
        icon.content.startswith(b"<svg")
        and icon.content == (STATIC_DIR / "favicon.svg").read_bytes()
    )
    page = await client.get("/")
    assert '<link rel="icon" href="/favicon.ico" type="image/svg+xml">' in page.text


def _file_with_message_field(name: str) -> FileDescriptor:
    """A one-RPC proto whose rules take the envelope message from the response's ``name``."""
    proto = descriptor_pb2.FileDescriptorProto(
        name=f"gwmsg/{name}.proto",
        package=f"gwmsg.{name}",
        syntax="proto3",
        dependency=["google/api/annotations.proto", "iot/common/v1/options.proto"],
    )
    proto.message_type.add(name="Ask")
    answer = proto.message_type.add(name="Answer")
    answer.field.add(name="summary", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING)
    method = proto.service.add(name="Svc").method.add(
        name="Do", input_type=f".gwmsg.{name}.Ask", output_type=f".gwmsg.{name}.Answer"
    )
    method.options.Extensions[annotations_pb2.http].post = "/v1/do"
    method.options.Extensions[options_pb2.rules].message_field = name
    return descriptor_pool.Default().Add(proto)


def test_the_message_field_must_be_a_string_field_of_the_response() -> None:
    (method,) = discover([_file_with_message_field("summary")], upstream=lambda _: "devices")
    assert method.presentation.message_field == "summary"
    with pytest.raises(DiscoveryError, match="message_field 'nope'"):
        discover([_file_with_message_field("nope")], upstream=lambda _: "devices")


async def test_odd_paths_answer_404_and_405_in_the_envelope(client: httpx.AsyncClient) -> None:
    # A newline (encoded or not by the client, it reaches the app decoded) once
    # fell outside the catch-all route and answered Starlette's text/plain 404.
    for path in ("/v1/nowhere%0A", "/%0A", "/v1/auth/register%0Ax", "/v1/%00/%FF", "/%2F%2F"):
        for method in ("GET", "POST", "OPTIONS", "HEAD"):
            response = await client.request(method, path)
            assert response.status_code == 404, (method, path)
            assert response.headers["content-type"] == "application/json", (method, path)
            if method != "HEAD":
                assert response.json()["error"]["error_code"] == "NOT_FOUND", (method, path)
    # A newline inside a path variable reaches the route, whose 405 is the envelope too.
    wrong = await client.put("/v1/things/a%0Ab")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["error_code"] == "METHOD_NOT_ALLOWED"


def test_a_path_allows_only_the_methods_of_its_most_specific_template() -> None:
    table = build_app(Settings()).state.route_table
    # /v1/anomalies/{anomaly_id} (PATCH) also matches the literal export path,
    # which once made OPTIONS and 405s list PATCH for the export.
    export = table.routes_for("/v1/anomalies/export")
    assert table.allowed(export) == ["GET", "HEAD", "OPTIONS"]
    with pytest.raises(GatewayError) as refused:
        table.match("PATCH", "/v1/anomalies/export")
    assert refused.value.status == 405
    assert refused.value.headers["Allow"] == "GET, HEAD, OPTIONS"
    anomaly = table.routes_for("/v1/anomalies/0b6e4c1e-3f0c-4f7e-9a55-3b1f1c2d4e5f")
    assert "PATCH" in table.allowed(anomaly)


def test_each_path_finds_its_template_whatever_its_slash_count() -> None:
    """The table looks only at the routes that can match a path's number of segments; an
    open-ended ``**`` template matches any number of them from its own on."""

    async def handler(request: Request, params: Mapping[str, str]) -> Response:
        raise AssertionError("not called")

    sources = [
        ("GET", "/"),
        ("GET", "/healthz"),
        ("GET", "/v1/files/{path=**}"),
        ("GET", "/v1/files/{file_id}"),
        ("POST", "/v1/files/{file_id}:copy"),
        ("GET", "/v1/{name=shelves/*}/books/{book}"),
    ]
    table = RouteTable(Route(verb, parse_template(text), handler) for verb, text in sources)

    def found(verb: str, path: str) -> tuple[str, dict[str, str]]:
        match = table.match(verb, path)
        return match.route.template.source, match.params

    assert found("GET", "/") == ("/", {})
    assert found("GET", "/healthz") == ("/healthz", {})
    assert found("GET", "/v1/files/a") == ("/v1/files/{file_id}", {"file_id": "a"})
    assert found("GET", "/v1/files/a/b/c") == ("/v1/files/{path=**}", {"path": "a/b/c"})
    assert found("POST", "/v1/files/a:copy") == ("/v1/files/{file_id}:copy", {"file_id": "a"})
    assert found("GET", "/v1/shelves/s%201/books/b") == (
        "/v1/{name=shelves/*}/books/{book}",
        {"name": "shelves/s 1", "book": "b"},
    )
    for path in ("//", "/healthz/", "/v1/files", "/v1/shelves/s/books", "/v1/a/b/c/d/e/f/g/h"):
        with pytest.raises(GatewayError) as missing:
            table.match("GET", path)
        assert missing.value.status == 404, path
    assert table.allowed(table.routes_for("/v1/files/a")) == ["GET", "HEAD", "OPTIONS"]
