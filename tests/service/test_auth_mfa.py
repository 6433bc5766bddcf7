"""MFA over real gRPC: TOTP set-up, enabling, logging in with a code, replay, recovery
codes, disabling; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import grpc
import pytest

from iot.auth.v1 import auth_pb2, mfa_pb2
from iotkit.errors import FieldViolation, reason_of, violations_of
from services.auth.mfa import service as mfa
from tests.conftest import Backend
from tests.service.auth_support import Auth, blob, enable_mfa, start_auth, totp_code
from tests.support import bearer


@pytest.fixture
async def auth(backend: Backend) -> AsyncIterator[Auth]:
    async with start_auth(backend) as running:
        yield running


async def expect(call: object, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == code, caught.value.details()
    return caught.value


async def test_setup_answers_a_secret_and_its_uri_and_keeps_it_sealed(
    auth: Auth, backend: Backend
) -> None:
    email, login = await auth.user()
    setup = await auth.mfa.SetupMfa(mfa_pb2.SetupMfaRequest(), metadata=bearer(login.access_token))
    assert len(setup.secret) == 32 and (setup.digits, setup.period) == (6, 30)
    uri = urlsplit(setup.otpauth_uri)
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    query = parse_qs(uri.query)
    assert query["secret"] == [setup.secret] and query["issuer"] == ["iotsuite"]
    assert email.replace("@", "%40") in setup.otpauth_uri
    stored = await backend.sql("auth", "SELECT totp_pending, totp_secret FROM users")
    assert all(setup.secret.encode() not in blob(pending or b"") for pending, _ in stored)
    # Logins need no code until MFA is enabled.
    assert not (await auth.login(email)).mfa_required


async def test_enable_needs_a_valid_code_and_answers_recovery_codes_once(
    auth: Auth, backend: Backend
) -> None:
    email = await auth.register(mfa_enabled=True)
    login = await auth.login(email)
    assert not login.user.is_configured
    metadata = bearer(login.access_token)
    premature = await expect(
        auth.mfa.EnableMfa(mfa_pb2.EnableMfaRequest(code="123456"), metadata=metadata),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert reason_of(premature) == "MFA_NOT_SET_UP"
    setup = await auth.mfa.SetupMfa(mfa_pb2.SetupMfaRequest(), metadata=metadata)
    for code, message in (("", mfa.MSG_CODE_REQUIRED), ("12a456", mfa.MSG_CODE_SHAPE)):
        error = await expect(
            auth.mfa.EnableMfa(mfa_pb2.EnableMfaRequest(code=code), metadata=metadata),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert violations_of(error) == [FieldViolation("code", message)]
    wrong = str((int(totp_code(setup.secret)) + 1) % 1_000_000).zfill(6)
    error = await expect(
        auth.mfa.EnableMfa(mfa_pb2.EnableMfaRequest(code=wrong), metadata=metadata),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert violations_of(error) == [FieldViolation("code", mfa.MSG_CODE_INVALID)]

    enabled = await auth.mfa.EnableMfa(
        mfa_pb2.EnableMfaRequest(code=totp_code(setup.secret)), metadata=metadata
    )
    assert enabled.user.mfa_enabled and enabled.user.is_configured
    assert len(set(enabled.recovery_codes)) == 10
    stored = await backend.sql("auth", "SELECT code_digest FROM recovery_codes")
    assert len(stored) == 10
    assert not {c.replace("-", "") for c in enabled.recovery_codes} & {r[0] for r in stored}
    again = await expect(
        auth.mfa.SetupMfa(mfa_pb2.SetupMfaRequest(), metadata=metadata),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert reason_of(again) == "MFA_ALREADY_ENABLED"
    me = await auth.auth.GetMe(auth_pb2.GetMeRequest(), metadata=metadata)
    assert setup.secret not in str(me)


async def test_login_asks_for_the_code_then_accepts_it_once(auth: Auth) -> None:
    email, login = await auth.user()
    secret, _ = await enable_mfa(auth, login.access_token)

    pending = await auth.login(email)
    assert pending.mfa_required
    assert (pending.access_token, pending.refresh_token) == ("", "")
    assert pending.message == "Enter the code from your authenticator app or a recovery code"
    wrong_password = await expect(
        auth.login(email, "Wr0ng!pass", mfa_code=totp_code(secret, steps_ahead=1)),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    assert wrong_password.details() == "Invalid email or password"
    bad = await expect(auth.login(email, mfa_code="000000"), grpc.StatusCode.UNAUTHENTICATED)
    assert reason_of(bad) == "INVALID_MFA_CODE"

    code = totp_code(secret, steps_ahead=1)
    done = await auth.login(email, mfa_code=code)
    assert done.access_token and not done.mfa_required
    assert done.message == ""
    replay = await expect(auth.login(email, mfa_code=code), grpc.StatusCode.UNAUTHENTICATED)
    assert reason_of(replay) == "INVALID_MFA_CODE"


async def test_recovery_codes_work_once_and_can_be_replaced(auth: Auth) -> None:
    email, login = await auth.user()
    secret, codes = await enable_mfa(auth, login.access_token)
    first = await auth.login(email, mfa_code=codes[0].upper())
    assert first.access_token
    await expect(auth.login(email, mfa_code=codes[0]), grpc.StatusCode.UNAUTHENTICATED)

    fresh = await auth.mfa.RegenerateRecoveryCodes(
        mfa_pb2.RegenerateRecoveryCodesRequest(code=totp_code(secret, steps_ahead=1)),
        metadata=bearer(login.access_token),
    )
    assert len(fresh.recovery_codes) == 10 and not set(fresh.recovery_codes) & set(codes)
    await expect(auth.login(email, mfa_code=codes[1]), grpc.StatusCode.UNAUTHENTICATED)
    assert (await auth.login(email, mfa_code=fresh.recovery_codes[0])).access_token


async def test_disable_needs_a_code_and_then_logins_need_none(auth: Auth) -> None:
    email, login = await auth.user()
    metadata = bearer(login.access_token)
    _, codes = await enable_mfa(auth, login.access_token)
    error = await expect(
        auth.mfa.DisableMfa(mfa_pb2.DisableMfaRequest(code="999999"), metadata=metadata),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert violations_of(error) == [FieldViolation("code", mfa.MSG_CODE_INVALID)]
    disabled = await auth.mfa.DisableMfa(
        mfa_pb2.DisableMfaRequest(code=codes[3]), metadata=metadata
    )
    assert not disabled.user.mfa_enabled
    assert (await auth.login(email)).access_token
    again = await expect(
        auth.mfa.DisableMfa(mfa_pb2.DisableMfaRequest(code=codes[4]), metadata=metadata),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert reason_of(again) == "MFA_NOT_ENABLED"
