"""User administration over real gRPC, the first admin from the environment and from
``iot admin create``; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from iot.auth.v1 import admin_pb2, auth_pb2, auth_pb2_grpc, security_pb2, sites_pb2
from iotkit.config import ConfigError
from iotkit.errors import FieldViolation, reason_of, violations_of
from iotsuite.admin_cli import create_admin_account
from iotsuite.cli import main
from services.auth import rules
from tests.conftest import Backend, start_suite
from tests.service.auth_support import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    Auth,
    Mailbox,
    start_auth,
)
from tests.support import PASSWORD, bearer, new_email


@pytest.fixture
async def auth(backend: Backend, mailbox: Mailbox) -> AsyncIterator[Auth]:
    async with start_auth(backend, mailbox=mailbox) as running:
        yield running


async def expect(call: object, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == code, caught.value.details()
    return caught.value


async def test_admin_routes_refuse_users(auth: Auth) -> None:
    _, login = await auth.user()
    metadata = bearer(login.access_token)
    for call in (
        auth.admin.ListUsers(admin_pb2.ListUsersRequest(), metadata=metadata),
        auth.admin.GetUser(admin_pb2.GetUserRequest(uuid=login.user.uuid), metadata=metadata),
        auth.admin.UpdateUser(
            admin_pb2.UpdateUserRequest(uuid=login.user.uuid, role="admin"), metadata=metadata
        ),
    ):
        error = await expect(call, grpc.StatusCode.PERMISSION_DENIED)
        assert reason_of(error) == "MISSING_SCOPE"


async def test_list_searches_and_pages(auth: Auth) -> None:
    admin = bearer((await auth.admin_login()).access_token)
    tag = new_email().split("@")[0]
    emails = [await auth.register(f"{tag}-{i}@example.com") for i in range(5)]
    page = await auth.admin.ListUsers(
        admin_pb2.ListUsersRequest(search=tag.upper(), limit=2, page=2), metadata=admin
    )
    assert (page.pagination.total, page.pagination.total_pages, page.pagination.page) == (5, 3, 2)
    assert [u.email for u in page.users] == [emails[2], emails[1]]  # newest first
    assert page.users[0].profile.display_name == f"{tag}-2"
    by_name = await auth.admin.ListUsers(
        admin_pb2.ListUsersRequest(search="_%"), metadata=admin
    )  # wildcards are literal
    assert by_name.pagination.total == 0
    admins = await auth.admin.ListUsers(admin_pb2.ListUsersRequest(role="admin"), metadata=admin)
    assert [u.email for u in admins.users] == [ADMIN_EMAIL]
    error = await expect(
        auth.admin.ListUsers(admin_pb2.ListUsersRequest(role="root"), metadata=admin),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert violations_of(error) == [FieldViolation("role", rules.MSG_ROLE)]


@pytest.mark.parametrize("length", [70_000, rules.SEARCH_MAX + 1])
async def test_a_search_longer_than_any_email_is_400_not_unavailable(
    auth: Auth, length: int
) -> None:
    # On SQLite a LIKE pattern past 50,000 bytes is refused as "too complex", which the
    # users' and the accounts' listings answered UNAVAILABLE (retry shortly), forever.
    admin = bearer((await auth.admin_login()).access_token)
    search = "A" * length
    for call in (
        auth.admin.ListUsers(admin_pb2.ListUsersRequest(search=search), metadata=admin),
        auth.accounts.ListAccounts(sites_pb2.ListAccountsRequest(search=search), metadata=admin),
    ):
        error = await expect(call, grpc.StatusCode.INVALID_ARGUMENT)
        [violation] = violations_of(error)
        assert violation.field == "search"
    # As long as an email is still a search, surrounding spaces aside.
    longest = " " + "a" * rules.SEARCH_MAX + " "
    found = await auth.admin.ListUsers(admin_pb2.ListUsersRequest(search=longest), metadata=admin)
    assert found.pagination.total == 0


async def test_detail_shows_pending_links_and_security_info_without_tokens(
    auth: Auth, mailbox: Mailbox
) -> None:
    admin = bearer((await auth.admin_login()).access_token)
    email = await auth.register()
    await auth.login(email)
    await auth.login(email)
    with pytest.raises(grpc.aio.AioRpcError):
        await auth.login(email, "Wr0ng!pass")
    await auth.auth.ForgotPassword(auth_pb2.ForgotPasswordRequest(email=email))
    verify_token = await mailbox.token(email, "verify")
    reset_token = await mailbox.token(email, "reset")
    listed = await auth.admin.ListUsers(admin_pb2.ListUsersRequest(search=email), metadata=admin)
    detail = await auth.admin.GetUser(
        admin_pb2.GetUserRequest(uuid=listed.users[0].uuid), metadata=admin
    )
    assert detail.user.email == email and detail.profile.display_name
    assert detail.user.verification_pending and detail.user.HasField("verification_expires")
    assert detail.user.reset_pending and detail.user.HasField("reset_token_expiry")
    assert detail.security_info.total_sessions == 2
    assert detail.security_info.active_sessions == 2
    assert detail.security_info.failed_login_attempts == 1
    assert detail.security_info.HasField("last_security_incident")
    for token in (verify_token, reset_token):
        assert token not in str(detail)
    for uuid in ("nope", "00000000-0000-0000-0000-000000000000"):
        await expect(
            auth.admin.GetUser(admin_pb2.GetUserRequest(uuid=uuid), metadata=admin),
            grpc.StatusCode.NOT_FOUND,
        )


async def test_deactivating_ends_sessions_and_is_logged(auth: Auth) -> None:
    admin_login = await auth.admin_login()
    admin = bearer(admin_login.access_token)
    email, login = await auth.user()
    uuid = login.user.uuid
    invalid = await expect(
        auth.admin.UpdateUser(admin_pb2.UpdateUserRequest(uuid=uuid, role="owner"), metadata=admin),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert violations_of(invalid) == [FieldViolation("role", rules.MSG_ROLE)]

    updated = await auth.admin.UpdateUser(
        admin_pb2.UpdateUserRequest(uuid=uuid, is_active=False, is_verified=True), metadata=admin
    )
    assert not updated.user.is_active and updated.user.is_verified
    assert updated.security_info.active_sessions == 0
    await expect(
        auth.auth.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(login.access_token)),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    await expect(
        auth.auth.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=login.refresh_token)),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    denied = await expect(auth.login(email), grpc.StatusCode.PERMISSION_DENIED)
    assert reason_of(denied) == "ACCOUNT_DISABLED"

    await auth.admin.UpdateUser(
        admin_pb2.UpdateUserRequest(uuid=uuid, is_active=True, role="admin"), metadata=admin
    )
    promoted = await auth.login(email)
    info = await auth.auth.GetTokenInfo(
        auth_pb2.GetTokenInfoRequest(), metadata=bearer(promoted.access_token)
    )
    assert "admin" in info.scopes
    logs = await auth.security.ListSecurityLogs(
        security_pb2.ListSecurityLogsRequest(action="admin_update"),
        metadata=bearer(promoted.access_token),
    )
    changes = [dict(entry.details["changes"]) for entry in logs.logs]
    assert changes == [
        {"is_active": True, "role": "admin"},
        {"is_active": False, "is_verified": True},
    ]
    assert all(entry.details["by"] == admin_login.user.uuid for entry in logs.logs)


async def test_an_admin_cannot_demote_or_deactivate_themselves(auth: Auth) -> None:
    login = await auth.admin_login()
    # Their own id in capitals is still their own id.
    for uuid in (login.user.uuid, login.user.uuid.upper()):
        for change in ({"role": "user"}, {"is_active": False}):
            error = await expect(
                auth.admin.UpdateUser(
                    admin_pb2.UpdateUserRequest(uuid=uuid, **change),  # type: ignore[arg-type]
                    metadata=bearer(login.access_token),
                ),
                grpc.StatusCode.FAILED_PRECONDITION,
            )
            assert reason_of(error) == "SELF_MODIFICATION"


async def test_a_user_id_is_found_in_any_of_its_spellings(auth: Auth) -> None:
    # GetUser looked the id up as written: in capitals (or braces) the user was not found.
    admin = bearer((await auth.admin_login()).access_token)
    _, login = await auth.user()
    uuid = login.user.uuid
    for spelling in (uuid.upper(), "{" + uuid + "}", uuid.replace("-", "")):
        shown = await auth.admin.GetUser(admin_pb2.GetUserRequest(uuid=spelling), metadata=admin)
        assert shown.user.uuid == uuid
        changed = await auth.admin.UpdateUser(
            admin_pb2.UpdateUserRequest(uuid=spelling, is_verified=True), metadata=admin
        )
        assert changed.user.uuid == uuid


async def test_the_environment_creates_the_first_admin_only_once(backend: Backend) -> None:
    async with start_auth(backend) as auth:
        first = await auth.admin_login()
        assert first.user.role == "admin" and first.user.is_verified
        taken = await auth.register()
    # A restart with other variables: the existing account is left alone.
    suite = await start_suite(backend, ("auth",), admin_email=taken, admin_password=ADMIN_PASSWORD)
    try:
        async with grpc.aio.insecure_channel(suite.address("auth")) as channel:
            stub = auth_pb2_grpc.AuthServiceStub(channel)
            login = await stub.Login(auth_pb2.LoginRequest(email=taken, password=PASSWORD))
            assert login.user.role == "user"
    finally:
        await suite.aclose()
    with pytest.raises(ConfigError, match="IOT_ADMIN_PASSWORD"):
        await start_suite(backend, ("auth",), admin_email=new_email(), admin_password="weak")


async def test_iot_admin_create_creates_and_promotes(backend: Backend) -> None:
    email = new_email()
    created = await create_admin_account(
        backend.settings, email=email, password=ADMIN_PASSWORD, schema=backend.schema("auth")
    )
    assert created.action == "created"
    async with start_auth(backend) as auth:
        assert (await auth.login(email, ADMIN_PASSWORD)).user.role == "admin"
        user = await auth.register()
    promoted = await create_admin_account(
        backend.settings,
        email=user,
        password=None,
        schema=backend.schema("auth"),
        ask=lambda: pytest.fail("an existing account keeps its password"),
    )
    assert promoted.action == "promoted"
    async with start_auth(backend) as auth:
        login = await auth.login(user, PASSWORD)
        assert login.user.role == "admin" and login.user.is_verified


async def test_iot_admin_create_ends_the_sessions_of_the_account_it_promotes(
    backend: Backend,
) -> None:
    async with start_auth(backend) as auth:
        email, login = await auth.user()
        old = bearer(login.access_token)
        assert (await auth.auth.GetMe(auth_pb2.GetMeRequest(), metadata=old)).user.role == "user"
        promoted = await create_admin_account(
            backend.settings,
            email=email,
            password=None,
            schema=backend.schema("auth"),
            ask=lambda: pytest.fail("an existing account keeps its password"),
        )
        assert promoted.action == "promoted"
        # The tokens of the old role stop working, as after an admin's change over gRPC.
        await expect(
            auth.auth.GetMe(auth_pb2.GetMeRequest(), metadata=old), grpc.StatusCode.UNAUTHENTICATED
        )
        await expect(
            auth.auth.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=login.refresh_token)),
            grpc.StatusCode.UNAUTHENTICATED,
        )
        again = await auth.login(email)
        assert again.user.role == "admin"
        # Nothing changes the second time, so the new session lives on.
        await create_admin_account(
            backend.settings, email=email, password=None, schema=backend.schema("auth")
        )
        me = await auth.auth.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(again.access_token))
        assert me.user.role == "admin"
        logged = await auth.security.ListSecurityLogs(
            security_pb2.ListSecurityLogsRequest(action="admin_update"),
            metadata=bearer(again.access_token),
        )
        assert [(e.details["by"], e.details["sessions_revoked"]) for e in logged.logs] == [
            ("command-line", 1)
        ]


def test_the_cli_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IOT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("IOT_DATABASE_URL", raising=False)
    assert (
        main(["admin", "create", "--email", "Ann@Example.com", "--password", ADMIN_PASSWORD]) == 0
    )
    assert capsys.readouterr().out.strip() == "created admin ann@example.com"
    assert main(["admin", "create", "--email", "ann@example.com"]) == 0
    assert capsys.readouterr().out.strip() == "promoted admin ann@example.com"
    assert main(["admin", "create", "--email", "bob@example.com", "--password", "weak"]) == 2
    assert "password" in capsys.readouterr().err
    assert (tmp_path / "auth.db").exists()
