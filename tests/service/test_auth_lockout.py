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
from tests.service.auth_support import Auth, start_auth
from tests.support import PASSWORD, bearer, new_email


@pytest.fixture(params=["in-process", "redis"])
async def auth(request: pytest.FixtureRequest, backend: Backend) -> AsyncIterator[Auth]:
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    async with start_auth(backend, redis_url=redis_url) as running:
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
