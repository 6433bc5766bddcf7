"""Issue 6 end to end through the gateway, over real HTTP into the real auth service
with a real SMTP server and the real Redis, on SQLite and PostgreSQL.

A new user registers, receives the verification email, verifies, enables MFA
and logs in with a TOTP code, sees two sessions and revokes one, reads their
security log, downloads their data in each format and resets a forgotten
password; an admin lists users, reads one's security_info and deactivates
them; a site obtains a token with its client secret.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit
from xml.etree import ElementTree

import httpx
import pytest

from gateway.serve import start_gateway, stop_gateway
from services.auth import rules
from tests.conftest import Backend
from tests.service.auth_support import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    CHROME,
    NEW_PASSWORD,
    Mailbox,
    smtp_server,
    start_auth,
    totp_code,
)
from tests.support import PASSWORD, new_email


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with smtp_server() as box:
        yield box


@pytest.fixture
async def client(
    backend: Backend, mailbox: Mailbox, redis_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    async with start_auth(backend, mailbox=mailbox, redis_url=redis_url) as auth:
        server, port, task = await start_gateway(auth.suite.settings, "127.0.0.1", 0)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=10, headers={"user-agent": CHROME}
        ) as http:
            yield http
        await stop_gateway(server, task)


def auth_header(token: str, agent: str = CHROME) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", "user-agent": agent}


def data(answer: httpx.Response, status: int = 200) -> dict:  # type: ignore[type-arg]
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["success"] is True and body["http_status_code"] == status
    return body["data"]  # type: ignore[no-any-return]


def local(url: str) -> str:
    """The path and query of a download URL (its host is IOT_PUBLIC_URL's)."""
    parts = urlsplit(url)
    assert parts.netloc == "iot.example.com"
    return f"{parts.path}?{parts.query}"


async def login(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, **extra: str
) -> dict:  # type: ignore[type-arg]
    return data(
        await client.post("/v1/auth/login", json={"email": email, "password": password, **extra})
    )


async def test_a_user_goes_through_every_account_feature(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    email = new_email()
    registered = await client.post(
        "/v1/auth/register", json={"email": email, "password": PASSWORD, "display_name": "Ann"}
    )
    assert data(registered, 201)["user"]["is_verified"] is False
    token = await mailbox.token(email, "verify")
    verified = await client.post("/v1/auth/verify-email", json={"token": token})
    assert verified.json()["message"] == "Email verified successfully"
    assert data(verified)["user"]["is_verified"] is True
    again = await client.post("/v1/auth/verify-email", json={"token": token})
    assert again.status_code == 401 and again.json()["error"]["error_code"] == "UNAUTHENTICATED"

    first = await login(client, email)
    setup = data(
        await client.post("/v1/auth/mfa/setup", json={}, headers=auth_header(first["access_token"]))
    )
    assert setup["otpauth_uri"].startswith("otpauth://totp/")
    enabled = data(
        await client.post(
            "/v1/auth/mfa/enable",
            json={"code": totp_code(setup["secret"])},
            headers=auth_header(first["access_token"]),
        )
    )
    assert enabled["user"]["mfa_enabled"] is True and len(enabled["recovery_codes"]) == 10
    pending = await login(client, email)
    assert pending["mfa_required"] is True and pending["access_token"] == ""
    mfa = await login(client, email, mfa_code=totp_code(setup["secret"], steps_ahead=1))
    assert mfa["access_token"] and mfa["mfa_required"] is False

    sessions = data(
        await client.get("/v1/security/sessions", headers=auth_header(mfa["access_token"]))
    )["sessions"]
    assert len(sessions) == 2
    assert {s["is_current"] for s in sessions} == {True, False}
    assert all(s["device_info"].startswith("Chrome 120") for s in sessions)
    assert all(s["ip_address"] == "127.0.0.1" for s in sessions)
    other = next(s for s in sessions if not s["is_current"])
    revoked = await client.delete(
        f"/v1/security/sessions/{other['id']}", headers=auth_header(mfa["access_token"])
    )
    assert data(revoked)["session_id"] == other["id"]
    gone = await client.get("/v1/auth/me", headers=auth_header(first["access_token"]))
    assert gone.status_code == 401

    logs = data(
        await client.get(
            "/v1/security/logs?page=1&limit=50", headers=auth_header(mfa["access_token"])
        )
    )
    assert logs["pagination"] == {
        "page": 1,
        "limit": 50,
        "total": len(logs["logs"]),
        "total_pages": 1,
    }
    actions = [entry["action"] for entry in logs["logs"]]
    assert actions[:5] == [
        "session_revoked",
        "login_success",
        "mfa_enabled",
        "login_success",
        "email_verified",
    ]
    assert logs["logs"][0]["ip_address"] == "127.0.0.1"
    assert logs["logs"][0]["user_agent"] == CHROME
    assert logs["logs"][1]["details"]["method"] == "password+totp"

    header = auth_header(mfa["access_token"])
    for fmt in ("json", "csv", "xml"):
        prepared = data(
            await client.post("/v1/security/download-data", json={"format": fmt}, headers=header)
        )
        assert prepared["format"] == fmt and isinstance(prepared["file_size"], int)
        # The link is the credential: no Authorization header.
        download = await client.get(local(prepared["download_url"]))
        assert download.status_code == 200
        # The file as announced; on the wire it may be gzipped (Content-Encoding), so
        # Content-Length is then the compressed size and the decoded body is compared.
        assert len(download.content) == prepared["file_size"]
        assert download.headers["x-content-type-options"] == "nosniff"
        if fmt == "json":
            assert download.headers["content-type"] == "application/json"
            assert json.loads(download.content)["user"]["email"] == email
        elif fmt == "csv":
            assert download.headers["content-type"].startswith("text/csv")
            rows = list(csv.DictReader(io.StringIO(download.text)))
            assert {"section": "user", "item": "", "field": "email", "value": email} in rows
        else:
            assert download.headers["content-type"] == "application/xml"
            assert ElementTree.fromstring(download.content).findtext("user/email") == email
        assert setup["secret"].encode() not in download.content
        assert b"$argon2" not in download.content
    for fmt in ("json", "zip"):
        offline = data(
            await client.post("/v1/resilience/offline-data", json={"format": fmt}, headers=header)
        )
        assert offline["data_summary"] == {
            "profile_data": True,
            "security_logs": True,
            "user_preferences": True,
        }
        download = await client.get(local(offline["download_url"]))
        assert download.status_code == 200 and len(download.content) == offline["file_size"]
        if fmt == "zip":
            assert download.headers["content-type"] == "application/zip"
            with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
                assert "security_logs.json" in archive.namelist()
    forged = await client.get(local(offline["download_url"]).replace("signature=", "signature=x"))
    assert forged.status_code == 401 and forged.json()["message"] == "Invalid or expired link"

    forgot = await client.post("/v1/auth/forgot-password", json={"email": email})
    unknown = await client.post("/v1/auth/forgot-password", json={"email": new_email()})
    assert forgot.status_code == unknown.status_code == 200
    assert forgot.json() == unknown.json()
    reset_token = await mailbox.token(email, "reset")
    weak = await client.post(
        "/v1/auth/reset-password", json={"token": reset_token, "password": "short"}
    )
    assert weak.status_code == 400
    assert weak.json()["data"]["errors"] == [
        {"field": "password", "message": rules.MSG_PASSWORD_SHORT}
    ]
    reset = await client.post(
        "/v1/auth/reset-password", json={"token": reset_token, "password": NEW_PASSWORD}
    )
    assert data(reset)["sessions_revoked"] == 1
    assert (await client.get("/v1/auth/me", headers=header)).status_code == 401
    recovered = await login(client, email, NEW_PASSWORD, mfa_code=enabled["recovery_codes"][0])
    assert recovered["access_token"]


async def test_login_answers_any_wrong_password_alike_and_says_when_a_code_is_needed(
    client: httpx.AsyncClient,
) -> None:
    email = new_email()
    data(await client.post("/v1/auth/register", json={"email": email, "password": PASSWORD}), 201)
    answers = []
    # A password that breaks the registration rules is as wrong as any other.
    for wrong in ("short", "Wr0ng!pass"):
        answer = await client.post("/v1/auth/login", json={"email": email, "password": wrong})
        body = answer.json()
        answers.append(
            (answer.status_code, body["message"], body["data"], body["error"]["error_code"])
        )
    assert (
        answers[0]
        == answers[1]
        == (401, "Invalid email or password", {"errors": []}, "INVALID_CREDENTIALS")
    )
    empty = await client.post("/v1/auth/login", json={"email": email, "password": ""})
    assert empty.status_code == 400
    assert empty.json()["data"]["errors"] == [
        {"field": "password", "message": rules.MSG_PASSWORD_REQUIRED}
    ]

    first = await login(client, email)
    header = auth_header(first["access_token"])
    setup = data(await client.post("/v1/auth/mfa/setup", json={}, headers=header))
    code = {"code": totp_code(setup["secret"])}
    data(await client.post("/v1/auth/mfa/enable", json=code, headers=header))
    pending = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    needed = "Enter the code from your authenticator app or a recovery code"
    assert pending.json()["message"] == needed
    assert data(pending)["mfa_required"] is True and data(pending)["message"] == needed
    done = await client.post(
        "/v1/auth/login",
        json={
            "email": email,
            "password": PASSWORD,
            "mfa_code": totp_code(setup["secret"], steps_ahead=1),
        },
    )
    assert done.json()["message"] == "Login successful"
    assert data(done)["access_token"] and data(done)["message"] == ""


async def test_an_admin_manages_users_and_sites(client: httpx.AsyncClient) -> None:
    email = new_email()
    data(await client.post("/v1/auth/register", json={"email": email, "password": PASSWORD}), 201)
    user = await login(client, email)
    await client.post("/v1/auth/login", json={"email": email, "password": "Wr0ng!pass"})
    forbidden = await client.get("/v1/admin/users", headers=auth_header(user["access_token"]))
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["error_code"] == "MISSING_SCOPE"

    admin = auth_header((await login(client, ADMIN_EMAIL, ADMIN_PASSWORD))["access_token"])
    listed = data(await client.get(f"/v1/admin/users?search={email}&limit=5", headers=admin))
    assert [u["email"] for u in listed["users"]] == [email]
    assert listed["pagination"]["total"] == 1
    uuid = listed["users"][0]["uuid"]
    detail = data(await client.get(f"/v1/admin/users/{uuid}", headers=admin))
    assert detail["security_info"]["total_sessions"] == 1
    assert detail["security_info"]["failed_login_attempts"] == 1
    assert detail["security_info"]["last_security_incident"].endswith("Z")
    assert detail["user"]["verification_pending"] is True
    assert "verification_token" not in detail["user"] and "reset_token" not in detail["user"]
    bad_role = await client.patch(f"/v1/admin/users/{uuid}", json={"role": "god"}, headers=admin)
    assert bad_role.status_code == 400
    assert bad_role.json()["data"]["errors"] == [{"field": "role", "message": "Invalid role"}]
    off = await client.patch(f"/v1/admin/users/{uuid}", json={"is_active": False}, headers=admin)
    assert off.json()["message"] == "User updated successfully"
    assert data(off)["user"]["is_active"] is False
    assert (
        await client.get("/v1/auth/me", headers=auth_header(user["access_token"]))
    ).status_code == 401
    refused = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert refused.status_code == 403

    account = data(
        await client.post(
            "/v1/admin/accounts", json={"email": new_email(), "name": "Plant Co"}, headers=admin
        ),
        201,
    )
    assert set(account) == {
        "id",
        "email",
        "name",
        "is_active",
        "created_at",
        "max_concurrent_batches",
        "owner_user_id",
    }
    created = data(
        await client.post(
            f"/v1/admin/accounts/{account['id']}/sites",
            json={"domain": "plant-7.example.com", "name": "Line 7"},
            headers=admin,
        ),
        201,
    )
    assert set(created["site"]) == {"id", "account_id", "domain", "name", "is_active", "created_at"}
    secret = created["client_secret"]
    listed_sites = await client.get(f"/v1/admin/accounts/{account['id']}/sites", headers=admin)
    assert secret not in listed_sites.text
    token = data(
        await client.post(
            "/v1/sites/token", json={"domain": "plant-7.example.com", "client_secret": secret}
        )
    )
    assert set(token) == {"token", "expires_at", "site_id", "domain"}
    assert token["site_id"] == created["site"]["id"]
    info = data(await client.get("/v1/auth/token-info", headers=auth_header(token["token"])))
    assert info["scopes"] == ["telemetry:read", "telemetry:write"]
    assert info["token_type"] == "site"
    wrong = await client.post(
        "/v1/sites/token", json={"site_id": created["site"]["id"], "client_secret": "nope"}
    )
    unknown = await client.post(
        "/v1/sites/token", json={"domain": "nowhere.example.com", "client_secret": secret}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["message"] == unknown.json()["message"] == "Invalid client credentials"


async def test_abuse_answers(client: httpx.AsyncClient) -> None:
    email = new_email()
    await client.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
    mine = await login(client, email)
    other = await login(client, (await _registered(client)))
    sessions = data(
        await client.get("/v1/security/sessions", headers=auth_header(mine["access_token"]))
    )["sessions"]
    stranger = await client.delete(
        f"/v1/security/sessions/{sessions[0]['id']}", headers=auth_header(other["access_token"])
    )
    assert stranger.status_code == 404

    profile = await client.patch(
        "/v1/profile",
        json={"display_name": "", "tags": "not-a-list"},
        headers=auth_header(mine["access_token"]),
    )
    assert profile.status_code == 400
    assert [e["field"] for e in profile.json()["data"]["errors"]] == ["tags"]
    named = await client.patch(
        "/v1/profile",
        json={"display_name": "", "tags": ["a"], "metadata": {"location": "Italy"}},
        headers=auth_header(mine["access_token"]),
    )
    assert named.json()["data"]["errors"] == [
        {"field": "display_name", "message": rules.MSG_DISPLAY_NAME}
    ]
    updated = await client.patch(
        "/v1/profile",
        json={"tags": ["a", "b"], "metadata": {"location": "Italy"}},
        headers=auth_header(mine["access_token"]),
    )
    assert updated.json()["message"] == "User profile updated successfully"
    assert data(updated)["metadata"] == {"location": "Italy"}
    zoned = await client.patch(
        "/v1/profile",
        json={"metadata": {"location": "Italy", "timezone": "Europe/Rome"}},
        headers=auth_header(mine["access_token"]),
    )
    assert data(zoned)["metadata"]["timezone"] == "Europe/Rome"

    for _ in range(5):
        failed = await client.post(
            "/v1/auth/login", json={"email": email, "password": "Wr0ng!pass"}
        )
        assert failed.status_code == 401
    locked = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert locked.status_code == 429
    assert 890 <= int(locked.headers["retry-after"]) <= 900
    assert locked.json()["error"]["error_code"] == "RATE_LIMITED"

    for route, body in (
        ("/v1/auth/verify-email", {"token": "forged"}),
        ("/v1/auth/reset-password", {"token": "forged", "password": NEW_PASSWORD}),
    ):
        answer = await client.post(route, json=body)
        assert answer.status_code == 401 and answer.json()["message"] == "Invalid or expired token"
    openapi = (await client.get("/openapi.json")).json()
    download = openapi["paths"]["/v1/downloads/{export_id}/{file_name}"]["get"]
    assert set(download["responses"]["200"]["content"]) == {
        "application/json",
        "text/csv",
        "application/xml",
        "application/zip",
    }


async def _registered(client: httpx.AsyncClient) -> str:
    email = new_email()
    await client.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
    return email
