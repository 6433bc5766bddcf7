"""The auth service over real gRPC, with the full interceptor chain, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from iot.auth.v1 import auth_pb2, auth_pb2_grpc
from iot.system.v1 import system_pb2, system_pb2_grpc
from iotkit.errors import FieldViolation, reason_of, violations_of
from iotkit.jwks import from_jwk
from iotkit.logs import JsonFormatter, silence_parameter_loggers
from services.auth import rules
from tests.conftest import Suite
from tests.support import PASSWORD, bearer, new_email, new_user


@pytest.fixture
async def stub(auth_only: Suite) -> AsyncIterator[auth_pb2_grpc.AuthServiceStub]:
    async with grpc.aio.insecure_channel(auth_only.address("auth")) as channel:
        yield auth_pb2_grpc.AuthServiceStub(channel)


async def register_and_login(
    stub: auth_pb2_grpc.AuthServiceStub, email: str | None = None
) -> auth_pb2.LoginResponse:
    return await new_user(stub, email, display_name="Ann")


async def test_register_answers_user_and_profile_without_secrets(
    stub: auth_pb2_grpc.AuthServiceStub,
) -> None:
    answer = await stub.Register(
        auth_pb2.RegisterRequest(
            email="  Ann.Lee@Example.COM ",
            password=PASSWORD,
            display_name=" Ann ",
            mfa_enabled=True,
        )
    )
    assert answer.user.email == "ann.lee@example.com"
    assert answer.user.role == "user"
    assert answer.user.is_active and not answer.user.is_verified
    assert not answer.user.is_configured  # MFA asked for, not yet set up
    assert answer.profile.display_name == "Ann"
    uuid.UUID(answer.user.uuid)
    assert PASSWORD not in str(answer) and "argon2" not in str(answer)


async def test_register_defaults_display_name_to_email_local_part(
    stub: auth_pb2_grpc.AuthServiceStub,
) -> None:
    answer = await stub.Register(
        auth_pb2.RegisterRequest(email="bob@example.com", password=PASSWORD)
    )
    assert answer.profile.display_name == "bob"
    assert answer.user.is_configured


async def test_duplicate_email_is_already_exists(stub: auth_pb2_grpc.AuthServiceStub) -> None:
    email = new_email()
    await stub.Register(auth_pb2.RegisterRequest(email=email, password=PASSWORD))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Register(auth_pb2.RegisterRequest(email=email.upper(), password=PASSWORD))
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert reason_of(caught.value) == "EMAIL_TAKEN"


@pytest.mark.parametrize(
    ("email", "password", "display_name", "expected"),
    [
        (
            "",
            "",
            None,
            [
                FieldViolation("email", rules.MSG_EMAIL_REQUIRED),
                FieldViolation("password", rules.MSG_PASSWORD_REQUIRED),
            ],
        ),
        ("not-an-email", PASSWORD, None, [FieldViolation("email", rules.MSG_EMAIL_FORMAT)]),
        ("a" * 250 + "@x.com", PASSWORD, None, [FieldViolation("email", rules.MSG_EMAIL_LONG)]),
        ("a@example.com", "Sh0rt!", None, [FieldViolation("password", rules.MSG_PASSWORD_SHORT)]),
        ("a@example.com", "Aa1!" * 33, None, [FieldViolation("password", rules.MSG_PASSWORD_LONG)]),
        (
            "a@example.com",
            "alllowercase1!",
            None,
            [FieldViolation("password", rules.MSG_PASSWORD_WEAK)],
        ),
        ("a@example.com", PASSWORD, "", [FieldViolation("display_name", rules.MSG_DISPLAY_NAME)]),
        (
            "a@example.com",
            PASSWORD,
            "x" * 101,
            [FieldViolation("display_name", rules.MSG_DISPLAY_NAME)],
        ),
    ],
)
async def test_register_rules_answer_each_field_with_the_seed_message(
    stub: auth_pb2_grpc.AuthServiceStub,
    email: str,
    password: str,
    display_name: str | None,
    expected: list[FieldViolation],
) -> None:
    request = auth_pb2.RegisterRequest(email=email, password=password)
    if display_name is not None:
        request.display_name = display_name
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Register(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "Validation failed"
    assert reason_of(caught.value) == "VALIDATION_FAILED"
    assert violations_of(caught.value) == expected


async def test_login_answers_tokens_user_and_profile(stub: auth_pb2_grpc.AuthServiceStub) -> None:
    email = new_email()
    login = await register_and_login(stub, email)
    assert login.token_type == "bearer"
    assert not login.mfa_required
    assert login.expires_in == 900
    assert login.user.email == email
    assert login.user.HasField("last_login_at")
    assert login.profile.display_name == "Ann"
    header = jwt.get_unverified_header(login.access_token)
    assert header["alg"] == "EdDSA"
    claims = jwt.decode(login.access_token, options={"verify_signature": False})
    assert claims["typ"] == "access" and claims["sub"] == login.user.uuid
    assert {"sid", "jti", "iat", "exp", "scope", "role"} <= set(claims)


async def test_unknown_email_and_wrong_password_fail_alike(
    stub: auth_pb2_grpc.AuthServiceStub,
) -> None:
    email = new_email()
    await stub.Register(auth_pb2.RegisterRequest(email=email, password=PASSWORD))
    failures = []
    for attempt in (
        auth_pb2.LoginRequest(email=email, password="Wr0ng!pass"),
        auth_pb2.LoginRequest(email=new_email(), password=PASSWORD),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Login(attempt)
        failures.append((caught.value.code(), caught.value.details(), reason_of(caught.value)))
    assert (
        failures[0]
        == failures[1]
        == (
            grpc.StatusCode.UNAUTHENTICATED,
            "Invalid email or password",
            "INVALID_CREDENTIALS",
        )
    )


async def test_a_wrong_password_that_breaks_the_registration_rules_is_the_same_401(
    stub: auth_pb2_grpc.AuthServiceStub,
) -> None:
    email = new_email()
    await stub.Register(auth_pb2.RegisterRequest(email=email, password=PASSWORD))
    # Too short, no capital nor special character, too long: the login tells nothing of the
    # policy, it only says the password is wrong.
    for wrong in ("short", "alllowercase123", "Aa1!" * 40):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Login(auth_pb2.LoginRequest(email=email, password=wrong))
        assert (
            caught.value.code(),
            caught.value.details(),
            reason_of(caught.value),
            violations_of(caught.value),
        ) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "Invalid email or password",
            "INVALID_CREDENTIALS",
            [],
        ), wrong


async def test_login_validates_fields(stub: auth_pb2_grpc.AuthServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Login(auth_pb2.LoginRequest(email="nope", password=""))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {v.field for v in violations_of(caught.value)} == {"email", "password"}


async def test_me_and_token_info_with_the_access_token(stub: auth_pb2_grpc.AuthServiceStub) -> None:
    login = await register_and_login(stub)
    me = await stub.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(login.access_token))
    assert me.user.uuid == login.user.uuid
    assert me.profile.display_name == "Ann"
    assert me.user.HasField("created_at") and me.user.HasField("updated_at")
    info = await stub.GetTokenInfo(
        auth_pb2.GetTokenInfoRequest(), metadata=bearer(login.access_token)
    )
    assert "devices:read" in info.scopes and "admin" not in info.scopes
    assert info.token_type == "access"
    assert info.expires_at.seconds - info.created_at.seconds == 900
    assert info.subject == login.user.uuid


async def test_refresh_rotates_and_reuse_revokes_the_session(
    stub: auth_pb2_grpc.AuthServiceStub,
) -> None:
    login = await register_and_login(stub)
    second = await stub.RefreshToken(
        auth_pb2.RefreshTokenRequest(refresh_token=login.refresh_token)
    )
    assert second.refresh_token != login.refresh_token
    assert second.access_token != login.access_token
    await stub.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(second.access_token))
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=login.refresh_token))
    assert reused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # The whole session is gone: the newest pair no longer works either.
    for call in (
        stub.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(second.access_token)),
        stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=second.refresh_token)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_refresh_rejects_an_access_token_and_garbage(
    stub: auth_pb2_grpc.AuthServiceStub,
) -> None:
    login = await register_and_login(stub)
    for token in (login.access_token, "garbage", ""):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=token))
        expected = (
            grpc.StatusCode.INVALID_ARGUMENT if not token else grpc.StatusCode.UNAUTHENTICATED
        )
        assert caught.value.code() == expected


async def test_logout_ends_the_session(stub: auth_pb2_grpc.AuthServiceStub) -> None:
    login = await register_and_login(stub)
    answer = await stub.Logout(auth_pb2.LogoutRequest(), metadata=bearer(login.access_token))
    claims = jwt.decode(login.access_token, options={"verify_signature": False})
    assert answer.session_id == claims["sid"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(login.access_token))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as refresh:
        await stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=login.refresh_token))
    assert refresh.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    "header", [None, "Bearer", "Basic abc", "Bearer not.a.jwt", "Bearer " + "x" * 40]
)
async def test_missing_or_malformed_token_is_unauthenticated(
    stub: auth_pb2_grpc.AuthServiceStub, header: str | None
) -> None:
    metadata = [("authorization", header)] if header else None
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetMe(auth_pb2.GetMeRequest(), metadata=metadata)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason_of(caught.value) == "UNAUTHENTICATED"


async def test_forged_and_expired_tokens_are_refused(stub: auth_pb2_grpc.AuthServiceStub) -> None:
    login = await register_and_login(stub)
    claims = jwt.decode(login.access_token, options={"verify_signature": False})
    kid = jwt.get_unverified_header(login.access_token)["kid"]
    forged = jwt.encode(
        claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": kid}
    )
    admin = dict(claims, role="admin", scope=claims["scope"] + " admin")
    tampered_payload = jwt.encode(
        admin, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": kid}
    )
    head, _, signature = login.access_token.split(".")
    mixed = ".".join([head, tampered_payload.split(".")[1], signature])
    none_alg = jwt.encode(claims, None, algorithm="none")
    for token in (forged, mixed, none_alg):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(token))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert caught.value.details() == "Invalid or expired token"


async def test_jwks_verifies_the_tokens(stub: auth_pb2_grpc.AuthServiceStub) -> None:
    login = await register_and_login(stub)
    jwks = await stub.GetJwks(auth_pb2.GetJwksRequest())
    assert jwks.keys and all(
        k.kty == "OKP" and k.crv == "Ed25519" and k.alg == "EdDSA" for k in jwks.keys
    )
    kid = jwt.get_unverified_header(login.access_token)["kid"]
    key = from_jwk(next(k for k in jwks.keys if k.kid == kid))
    claims = jwt.decode(login.access_token, key, algorithms=["EdDSA"], issuer="iotsuite")
    assert claims["sub"] == login.user.uuid
    assert claims["exp"] > time.time()


async def test_user_token_cannot_read_diagnostics(
    auth_only: Suite, stub: auth_pb2_grpc.AuthServiceStub
) -> None:
    login = await register_and_login(stub)
    async with grpc.aio.insecure_channel(auth_only.address("auth")) as channel:
        diagnostics = system_pb2_grpc.DiagnosticsServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await diagnostics.GetProcessStatus(
                system_pb2.GetProcessStatusRequest(), metadata=bearer(login.access_token)
            )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_reflection_lists_the_services(auth_only: Suite) -> None:
    async with grpc.aio.insecure_channel(auth_only.address("auth")) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)

        async def requests() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
            yield reflection_pb2.ServerReflectionRequest(list_services="")

        names = set()
        async for answer in stub.ServerReflectionInfo(requests()):
            names |= {s.name for s in answer.list_services_response.service}
    assert {
        "iot.auth.v1.AuthService",
        "iot.system.v1.SystemService",
        "iot.system.v1.DiagnosticsService",
        "grpc.health.v1.Health",
    } <= names


async def test_no_secret_reaches_a_log_line(
    stub: auth_pb2_grpc.AuthServiceStub, caplog: pytest.LogCaptureFixture
) -> None:
    silence_parameter_loggers()  # as configure_logging does in every process
    caplog.set_level(logging.DEBUG)
    login = await register_and_login(stub)
    second = await stub.RefreshToken(
        auth_pb2.RefreshTokenRequest(refresh_token=login.refresh_token)
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.Login(auth_pb2.LoginRequest(email=login.user.email, password="Wr0ng!pass"))
    formatter = JsonFormatter("auth")
    lines = "\n".join(formatter.format(record) for record in caplog.records)
    assert "/iot.auth.v1.AuthService/Login" in lines  # the calls were logged...
    for secret in (
        PASSWORD,
        "Wr0ng!pass",
        login.access_token,
        login.refresh_token,
        second.refresh_token,
    ):
        assert secret not in lines  # ...without any secret
    assert "$argon2" not in lines


async def test_active_users_counts_live_sessions(
    auth_only: Suite, stub: auth_pb2_grpc.AuthServiceStub
) -> None:
    async with grpc.aio.insecure_channel(auth_only.address("auth")) as channel:
        system = system_pb2_grpc.SystemServiceStub(channel)
        before = (
            await system.GetSystemStatus(system_pb2.GetSystemStatusRequest())
        ).metrics.active_users
        login = await register_and_login(stub)
        during = (
            await system.GetSystemStatus(system_pb2.GetSystemStatusRequest())
        ).metrics.active_users
        await stub.Logout(auth_pb2.LogoutRequest(), metadata=bearer(login.access_token))
        after = (
            await system.GetSystemStatus(system_pb2.GetSystemStatusRequest())
        ).metrics.active_users
    assert (before, during, after) == (0, 1, 0)
