"""Profile, security log and sessions over real gRPC, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import jwt
import pytest
from google.protobuf import struct_pb2

from iot.auth.v1 import auth_pb2, profile_pb2, security_pb2
from iotkit.errors import FieldViolation, violations_of
from services.auth import rules
from tests.conftest import Backend
from tests.service.auth_support import CHROME, FIREFOX, NEW_PASSWORD, Auth, start_auth
from tests.support import PASSWORD, bearer


@pytest.fixture
async def auth(backend: Backend) -> AsyncIterator[Auth]:
    async with start_auth(backend) as running:
        yield running


async def expect(call: object, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == code, caught.value.details()
    return caught.value


def tags(*values: object) -> struct_pb2.ListValue:
    listed = struct_pb2.ListValue()
    listed.extend(values)
    return listed


def metadata_of(value: dict[str, object]) -> struct_pb2.Struct:
    built = struct_pb2.Struct()
    built.update(value)
    return built


async def test_profile_reads_and_changes_only_the_fields_given(auth: Auth) -> None:
    _, login = await auth.user()
    metadata = bearer(login.access_token)
    profile = await auth.profile.GetProfile(profile_pb2.GetProfileRequest(), metadata=metadata)
    assert profile.display_name and list(profile.tags) == []

    many = [f"tag-{i}" for i in range(500)]  # no limit on their number
    changed = await auth.profile.UpdateProfile(
        profile_pb2.UpdateProfileRequest(
            display_name=" Ann Lee ",
            tags=tags(*many),
            metadata=metadata_of({"location": "Italy", "theme": {"dark": True}}),
        ),
        metadata=metadata,
    )
    assert changed.display_name == "Ann Lee" and list(changed.tags) == many
    assert changed.metadata["location"] == "Italy"
    assert changed.updated_at.ToDatetime() >= profile.updated_at.ToDatetime()

    only_name = await auth.profile.UpdateProfile(
        profile_pb2.UpdateProfileRequest(display_name="Ann"), metadata=metadata
    )
    assert list(only_name.tags) == many and only_name.metadata["location"] == "Italy"
    cleared = await auth.profile.UpdateProfile(
        profile_pb2.UpdateProfileRequest(tags=tags(), metadata=metadata_of({})), metadata=metadata
    )
    assert list(cleared.tags) == [] and dict(cleared.metadata) == {}
    me = await auth.auth.GetMe(auth_pb2.GetMeRequest(), metadata=metadata)
    assert me.profile.display_name == "Ann"


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (
            profile_pb2.UpdateProfileRequest(display_name=""),
            FieldViolation("display_name", rules.MSG_DISPLAY_NAME),
        ),
        (
            profile_pb2.UpdateProfileRequest(display_name="x" * 101),
            FieldViolation("display_name", rules.MSG_DISPLAY_NAME),
        ),
        (
            profile_pb2.UpdateProfileRequest(tags=tags("a", 1)),
            FieldViolation("tags", rules.MSG_TAGS),
        ),
        (
            profile_pb2.UpdateProfileRequest(metadata=metadata_of({"blob": "x" * 70_000})),
            FieldViolation("metadata", rules.MSG_METADATA),
        ),
        (
            profile_pb2.UpdateProfileRequest(metadata=metadata_of({"timezone": "Mars/Olympus"})),
            FieldViolation("metadata.timezone", rules.MSG_TIMEZONE),
        ),
        (
            profile_pb2.UpdateProfileRequest(metadata=metadata_of({"timezone": "../etc/passwd"})),
            FieldViolation("metadata.timezone", rules.MSG_TIMEZONE),
        ),
        (
            profile_pb2.UpdateProfileRequest(metadata=metadata_of({"timezone": 2})),
            FieldViolation("metadata.timezone", rules.MSG_TIMEZONE),
        ),
    ],
)
async def test_profile_rules_answer_the_field_and_message(
    auth: Auth, request_: profile_pb2.UpdateProfileRequest, expected: FieldViolation
) -> None:
    _, login = await auth.user()
    error = await expect(
        auth.profile.UpdateProfile(request_, metadata=bearer(login.access_token)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert violations_of(error) == [expected]


async def test_security_log_records_each_event_with_address_and_agent(auth: Auth) -> None:
    email = await auth.register()
    with pytest.raises(grpc.aio.AioRpcError):
        await auth.login(email, "Wr0ng!pass", ip="203.0.113.9", agent=FIREFOX)
    first = await auth.login(email, ip="203.0.113.7", agent=CHROME)
    metadata = bearer(first.access_token, ip="203.0.113.7", agent=CHROME)
    rotated = await auth.auth.RefreshToken(
        auth_pb2.RefreshTokenRequest(refresh_token=first.refresh_token)
    )
    with pytest.raises(grpc.aio.AioRpcError):  # reuse: the session ends
        await auth.auth.RefreshToken(
            auth_pb2.RefreshTokenRequest(refresh_token=first.refresh_token),
            metadata=[("x-forwarded-for", "198.51.100.66")],
        )
    assert rotated.access_token
    second = await auth.login(email, ip="203.0.113.7", agent=CHROME)
    metadata = bearer(second.access_token, ip="203.0.113.7", agent=CHROME)
    await auth.profile.UpdateProfile(
        profile_pb2.UpdateProfileRequest(display_name="A"), metadata=metadata
    )
    await auth.auth.ChangePassword(
        auth_pb2.ChangePasswordRequest(current_password=PASSWORD, new_password=NEW_PASSWORD),
        metadata=metadata,
    )
    await auth.auth.Logout(auth_pb2.LogoutRequest(), metadata=metadata)
    third = await auth.login(email, NEW_PASSWORD, ip="203.0.113.7", agent=CHROME)

    logs = await auth.security.ListSecurityLogs(
        security_pb2.ListSecurityLogsRequest(limit=100), metadata=bearer(third.access_token)
    )
    actions = [entry.action for entry in reversed(logs.logs)]
    assert actions == [
        "login_failed",
        "login_success",
        "refresh_token_reuse",
        "login_success",
        "profile_updated",
        "password_changed",
        "logout",
        "login_success",
    ]
    failed, success = logs.logs[-1], logs.logs[-2]
    assert (failed.success, failed.ip_address, failed.user_agent) == (False, "203.0.113.9", FIREFOX)
    assert failed.details["reason"] == "invalid_password"
    assert (success.success, success.ip_address, success.user_agent) == (
        True,
        "203.0.113.7",
        CHROME,
    )
    reuse = next(e for e in logs.logs if e.action == "refresh_token_reuse")
    assert not reuse.success and reuse.ip_address == "198.51.100.66"
    assert logs.pagination.total == 8 and logs.pagination.total_pages == 1

    page = await auth.security.ListSecurityLogs(
        security_pb2.ListSecurityLogsRequest(page=2, limit=3), metadata=bearer(third.access_token)
    )
    assert [e.id for e in page.logs] == [e.id for e in logs.logs[3:6]]
    assert (page.pagination.page, page.pagination.limit, page.pagination.total_pages) == (2, 3, 3)
    only = await auth.security.ListSecurityLogs(
        security_pb2.ListSecurityLogsRequest(action="login_success"),
        metadata=bearer(third.access_token),
    )
    assert {e.action for e in only.logs} == {"login_success"} and only.pagination.total == 3
    bad = await expect(
        auth.security.ListSecurityLogs(
            security_pb2.ListSecurityLogsRequest(limit=101), metadata=bearer(third.access_token)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert [v.field for v in violations_of(bad)] == ["limit"]


async def test_sessions_show_devices_and_can_be_revoked(auth: Auth) -> None:
    email = await auth.register()
    laptop = await auth.login(email, ip="203.0.113.7", agent=CHROME)
    other = await auth.login(email, ip="198.51.100.2", agent=FIREFOX)
    metadata = bearer(laptop.access_token)
    listed = await auth.security.ListSessions(security_pb2.ListSessionsRequest(), metadata=metadata)
    assert len(listed.sessions) == 2
    by_current = {s.is_current: s for s in listed.sessions}
    current_sid = jwt.decode(laptop.access_token, options={"verify_signature": False})["sid"]
    assert by_current[True].id == current_sid
    assert by_current[True].device_info.startswith("Chrome 120 on Mac OS X")
    assert by_current[True].ip_address == "203.0.113.7"
    assert by_current[False].device_info == "Firefox 121 on Windows 10"
    assert by_current[False].HasField("last_used") and by_current[False].HasField("created_at")

    # Another user's session is not found, like one that does not exist.
    _, stranger = await auth.user()
    for session_id in (by_current[False].id, "not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        await expect(
            auth.security.RevokeSession(
                security_pb2.RevokeSessionRequest(session_id=session_id),
                metadata=bearer(stranger.access_token),
            ),
            grpc.StatusCode.NOT_FOUND,
        )
    revoked = await auth.security.RevokeSession(
        security_pb2.RevokeSessionRequest(session_id=by_current[False].id), metadata=metadata
    )
    assert revoked.session_id == by_current[False].id
    await expect(
        auth.auth.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(other.access_token)),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    await expect(
        auth.security.RevokeSession(
            security_pb2.RevokeSessionRequest(session_id=by_current[False].id), metadata=metadata
        ),
        grpc.StatusCode.NOT_FOUND,
    )

    await auth.login(email)
    await auth.login(email)
    others = await auth.security.RevokeOtherSessions(
        security_pb2.RevokeOtherSessionsRequest(), metadata=metadata
    )
    assert others.revoked == 2
    left = await auth.security.ListSessions(security_pb2.ListSessionsRequest(), metadata=metadata)
    assert [s.id for s in left.sessions] == [current_sid]
