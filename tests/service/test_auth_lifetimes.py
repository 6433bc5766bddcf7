"""How long auth's tokens and links last: refresh tokens and the session that bounds
them, service tokens, reset links; over real gRPC on SQLite and PostgreSQL.

Lifetimes are read from the claims and rows the service wrote (``exp - iat``, a
session's ``expires_at``), never from the test's clock; an expiry is made to pass
by moving it in the database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import jwt
import pytest

from iot.auth.v1 import auth_pb2
from iotkit.config import PLACEHOLDER_SECRET
from services.auth.link_tokens import RESET_PASSWORD
from tests.conftest import Backend
from tests.service.auth_support import NEW_PASSWORD, Auth, Mailbox, start_auth

DAY = 24 * 3600


@pytest.fixture
async def auth(backend: Backend, mailbox: Mailbox) -> AsyncIterator[Auth]:
    async with start_auth(backend, mailbox=mailbox) as running:
        yield running


def claims(token: str) -> dict[str, Any]:
    """A token's claims, unverified (the service's own answer, read for its times)."""
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def as_time(value: object) -> datetime:
    """A timestamp column as read by either driver (SQLite answers text), in UTC."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def stored(backend: Backend, moment: datetime) -> object:
    """``moment`` as a statement parameter for a timestamp column of ``backend``
    (SQLite keeps naive UTC text, PostgreSQL ``timestamptz``)."""
    if backend.kind == "sqlite":
        return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
    return moment


async def session_times(backend: Backend, session_id: str) -> tuple[datetime, datetime]:
    """When the session was created and when it ends, as stored."""
    rows = await backend.sql(
        "auth", "SELECT created_at, expires_at FROM sessions WHERE id = ?", (session_id,)
    )
    created, expires = rows[0]
    return as_time(created), as_time(expires)


async def test_a_refresh_token_lasts_30_days_as_does_its_session(
    auth: Auth, backend: Backend
) -> None:
    _, login = await auth.user()
    refresh = claims(login.refresh_token)
    assert refresh["exp"] - refresh["iat"] == 30 * DAY
    created, expires = await session_times(backend, refresh["sid"])
    assert expires - created == timedelta(days=30)


async def test_rotation_never_extends_a_session_past_its_end(auth: Auth, backend: Backend) -> None:
    _, login = await auth.user()
    session_id = claims(login.refresh_token)["sid"]
    # The session is a day from its end, as it would be 29 days after its login.
    _, original_end = await session_times(backend, session_id)
    near_end = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    await backend.sql(
        "auth",
        "UPDATE sessions SET expires_at = ? WHERE id = ?",
        (stored(backend, near_end), session_id),
    )

    rotated = await auth.auth.RefreshToken(
        auth_pb2.RefreshTokenRequest(refresh_token=login.refresh_token)
    )
    refreshed = claims(rotated.refresh_token)
    assert refreshed["sid"] == session_id
    assert refreshed["exp"] == int(near_end.timestamp()) < int(original_end.timestamp())
    _, end = await session_times(backend, session_id)
    assert end == near_end
    rows = await backend.sql(
        "auth", "SELECT expires_at FROM refresh_tokens WHERE jti = ?", (refreshed["jti"],)
    )
    assert as_time(rows[0][0]) == near_end


async def test_a_service_token_lasts_5_minutes(auth: Auth) -> None:
    issued = await auth.auth.IssueServiceToken(
        auth_pb2.IssueServiceTokenRequest(service="telemetry", client_secret=PLACEHOLDER_SECRET)
    )
    token = claims(issued.token)
    assert token["exp"] - token["iat"] == 5 * 60


async def test_a_reset_link_expires_after_an_hour(
    auth: Auth, backend: Backend, mailbox: Mailbox
) -> None:
    email = await auth.register()
    await auth.auth.ForgotPassword(auth_pb2.ForgotPasswordRequest(email=email))
    token = await mailbox.token(email, "reset")
    rows = await backend.sql(
        "auth",
        "SELECT created_at, expires_at FROM link_tokens WHERE purpose = ?",
        (RESET_PASSWORD,),
    )
    created, expires = rows[0]
    assert as_time(expires) - as_time(created) == timedelta(hours=1)

    await backend.sql("auth", "UPDATE link_tokens SET expires_at = created_at")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await auth.auth.ResetPassword(
            auth_pb2.ResetPasswordRequest(token=token, password=NEW_PASSWORD)
        )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # The old password still works: the expired link changed nothing.
    await auth.login(email)
