"""Accounts, sites, client secrets and site tokens over real gRPC (seed 002), on SQLite
and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import grpc
import jwt
import pytest

from iot.auth.v1 import auth_pb2, sites_pb2
from iotkit.errors import FieldViolation, reason_of, violations_of
from services.auth import rules
from tests.conftest import Backend
from tests.service.auth_support import Auth, start_auth
from tests.support import bearer, new_email

BAD_CLIENT = "Invalid client credentials"


@pytest.fixture
async def auth(backend: Backend) -> AsyncIterator[Auth]:
    async with start_auth(backend) as running:
        yield running


@pytest.fixture
async def admin(auth: Auth) -> list[tuple[str, str]]:
    return bearer((await auth.admin_login()).access_token)


async def expect(call: object, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == code, caught.value.details()
    return caught.value


async def new_site(
    auth: Auth, admin: list[tuple[str, str]], domain: str = ""
) -> tuple[sites_pb2.Account, sites_pb2.SiteCredentials]:
    account = await auth.accounts.CreateAccount(
        sites_pb2.CreateAccountRequest(email=new_email(), name="Plant Co"), metadata=admin
    )
    domain = domain or f"{account.id[:8]}.plants.example.com"
    created = await auth.accounts.CreateSite(
        sites_pb2.CreateSiteRequest(account_id=account.id, domain=domain, name="Line 7"),
        metadata=admin,
    )
    return account, created


async def test_account_and_site_ids_are_found_in_any_case(
    auth: Auth, admin: list[tuple[str, str]]
) -> None:
    # They were looked up as written: in capitals an account or site was not found (and a
    # site created under such an account id would have named no account).
    account, created = await new_site(auth, admin)
    account_id, site_id = account.id.upper(), created.site.id.upper()
    got = await auth.accounts.GetAccount(
        sites_pb2.GetAccountRequest(account_id=account_id), metadata=admin
    )
    assert got.id == account.id
    other = await auth.accounts.CreateSite(
        sites_pb2.CreateSiteRequest(
            account_id=account_id, domain=f"b{account.id[:8]}.plants.example.com", name="B"
        ),
        metadata=admin,
    )
    assert other.site.account_id == account.id
    listed = await auth.accounts.ListSites(
        sites_pb2.ListSitesRequest(account_id=account_id), metadata=admin
    )
    assert listed.pagination.total == 2
    changed = await auth.accounts.UpdateAccount(
        sites_pb2.UpdateAccountRequest(account_id=account_id, max_concurrent_batches=7),
        metadata=admin,
    )
    assert changed.max_concurrent_batches == 7
    site = await auth.accounts.GetSite(sites_pb2.GetSiteRequest(site_id=site_id), metadata=admin)
    assert site.id == created.site.id
    renamed = await auth.accounts.UpdateSite(
        sites_pb2.UpdateSiteRequest(site_id=site_id, name="Line 8"), metadata=admin
    )
    assert renamed.name == "Line 8"
    rotated = await auth.accounts.RotateSiteSecret(
        sites_pb2.RotateSiteSecretRequest(site_id=site_id), metadata=admin
    )
    token = await auth.site_tokens.IssueSiteToken(
        sites_pb2.IssueSiteTokenRequest(site_id=site_id, client_secret=rotated.client_secret)
    )
    assert token.site_id == created.site.id


async def test_accounts_are_created_listed_and_changed(
    auth: Auth, admin: list[tuple[str, str]]
) -> None:
    email = new_email()
    account = await auth.accounts.CreateAccount(
        sites_pb2.CreateAccountRequest(email=email.upper(), name=" Plant Co "), metadata=admin
    )
    assert (account.email, account.name, account.is_active) == (email, "Plant Co", True)
    assert account.max_concurrent_batches == 5 and account.HasField("created_at")
    duplicate = await expect(
        auth.accounts.CreateAccount(
            sites_pb2.CreateAccountRequest(email=email, name="Again"), metadata=admin
        ),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert reason_of(duplicate) == "ACCOUNT_EXISTS"
    invalid = await expect(
        auth.accounts.CreateAccount(
            sites_pb2.CreateAccountRequest(email="x", name="", max_concurrent_batches=5000),
            metadata=admin,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert violations_of(invalid) == [
        FieldViolation("email", rules.MSG_EMAIL_FORMAT),
        FieldViolation("name", rules.MSG_NAME),
        FieldViolation("max_concurrent_batches", rules.MSG_MAX_BATCHES),
    ]
    found = await auth.accounts.ListAccounts(
        sites_pb2.ListAccountsRequest(search=email.split("@")[0]), metadata=admin
    )
    assert [a.id for a in found.accounts] == [account.id] and found.pagination.total == 1
    changed = await auth.accounts.UpdateAccount(
        sites_pb2.UpdateAccountRequest(account_id=account.id, max_concurrent_batches=12),
        metadata=admin,
    )
    assert (changed.max_concurrent_batches, changed.name) == (12, "Plant Co")
    assert (
        await auth.accounts.GetAccount(
            sites_pb2.GetAccountRequest(account_id=account.id), metadata=admin
        )
    ) == changed
    await expect(
        auth.accounts.GetAccount(sites_pb2.GetAccountRequest(account_id="nope"), metadata=admin),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_a_site_secret_is_shown_once_and_stored_as_a_digest(
    auth: Auth, admin: list[tuple[str, str]], backend: Backend
) -> None:
    account, created = await new_site(auth, admin)
    secret = created.client_secret
    assert secret.startswith("iots_") and len(secret) > 40
    site = created.site
    assert (site.account_id, site.name, site.is_active) == (account.id, "Line 7", True)
    listed = await auth.accounts.ListSites(
        sites_pb2.ListSitesRequest(account_id=account.id), metadata=admin
    )
    fetched = await auth.accounts.GetSite(sites_pb2.GetSiteRequest(site_id=site.id), metadata=admin)
    assert [s.id for s in listed.sites] == [site.id] and fetched == site
    assert secret not in str(listed) + str(fetched)
    stored = await backend.sql("auth", "SELECT secret_digest FROM sites")
    assert all(secret not in str(row) for row in stored)
    taken = await expect(
        auth.accounts.CreateSite(
            sites_pb2.CreateSiteRequest(
                account_id=account.id, domain=site.domain.upper(), name="X"
            ),
            metadata=admin,
        ),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert reason_of(taken) == "DOMAIN_TAKEN"
    for domain in ("localhost", "-bad-.example.com", "a..b.com", "x" * 64 + ".com", "1.2.3.4"):
        bad = await expect(
            auth.accounts.CreateSite(
                sites_pb2.CreateSiteRequest(account_id=account.id, domain=domain, name="X"),
                metadata=admin,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert violations_of(bad) == [FieldViolation("domain", rules.MSG_DOMAIN)]


async def test_site_tokens_by_id_or_domain(auth: Auth, admin: list[tuple[str, str]]) -> None:
    account, created = await new_site(auth, admin)
    site, secret = created.site, created.client_secret
    by_id = await auth.site_tokens.IssueSiteToken(
        sites_pb2.IssueSiteTokenRequest(site_id=site.id, client_secret=secret)
    )
    by_domain = await auth.site_tokens.IssueSiteToken(
        sites_pb2.IssueSiteTokenRequest(domain=site.domain.upper(), client_secret=secret)
    )
    for answer in (by_id, by_domain):
        assert (answer.site_id, answer.domain) == (site.id, site.domain)
        assert answer.expires_at.seconds - time.time() == pytest.approx(3600, abs=5)
        claims = jwt.decode(answer.token, options={"verify_signature": False})
        assert (claims["typ"], claims["sub"], claims["scope"]) == (
            "site",
            site.id,
            "telemetry:read telemetry:write",
        )
        assert (claims["domain"], claims["account"]) == (site.domain, account.id)
    info = await auth.auth.GetTokenInfo(
        auth_pb2.GetTokenInfoRequest(), metadata=bearer(by_id.token)
    )
    assert (info.token_type, info.subject, list(info.scopes)) == (
        "site",
        site.id,
        ["telemetry:read", "telemetry:write"],
    )
    # A site token is not a user's: user routes refuse it.
    await expect(
        auth.auth.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(by_id.token)),
        grpc.StatusCode.UNAUTHENTICATED,
    )


async def test_every_site_credential_failure_answers_the_same(
    auth: Auth, admin: list[tuple[str, str]]
) -> None:
    account, created = await new_site(auth, admin)
    site, secret = created.site, created.client_secret
    _, other = await new_site(auth, admin)
    attempts = [
        sites_pb2.IssueSiteTokenRequest(site_id=site.id, client_secret=secret + "x"),
        sites_pb2.IssueSiteTokenRequest(site_id=site.id, client_secret=other.client_secret),
        sites_pb2.IssueSiteTokenRequest(site_id="nope", client_secret=secret),
        sites_pb2.IssueSiteTokenRequest(domain="unknown.example.com", client_secret=secret),
        sites_pb2.IssueSiteTokenRequest(
            site_id=site.id, domain=other.site.domain, client_secret=secret
        ),
    ]
    rotated = await auth.accounts.RotateSiteSecret(
        sites_pb2.RotateSiteSecretRequest(site_id=site.id), metadata=admin
    )
    assert rotated.client_secret != secret and rotated.site.id == site.id
    attempts.append(sites_pb2.IssueSiteTokenRequest(site_id=site.id, client_secret=secret))
    failures = set()
    for request in attempts:
        error = await expect(
            auth.site_tokens.IssueSiteToken(request), grpc.StatusCode.UNAUTHENTICATED
        )
        failures.add((error.details(), reason_of(error)))
    fresh = rotated.client_secret
    await auth.site_tokens.IssueSiteToken(
        sites_pb2.IssueSiteTokenRequest(site_id=site.id, client_secret=fresh)
    )

    await auth.accounts.UpdateSite(
        sites_pb2.UpdateSiteRequest(site_id=site.id, is_active=False), metadata=admin
    )
    error = await expect(
        auth.site_tokens.IssueSiteToken(
            sites_pb2.IssueSiteTokenRequest(site_id=site.id, client_secret=fresh)
        ),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    failures.add((error.details(), reason_of(error)))
    await auth.accounts.UpdateSite(
        sites_pb2.UpdateSiteRequest(site_id=site.id, is_active=True), metadata=admin
    )
    await auth.accounts.UpdateAccount(
        sites_pb2.UpdateAccountRequest(account_id=account.id, is_active=False), metadata=admin
    )
    error = await expect(
        auth.site_tokens.IssueSiteToken(
            sites_pb2.IssueSiteTokenRequest(site_id=site.id, client_secret=fresh)
        ),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    failures.add((error.details(), reason_of(error)))
    assert failures == {(BAD_CLIENT, "INVALID_CLIENT")}

    missing = await expect(
        auth.site_tokens.IssueSiteToken(sites_pb2.IssueSiteTokenRequest()),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert [v.field for v in violations_of(missing)] == ["site_id", "client_secret"]


async def test_account_routes_need_an_admin(auth: Auth) -> None:
    _, login = await auth.user()
    error = await expect(
        auth.accounts.ListAccounts(
            sites_pb2.ListAccountsRequest(), metadata=bearer(login.access_token)
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert reason_of(error) == "MISSING_SCOPE"
