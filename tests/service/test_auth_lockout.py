"""Brute-force lockout over real gRPC, with counters in the process and in the real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from iot.auth.v1 import admin_pb2, auth_pb2
from iotkit.errors import reason_of
from services.auth.lockout import LOCKED_MESSAGE
from tests.conftest import Backend
from tests.service.auth_support import (
    NEW_PASSWORD,
    Auth,
    Mailbox,
    enable_mfa,
    start_auth,
    totp_code,
)
from tests.support import PASSWORD, bearer, new_email


@pytest.fixture(params=["in-process", "redis"])
async def auth(
    request: pytest.FixtureRequest, backend: Backend, mailbox: Mailbox
) -> AsyncIterator[Auth]:
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    # A mailbox too: a reset link is one way out of a lockout.
    async with start_auth(backend, mailbox=mailbox, redis_url=redis_url) as running:
        yield running


def retry_delay(error: grpc.aio.AioRpcError) -> float:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.ToTimedelta().total_seconds()
    raise AssertionError("no RetryInfo")


async def fail(auth: Auth, email: str, password: str = "Wr0ng!pass") -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await auth.login(email, password)
    return caught.value


async def test_five_failures_lock_the_account_even_for_the_right_password(auth: Auth) -> None:
    email = await auth.register()
    for _ in range(5):
        assert (await fail(auth, email)).code() == grpc.StatusCode.UNAUTHENTICATED
    locked = await fail(auth, email, PASSWORD)
    assert locked.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert locked.details() == LOCKED_MESSAGE and reason_of(locked) == "RATE_LIMITED"
    assert 890 <= retry_delay(locked) <= 900

    # Each failure is counted for the admins, and the lockout is in the log.
    admin = await auth.admin_login()
    listed = await auth.admin.ListUsers(
        admin_pb2.ListUsersRequest(search=email), metadata=bearer(admin.access_token)
    )
    detail = await auth.admin.GetUser(
        admin_pb2.GetUserRequest(uuid=listed.users[0].uuid), metadata=bearer(admin.access_token)
    )
    assert detail.security_info.failed_login_attempts == 5
    assert detail.security_info.HasField("last_security_incident")


async def test_unknown_addresses_lock_alike(auth: Auth) -> None:
    email = new_email()
    errors = [await fail(auth, email) for _ in range(6)]
    assert [e.code() for e in errors] == [grpc.StatusCode.UNAUTHENTICATED] * 5 + [
        grpc.StatusCode.RESOURCE_EXHAUSTED
    ]


async def test_a_success_clears_the_count(auth: Auth) -> None:
    email = await auth.register()
    for _ in range(4):
        await fail(auth, email)
    login = await auth.login(email)
    for _ in range(4):
        assert (await fail(auth, email)).code() == grpc.StatusCode.UNAUTHENTICATED
    me = await auth.auth.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(login.access_token))
    assert me.user.email == email


def wrong_code(secret: str) -> str:
    """A six-digit code that no step TOTP accepts now (one step of drift either side) gives."""
    accepted = {totp_code(secret, steps_ahead=step) for step in (-1, 0, 1)}
    return next(code for code in ("000000", "111111", "222222", "333333") if code not in accepted)


async def test_wrong_mfa_codes_and_current_passwords_count_toward_the_lockout(
    auth: Auth,
) -> None:
    email, login = await auth.user()
    token = bearer(login.access_token)
    secret, _ = await enable_mfa(auth, login.access_token)
    for _ in range(3):
        with pytest.raises(grpc.aio.AioRpcError) as changed:
            await auth.auth.ChangePassword(
                auth_pb2.ChangePasswordRequest(
                    current_password="Wr0ng!pass", new_password=NEW_PASSWORD
                ),
                metadata=token,
            )
        assert changed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as coded:
            await auth.login(email, mfa_code=wrong_code(secret))
        assert coded.value.code() == grpc.StatusCode.UNAUTHENTICATED

    # Five failures of either kind: the right password and a right code are refused too.
    with pytest.raises(grpc.aio.AioRpcError) as locked:
        await auth.login(email, mfa_code=totp_code(secret, steps_ahead=1))
    assert locked.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert locked.value.details() == LOCKED_MESSAGE


async def test_a_password_reset_clears_the_lockout(auth: Auth) -> None:
    email = await auth.register()
    for _ in range(5):
        await fail(auth, email)
    assert (await fail(auth, email, PASSWORD)).code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    await auth.auth.ForgotPassword(auth_pb2.ForgotPasswordRequest(email=email))
    assert auth.mailbox is not None
    reset = await auth.mailbox.token(email, "reset")
    await auth.auth.ResetPassword(auth_pb2.ResetPasswordRequest(token=reset, password=NEW_PASSWORD))
    assert (await auth.login(email, NEW_PASSWORD)).access_token
