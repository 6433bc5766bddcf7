"""The gateway in front of the real services, over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.serve import start_gateway, stop_gateway
from iotkit.config import SERVICES
from services.auth import rules
from tests.conftest import Suite
from tests.support import PASSWORD, new_email, rest_login


@pytest.fixture
async def client(suite: Suite) -> AsyncIterator[httpx.AsyncClient]:
    server, port, task = await start_gateway(suite.settings, "127.0.0.1", 0)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        yield http
    await stop_gateway(server, task)


async def test_register_login_me_refresh_logout(client: httpx.AsyncClient) -> None:
    address = new_email()
    registered = await client.post(
        "/v1/auth/register",
        json={"email": address, "password": PASSWORD, "display_name": "Ann", "mfa_enabled": False},
    )
    assert registered.status_code == 201
    body = registered.json()
    assert body == {
        "http_status_code": 201,
        "success": True,
        "message": "User registered successfully",
        "data": body["data"],
    }
    user = body["data"]["user"]
    assert user["email"] == address and user["is_verified"] is False and user["role"] == "user"
    assert "password" not in registered.text and "argon2" not in registered.text

    logged = await client.post("/v1/auth/login", json={"email": address, "password": PASSWORD})
    tokens = logged.json()["data"]
    assert logged.json()["message"] == "Login successful"
    assert set(tokens) >= {
        "user",
        "profile",
        "access_token",
        "refresh_token",
        "expires_in",
        "token_type",
        "mfa_required",
    }
    assert isinstance(tokens["expires_in"], int) and tokens["token_type"] == "bearer"
    assert tokens["user"]["last_login_at"].endswith("Z")

    me = await client.get(
        "/v1/auth/me", headers={"authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["data"]["user"]["uuid"] == user["uuid"]
    assert me.json()["data"]["profile"]["display_name"] == "Ann"

    info = await client.get(
        "/v1/auth/token-info", headers={"authorization": f"Bearer {tokens['access_token']}"}
    )
    assert set(info.json()["data"]) >= {"scopes", "expires_at", "created_at"}

    rotated = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200
    fresh = rotated.json()["data"]["access_token"]
    out = await client.post("/v1/auth/logout", headers={"authorization": f"Bearer {fresh}"})
    assert out.status_code == 200 and out.json()["message"] == "Logged out successfully"
    gone = await client.get("/v1/auth/me", headers={"authorization": f"Bearer {fresh}"})
    assert gone.status_code == 401
    assert gone.headers["www-authenticate"].lower().startswith("bearer")


async def test_reused_refresh_token_revokes_the_session(client: httpx.AsyncClient) -> None:
    tokens = await rest_login(client)
    first = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    again = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert again.status_code == 401
    newest = first.json()["data"]["access_token"]
    assert (
        await client.get("/v1/auth/me", headers={"authorization": f"Bearer {newest}"})
    ).status_code == 401


async def test_validation_answers_every_field_with_the_seed_message(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.post(
        "/v1/auth/register",
        json={"email": "no-at-sign", "password": "weakpassword", "display_name": ""},
    )
    assert answer.status_code == 400
    body = answer.json()
    assert body["success"] is False and body["message"] == "Validation failed"
    assert body["error"]["error_code"] == "VALIDATION_FAILED"
    assert body["error"]["path"] == "/v1/auth/register"
    assert body["data"]["errors"] == [
        {"field": "email", "message": rules.MSG_EMAIL_FORMAT},
        {"field": "password", "message": rules.MSG_PASSWORD_WEAK},
        {"field": "display_name", "message": rules.MSG_DISPLAY_NAME},
    ]


async def test_duplicate_email_is_409(client: httpx.AsyncClient) -> None:
    address = new_email()
    await client.post("/v1/auth/register", json={"email": address, "password": PASSWORD})
    again = await client.post("/v1/auth/register", json={"email": address, "password": PASSWORD})
    assert again.status_code == 409
    assert again.json()["error"]["error_code"] == "EMAIL_TAKEN"


async def test_unknown_email_and_wrong_password_answer_the_same(client: httpx.AsyncClient) -> None:
    tokens = await rest_login(client)
    wrong = await client.post(
        "/v1/auth/login", json={"email": tokens["user"]["email"], "password": "Wr0ng!pass"}
    )
    unknown = await client.post("/v1/auth/login", json={"email": new_email(), "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["message"] == unknown.json()["message"] == "Invalid email or password"
    assert wrong.json()["error"]["error_code"] == unknown.json()["error"]["error_code"]


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b'{"email": 5, "password": "x"}', "email"),
        (
            b'{"email": "a@example.com", "password": "Str0ng!pass", "mfa_enabled": "sometimes"}',
            "mfa_enabled",
        ),
        (b'{"email": "a@example.com", "password": "Str0ng!pass", "is_admin": true}', "is_admin"),
    ],
)
async def test_malformed_bodies_are_400_naming_the_field(
    client: httpx.AsyncClient, content: bytes, field: str | None
) -> None:
    answer = await client.post(
        "/v1/auth/register", content=content, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400
    body = answer.json()
    assert body["success"] is False and body["error"]["status"] == 400
    if field is not None:
        assert [e["field"] for e in body["data"]["errors"]] == [field]
    assert "Traceback" not in answer.text


@pytest.mark.parametrize("header", [None, "Bearer forged.token.value", "Token abc"])
async def test_missing_or_forged_token_is_401(
    client: httpx.AsyncClient, header: str | None
) -> None:
    headers = {"authorization": header} if header else {}
    answer = await client.get("/v1/auth/me", headers=headers)
    assert answer.status_code == 401
    assert answer.json()["error"]["error_code"] == "UNAUTHENTICATED"


async def test_unknown_route_and_wrong_method(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/nowhere")
    assert missing.status_code == 404 and missing.json()["error"]["error_code"] == "NOT_FOUND"
    wrong = await client.get("/v1/auth/login")
    assert wrong.status_code == 405 and wrong.json()["success"] is False


async def test_system_status_through_the_gateway(client: httpx.AsyncClient) -> None:
    await rest_login(client)
    answer = await client.get("/v1/system/status")
    assert answer.status_code == 200
    status = answer.json()["data"]
    assert status["status"] == "healthy"
    # Every service serves an API of its own, chat included, and is healthy.
    assert [state["service"] for state in status["service_states"]] == list(SERVICES)
    for state in status["service_states"]:
        assert state["apis"], state["service"]
        assert status["services"][state["service"]] == state["status"] == "healthy"
    (chat,) = [state for state in status["service_states"] if state["service"] == "chat"]
    assert chat["apis"] == ["iot.chat.v1.ChatService"]
    for name in ("database", "storage", "email", "cache", "analytics_engine"):
        assert status["services"][name] == "healthy"
    assert (
        status["database"] is True
        and status["storage"] is True
        and status["analytics_engine"] is True
    )
    assert status["metrics"]["active_users"] == 1
    assert (
        isinstance(status["metrics"]["total_requests"], int)
        and status["metrics"]["total_requests"] > 0
    )
    assert isinstance(status["uptime"], (int, float)) and status["version"]


async def test_jwks_is_bare_and_verifies_login_tokens(client: httpx.AsyncClient) -> None:
    import jwt

    tokens = await rest_login(client)
    jwks = (await client.get("/.well-known/jwks.json")).json()
    assert set(jwks) == {"keys"}
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(tokens["access_token"])["kid"]]
    claims = jwt.decode(tokens["access_token"], key.key, algorithms=["EdDSA"], issuer="iotsuite")
    assert claims["sub"] == tokens["user"]["uuid"]


async def test_nul_characters_in_a_body_or_a_query_are_400_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    registered = await client.post(
        "/v1/auth/register",
        json={"email": new_email(), "password": PASSWORD, "display_name": "A\u0000nn"},
    )
    assert registered.status_code == 400
    body = registered.json()
    assert body["error"]["error_code"] == "VALIDATION_FAILED"
    assert body["data"] == {
        "errors": [{"field": "display_name", "message": "must not contain NUL characters"}]
    }

    token = (await rest_login(client))["access_token"]
    searched = await client.get(
        "/v1/devices?search=lab%00", headers={"authorization": f"Bearer {token}"}
    )
    assert searched.status_code == 400
    assert searched.json()["data"] == {
        "errors": [{"field": "search", "message": "must not contain NUL characters"}]
    }
