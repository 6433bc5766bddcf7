"""No answer and no log line ever holds a password, a hash, a TOTP secret after set-up,
a recovery code after issue, a link token, or a client secret after creation.

One flow touches every auth API with logs captured at DEBUG; then each secret
is looked for in every answer but the one allowed to carry it, and in the logs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable

import pytest

from iot.auth.v1 import (
    admin_pb2,
    auth_pb2,
    data_pb2,
    mfa_pb2,
    profile_pb2,
    security_pb2,
    sites_pb2,
)
from iotkit.logs import JsonFormatter, silence_parameter_loggers
from tests.conftest import Backend
from tests.service.auth_support import (
    ADMIN_PASSWORD,
    NEW_PASSWORD,
    Mailbox,
    link_request,
    start_auth,
    totp_code,
)
from tests.support import PASSWORD, bearer, new_email


class Answers:
    """Every answer of the flow, by the RPC that gave it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    async def __call__(self, name: str, call: Awaitable[object]) -> object:
        answer = await call
        self.seen.append((name, str(answer)))
        return answer

    def holding(self, secret: str) -> set[str]:
        return {name for name, text in self.seen if secret in text}


async def test_no_secret_in_any_answer_or_log(
    backend: Backend, mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    silence_parameter_loggers()
    caplog.set_level(logging.DEBUG)
    answers = Answers()
    async with start_auth(backend, mailbox=mailbox) as auth:
        email = new_email()
        await answers(
            "Register", auth.auth.Register(auth_pb2.RegisterRequest(email=email, password=PASSWORD))
        )
        verify_token = await mailbox.token(email, "verify")
        await answers(
            "VerifyEmail", auth.auth.VerifyEmail(auth_pb2.VerifyEmailRequest(token=verify_token))
        )
        login = await answers("Login", auth.login(email))
        assert isinstance(login, auth_pb2.LoginResponse)
        user = bearer(login.access_token)
        setup = await answers(
            "SetupMfa", auth.mfa.SetupMfa(mfa_pb2.SetupMfaRequest(), metadata=user)
        )
        assert isinstance(setup, mfa_pb2.MfaSetup)
        enabled = await answers(
            "EnableMfa",
            auth.mfa.EnableMfa(
                mfa_pb2.EnableMfaRequest(code=totp_code(setup.secret)), metadata=user
            ),
        )
        assert isinstance(enabled, mfa_pb2.MfaEnabled)
        codes = list(enabled.recovery_codes)
        await answers("Login", auth.login(email))
        await answers("Login", auth.login(email, mfa_code=codes[0]))
        await answers("GetMe", auth.auth.GetMe(auth_pb2.GetMeRequest(), metadata=user))
        await answers(
            "GetProfile", auth.profile.GetProfile(profile_pb2.GetProfileRequest(), metadata=user)
        )
        await answers(
            "ListSecurityLogs",
            auth.security.ListSecurityLogs(
                security_pb2.ListSecurityLogsRequest(limit=100), metadata=user
            ),
        )
        await answers(
            "ListSessions",
            auth.security.ListSessions(security_pb2.ListSessionsRequest(), metadata=user),
        )
        for fmt in ("json", "csv", "xml"):
            prepared = await answers(
                "RequestDataDownload",
                auth.data.RequestDataDownload(
                    data_pb2.RequestDataDownloadRequest(format=fmt), metadata=user
                ),
            )
            assert isinstance(prepared, data_pb2.DataDownload)
            await answers(
                "DownloadExport", auth.data.DownloadExport(link_request(prepared.download_url))
            )
        await answers(
            "ChangePassword",
            auth.auth.ChangePassword(
                auth_pb2.ChangePasswordRequest(
                    current_password=PASSWORD, new_password=NEW_PASSWORD
                ),
                metadata=user,
            ),
        )
        await answers(
            "ForgotPassword", auth.auth.ForgotPassword(auth_pb2.ForgotPasswordRequest(email=email))
        )
        reset_token = await mailbox.token(email, "reset")
        await answers(
            "ResetPassword",
            auth.auth.ResetPassword(
                auth_pb2.ResetPasswordRequest(token=reset_token, password=PASSWORD)
            ),
        )

        admin_login = await answers("Login", auth.admin_login())
        assert isinstance(admin_login, auth_pb2.LoginResponse)
        admin = bearer(admin_login.access_token)
        await answers(
            "ListUsers", auth.admin.ListUsers(admin_pb2.ListUsersRequest(), metadata=admin)
        )
        await answers(
            "GetUser",
            auth.admin.GetUser(admin_pb2.GetUserRequest(uuid=login.user.uuid), metadata=admin),
        )
        account = await answers(
            "CreateAccount",
            auth.accounts.CreateAccount(
                sites_pb2.CreateAccountRequest(email=new_email(), name="A"), metadata=admin
            ),
        )
        assert isinstance(account, sites_pb2.Account)
        created = await answers(
            "CreateSite",
            auth.accounts.CreateSite(
                sites_pb2.CreateSiteRequest(
                    account_id=account.id, domain="s1.example.com", name="S"
                ),
                metadata=admin,
            ),
        )
        assert isinstance(created, sites_pb2.SiteCredentials)
        await answers(
            "IssueSiteToken",
            auth.site_tokens.IssueSiteToken(
                sites_pb2.IssueSiteTokenRequest(
                    site_id=created.site.id, client_secret=created.client_secret
                )
            ),
        )
        rotated = await answers(
            "RotateSiteSecret",
            auth.accounts.RotateSiteSecret(
                sites_pb2.RotateSiteSecretRequest(site_id=created.site.id), metadata=admin
            ),
        )
        assert isinstance(rotated, sites_pb2.SiteCredentials)
        await answers(
            "ListSites",
            auth.accounts.ListSites(
                sites_pb2.ListSitesRequest(account_id=account.id), metadata=admin
            ),
        )
        await answers(
            "GetSite",
            auth.accounts.GetSite(
                sites_pb2.GetSiteRequest(site_id=created.site.id), metadata=admin
            ),
        )

    allowed: dict[str, set[str]] = {
        PASSWORD: set(),
        NEW_PASSWORD: set(),
        ADMIN_PASSWORD: set(),
        "$argon2": set(),
        setup.secret: {"SetupMfa"},
        verify_token: set(),
        reset_token: set(),
        created.client_secret: {"CreateSite"},
        rotated.client_secret: {"RotateSiteSecret"},
        **{code: {"EnableMfa"} for code in codes},
    }
    for secret, where in allowed.items():
        assert answers.holding(secret) <= where, secret
    assert answers.holding(setup.secret) == {"SetupMfa"}  # the scan does see answers

    lines = "\n".join(JsonFormatter("auth").format(record) for record in caplog.records)
    assert "/iot.auth.v1.AccountService/CreateSite" in lines  # the calls were logged...
    for secret in (*allowed, login.access_token, login.refresh_token):
        assert secret not in lines, secret  # ...without any secret
