"""Email verification, forgotten and reset passwords, password change, and the outbox,
over real gRPC against a real SMTP server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import grpc
import pytest

from iot.auth.v1 import auth_pb2
from iot.system.v1 import system_pb2, system_pb2_grpc
from iotkit.db import open_database
from iotkit.errors import FieldViolation, reason_of, violations_of
from iotkit.logs import JsonFormatter
from iotkit.sqltypes import utcnow
from services.auth import rules
from services.auth.crypto import SecretBox
from services.auth.mail.mailer import RESET_KIND, VERIFY_KIND
from services.auth.mail.sender import OutboxSender, SmtpTarget, SmtpTransport
from services.auth.mail.store import FAILED, LOGGED, SENT, OutboxStore
from services.auth.wiring import MIGRATIONS
from tests.conftest import Backend
from tests.service.auth_support import (
    NEW_PASSWORD,
    Auth,
    Mailbox,
    blob,
    link_token,
    smtp_server,
    start_auth,
)
from tests.support import PASSWORD, bearer, new_email

BAD_TOKEN = "Invalid or expired token"


@pytest.fixture
async def auth(backend: Backend, mailbox: Mailbox) -> AsyncIterator[Auth]:
    async with start_auth(backend, mailbox=mailbox) as running:
        yield running


async def expect(call: object, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == code, caught.value.details()
    return caught.value


async def test_registration_sends_a_verification_link_that_works_once(
    auth: Auth, mailbox: Mailbox, backend: Backend
) -> None:
    email = await auth.register()
    message = await mailbox.wait(email, "verify")
    assert message["From"] == "iotsuite <no-reply@localhost>"
    body = message.get_content()
    assert "https://iot.example.com/#/verify-email?token=" in body
    token = await mailbox.token(email, "verify")

    answer = await auth.auth.VerifyEmail(auth_pb2.VerifyEmailRequest(token=token))
    assert answer.user.email == email and answer.user.is_verified
    error = await expect(
        auth.auth.VerifyEmail(auth_pb2.VerifyEmailRequest(token=token)),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    assert error.details() == BAD_TOKEN
    login = await auth.login(email)
    assert login.user.is_verified

    # Stored as a digest only; the outbox body (sealed) is wiped once delivered.
    stored = await backend.sql("auth", "SELECT token_digest FROM link_tokens")
    assert stored and all(token not in str(row) for row in stored)
    bodies = await backend.sql("auth", "SELECT status, sealed_body FROM email_outbox")
    assert {status for status, _ in bodies} == {SENT}
    assert all(blob(body) == b"" for _, body in bodies)


async def test_emails_carry_a_date_and_a_message_id(auth: Auth, mailbox: Mailbox) -> None:
    email, login = await auth.user()
    first = await mailbox.wait(email, "verify")
    await auth.auth.ResendVerification(
        auth_pb2.ResendVerificationRequest(), metadata=bearer(login.access_token)
    )
    second = await mailbox.wait(email, "verify", count=2)
    for message in (first, second):
        sent = parsedate_to_datetime(message["Date"])
        assert sent.utcoffset() == timedelta(0), message["Date"]
        assert abs(sent - datetime.now(UTC)) < timedelta(minutes=1)
        # The domain is the sender's (iotsuite <no-reply@localhost>).
        assert re.fullmatch(r"<[^<>@\s]+@localhost>", message["Message-ID"]), message["Message-ID"]
    assert first["Message-ID"] != second["Message-ID"]


async def test_forged_empty_and_expired_verification_tokens(
    auth: Auth, mailbox: Mailbox, backend: Backend
) -> None:
    error = await expect(
        auth.auth.VerifyEmail(auth_pb2.VerifyEmailRequest(token=" ")),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert violations_of(error) == [FieldViolation("token", rules.MSG_VERIFICATION_TOKEN_REQUIRED)]
    forged = await expect(
        auth.auth.VerifyEmail(auth_pb2.VerifyEmailRequest(token="x" * 43)),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    email = await auth.register()
    token = await mailbox.token(email, "verify")
    await backend.sql("auth", "UPDATE link_tokens SET expires_at = created_at")
    expired = await expect(
        auth.auth.VerifyEmail(auth_pb2.VerifyEmailRequest(token=token)),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    # No hint of which check failed.
    assert forged.details() == expired.details() == BAD_TOKEN
    assert reason_of(forged) == reason_of(expired)


async def test_resend_verification_retires_the_earlier_link(auth: Auth, mailbox: Mailbox) -> None:
    email, login = await auth.user()
    first = await mailbox.token(email, "verify")
    sent = await auth.auth.ResendVerification(
        auth_pb2.ResendVerificationRequest(), metadata=bearer(login.access_token)
    )
    assert sent.email == email
    second = await mailbox.token(email, "verify", count=2)
    assert first != second
    await expect(
        auth.auth.VerifyEmail(auth_pb2.VerifyEmailRequest(token=first)),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    await auth.auth.VerifyEmail(auth_pb2.VerifyEmailRequest(token=second))
    error = await expect(
        auth.auth.ResendVerification(
            auth_pb2.ResendVerificationRequest(), metadata=bearer(login.access_token)
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert reason_of(error) == "ALREADY_VERIFIED"


async def test_forgot_password_answers_the_same_for_unknown_addresses(
    auth: Auth, mailbox: Mailbox
) -> None:
    email = await auth.register()
    known = await auth.auth.ForgotPassword(auth_pb2.ForgotPasswordRequest(email=email.upper()))
    unknown = await auth.auth.ForgotPassword(auth_pb2.ForgotPasswordRequest(email=new_email()))
    assert known == unknown == auth_pb2.ForgotPasswordResponse()
    await mailbox.wait(email, "reset")
    error = await expect(
        auth.auth.ForgotPassword(auth_pb2.ForgotPasswordRequest(email="nope")),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert violations_of(error) == [FieldViolation("email", rules.MSG_EMAIL_FORMAT)]


async def test_link_tokens_travel_in_the_url_fragment(auth: Auth, mailbox: Mailbox) -> None:
    """Browsers send no fragment to any server: the token stays out of access logs."""
    email = await auth.register()
    await auth.auth.ForgotPassword(auth_pb2.ForgotPasswordRequest(email=email))
    for subject, route in (("verify", "/verify-email"), ("reset", "/reset-password")):
        message = await mailbox.wait(email, subject)
        found = re.search(r"https://\S+", message.get_content())
        assert found, message.get_content()
        link = urlsplit(found.group(0))
        assert (link.path, link.query) == ("/", "")
        assert link.fragment == f"{route}?token={link_token(message)}"


async def queued(backend: Backend, email: str, kind: str) -> int:
    """How many emails of ``kind`` auth queued for ``email`` (sent or not yet)."""
    rows = await backend.sql(
        "auth",
        "SELECT COUNT(*) FROM email_outbox WHERE to_address = ? AND kind = ?",
        (email, kind),
    )
    count = rows[0][0]
    assert isinstance(count, int)
    return count


async def test_forgot_password_sends_3_links_an_hour_silently_counting_unknown_addresses(
    auth: Auth, backend: Backend
) -> None:
    email = await auth.register()
    for _ in range(5):
        answer = await auth.auth.ForgotPassword(auth_pb2.ForgotPasswordRequest(email=email))
        assert answer == auth_pb2.ForgotPasswordResponse()
    assert await queued(backend, email, RESET_KIND) == 3

    # Asked for before the address had an account: the hour's three are spent already.
    later = new_email()
    for _ in range(3):
        await auth.auth.ForgotPassword(auth_pb2.ForgotPasswordRequest(email=later))
    await auth.register(later)
    await auth.auth.ForgotPassword(auth_pb2.ForgotPasswordRequest(email=later))
    assert await queued(backend, later, RESET_KIND) == 0


async def test_resend_verification_is_refused_after_3_an_hour(auth: Auth, backend: Backend) -> None:
    email, login = await auth.user()
    request = auth_pb2.ResendVerificationRequest()
    for _ in range(3):
        await auth.auth.ResendVerification(request, metadata=bearer(login.access_token))
    error = await expect(
        auth.auth.ResendVerification(request, metadata=bearer(login.access_token)),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )
    assert reason_of(error) == "RATE_LIMITED"
    # The one at registration and the three resent.
    assert await queued(backend, email, VERIFY_KIND) == 4


async def test_reset_password_applies_the_rules_and_ends_every_session(
    auth: Auth, mailbox: Mailbox
) -> None:
    email = await auth.register()
    first = await auth.login(email)
    second = await auth.login(email)
    await auth.auth.ForgotPassword(auth_pb2.ForgotPasswordRequest(email=email))
    token = await mailbox.token(email, "reset")

    weak = await expect(
        auth.auth.ResetPassword(auth_pb2.ResetPasswordRequest(token="", password="weakpassword")),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert violations_of(weak) == [
        FieldViolation("token", rules.MSG_TOKEN_REQUIRED),
        FieldViolation("password", rules.MSG_PASSWORD_WEAK),
    ]
    missing = await expect(
        auth.auth.ResetPassword(auth_pb2.ResetPasswordRequest(token=token)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert violations_of(missing) == [FieldViolation("password", rules.MSG_NEW_PASSWORD_REQUIRED)]

    done = await auth.auth.ResetPassword(
        auth_pb2.ResetPasswordRequest(token=token, password=NEW_PASSWORD)
    )
    assert done.sessions_revoked == 2
    for login in (first, second):
        await expect(
            auth.auth.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(login.access_token)),
            grpc.StatusCode.UNAUTHENTICATED,
        )
    reused = await expect(
        auth.auth.ResetPassword(auth_pb2.ResetPasswordRequest(token=token, password=PASSWORD)),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    assert reused.details() == BAD_TOKEN
    await expect(auth.login(email, PASSWORD), grpc.StatusCode.UNAUTHENTICATED)
    fresh = await auth.login(email, NEW_PASSWORD)
    assert fresh.user.is_verified  # the reset link proved the mailbox
    await mailbox.wait(email, "password was changed")


async def test_change_password_needs_the_current_one_and_keeps_this_session(
    auth: Auth, mailbox: Mailbox
) -> None:
    email = await auth.register()
    other = await auth.login(email)
    current = await auth.login(email)
    metadata = bearer(current.access_token)
    wrong = await expect(
        auth.auth.ChangePassword(
            auth_pb2.ChangePasswordRequest(
                current_password="Wr0ng!pass", new_password=NEW_PASSWORD
            ),
            metadata=metadata,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert violations_of(wrong) == [
        FieldViolation("current_password", rules.MSG_CURRENT_PASSWORD_WRONG)
    ]
    invalid = await expect(
        auth.auth.ChangePassword(
            auth_pb2.ChangePasswordRequest(current_password="", new_password="short"),
            metadata=metadata,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert violations_of(invalid) == [
        FieldViolation("current_password", rules.MSG_CURRENT_PASSWORD_REQUIRED),
        FieldViolation("new_password", rules.MSG_PASSWORD_SHORT),
    ]
    same = await expect(
        auth.auth.ChangePassword(
            auth_pb2.ChangePasswordRequest(current_password=PASSWORD, new_password=PASSWORD),
            metadata=metadata,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert violations_of(same) == [FieldViolation("new_password", rules.MSG_PASSWORD_UNCHANGED)]

    changed = await auth.auth.ChangePassword(
        auth_pb2.ChangePasswordRequest(current_password=PASSWORD, new_password=NEW_PASSWORD),
        metadata=metadata,
    )
    assert changed.sessions_revoked == 1
    await auth.auth.GetMe(auth_pb2.GetMeRequest(), metadata=metadata)
    await expect(
        auth.auth.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(other.access_token)),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    await auth.login(email, NEW_PASSWORD)
    await mailbox.wait(email, "password was changed")


async def test_email_health_is_smtp_in_the_system_status(auth: Auth) -> None:
    status = await system_pb2_grpc.SystemServiceStub(auth.channel).GetSystemStatus(
        system_pb2.GetSystemStatusRequest()
    )
    assert status.services.email == "healthy"
    email = next(d for d in status.dependencies if d.name == "email")
    assert (email.service, email.detail) == ("auth", "smtp")


async def test_without_smtp_the_email_is_logged_without_its_link(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with start_auth(backend) as auth:
        email = await auth.register()
        await auth.auth.ForgotPassword(auth_pb2.ForgotPasswordRequest(email=email))
        for _ in range(200):
            rows = await backend.sql("auth", "SELECT status, sealed_body FROM email_outbox")
            if len(rows) == 2 and all(status == LOGGED for status, _ in rows):
                break
            await asyncio.sleep(0.02)
        assert [status for status, _ in rows] == [LOGGED, LOGGED]
        assert all(blob(body) == b"" for _, body in rows)
    lines = "\n".join(JsonFormatter("auth").format(r) for r in caplog.records)
    assert lines.count("email not sent: IOT_SMTP_URL is not set") == 2
    assert email in lines  # who it was for...
    assert "token=" not in lines and "#/verify-email" not in lines  # ...never the link


async def test_the_sender_retries_a_refused_delivery(backend: Backend) -> None:
    database = await open_database(
        service="auth",
        settings=backend.settings,
        tables=MIGRATIONS,
        schema=backend.schema("auth"),
    )
    outbox = OutboxStore(database.sessions)
    box = SecretBox("k" * 40, purpose="outbox-body")
    try:
        with smtp_server(refuse=2) as mailbox:
            sender = OutboxSender(
                store=outbox,
                transport=SmtpTransport(SmtpTarget.parse(mailbox.url)),
                box=box,
                sender="iot <iot@example.com>",
                retry_base=0.05,
            )
            email_id = await outbox.enqueue(
                kind="test",
                to_address="ann@example.com",
                subject="Hello",
                sealed_body=box.seal("Hi"),
                now=utcnow(),
            )
            sender.start()
            sender.notify()
            message = await mailbox.wait("ann@example.com", "hello")
            assert message.get_content().strip() == "Hi"
            await sender.stop()  # lets the delivery in flight settle
            row = await outbox.get(email_id=email_id)
            assert row is not None and row.status == SENT and row.attempts == 3
            assert mailbox.attempts == 3

        # The server is gone: attempts until the last, then the email is abandoned.
        clock = [utcnow()]
        gone = OutboxSender(
            store=outbox,
            transport=SmtpTransport(SmtpTarget.parse(mailbox.url)),
            box=box,
            sender="iot <iot@example.com>",
            max_attempts=2,
            clock=lambda: clock[0],
        )
        lost = await outbox.enqueue(
            kind="test",
            to_address="bob@example.com",
            subject="Lost",
            sealed_body=box.seal("x"),
            now=clock[0],
        )
        assert await gone.deliver_due() == 1
        assert await gone.deliver_due() == 0  # backing off
        clock[0] += timedelta(seconds=60)
        assert await gone.deliver_due() == 1
        row = await outbox.get(email_id=lost)
        assert row is not None and row.status == FAILED and row.attempts == 2
        assert row.last_error in {"ConnectionRefusedError", "SMTPServerDisconnected", "OSError"}
    finally:
        await database.close()
