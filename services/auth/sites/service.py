"""Accounts, their upload sites and site tokens (seed 002).

A site's client secret is random, answered once (at creation or rotation)
and stored as a SHA-256 digest. ``issue_token`` exchanges it for a short-lived
``site`` token with the scopes ``telemetry:read telemetry:write``; every way
that can fail (unknown site, wrong secret, inactive site or account) answers
the same 401.

An account may name its owner, a user: the token carries the account, its
owner (``owner``: the devices its sites may write are that user's) and its
batch limit (``max_batches``), so that devices and telemetry decide without
asking auth. A change to the account reaches tokens issued afterwards.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from iotkit import reasons
from iotkit.errors import NotFound, Unauthenticated
from iotkit.listing import PageRequest, check_page
from iotkit.sqltypes import utcnow
from iotkit.tokens import ISSUER
from iotkit.validation import Violations
from services.auth import rules
from services.auth.crypto import digest, new_token
from services.auth.keys import SigningKeys
from services.auth.sites.store import SiteStore
from services.auth.sites.values import Site, SiteAccount

SITE_TOKEN_TTL = 3600
# Read: a site follows its own batches, files and error logs (telemetry lets a site
# read nothing else). Write: it creates batches, uploads files and writes readings.
SITE_SCOPES = ("telemetry:read", "telemetry:write")
MAX_BATCHES_DEFAULT = 5
SECRET_PREFIX = "iots_"
"""Marks client secrets, so that secret scanners can spot a leaked one."""
BAD_CLIENT = "Invalid client credentials"

# Compared against when the site is unknown, so that both failures cost the same.
_DECOY_DIGEST = digest(new_token())


@dataclass(frozen=True, slots=True)
class SiteTokenGrant:
    """A minted site token."""

    token: str
    expires_at: int
    site: Site


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Listing(Generic[T]):
    """A page of accounts or sites."""

    items: list[T]
    total: int
    request: PageRequest


class SiteService:
    """Administration of accounts and sites, and site tokens."""

    def __init__(
        self, *, sites: SiteStore, keys: SigningKeys, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._sites = sites
        self._keys = keys
        self._clock = clock

    async def create_account(
        self, *, email: str, name: str, max_concurrent_batches: int, owner_user_id: str = ""
    ) -> SiteAccount:
        """Create an account after checking every field; ``owner_user_id`` is optional."""
        violations = Violations()
        email = rules.check_email(violations, email)
        name = rules.check_name(violations, name)
        batches = rules.check_max_batches(violations, max_concurrent_batches or MAX_BATCHES_DEFAULT)
        owner = await self._check_owner(violations, owner_user_id) if owner_user_id else None
        violations.raise_if_any()
        return await self._sites.add_account(
            email=email,
            name=name,
            max_concurrent_batches=batches,
            owner_user_id=owner,
            now=self._clock(),
        )

    async def _check_owner(self, violations: Violations, user_id: str) -> str:
        """The id of an existing user to own an account; a field violation otherwise."""
        user_id = user_id.strip().lower()
        if not rules.is_uuid(user_id) or not await self._sites.user_exists(user_id=user_id):
            violations.add("owner_user_id", rules.MSG_OWNER)
        return user_id

    async def list_accounts(self, *, page: int, limit: int, search: str) -> Listing[SiteAccount]:
        """A page of accounts, newest first."""
        violations = Violations()
        request = check_page(violations, page, limit)
        search = rules.check_search(violations, search)
        violations.raise_if_any()
        accounts, total = await self._sites.accounts(page=request, search=search)
        return Listing(accounts, total, request)

    async def get_account(self, *, account_id: str) -> SiteAccount:
        """One account; NOT_FOUND when there is none."""
        known = rules.canonical_uuid(account_id)
        account = await self._sites.account(account_id=known) if known else None
        if account is None:
            raise NotFound("Account not found")
        return account

    async def update_account(
        self,
        *,
        account_id: str,
        name: str | None,
        is_active: bool | None,
        max_concurrent_batches: int | None,
        owner_user_id: str | None = None,
    ) -> SiteAccount:
        """Change the fields that are not None; an empty ``owner_user_id`` leaves the account
        with no owner (its sites then write no device)."""
        violations = Violations()
        changes: dict[str, Any] = {}
        if owner_user_id is not None and owner_user_id.strip():
            owner_user_id = await self._check_owner(violations, owner_user_id)
        elif owner_user_id is not None:
            owner_user_id = ""
        if name is not None:
            changes["name"] = rules.check_name(violations, name)
        if max_concurrent_batches is not None:
            changes["max_concurrent_batches"] = rules.check_max_batches(
                violations, max_concurrent_batches
            )
        if is_active is not None:
            changes["is_active"] = is_active
        violations.raise_if_any()
        known = await self.get_account(account_id=account_id)
        account = await self._sites.update_account(
            account_id=known.id, now=self._clock(), changes=changes, owner_user_id=owner_user_id
        )
        if account is None:
            raise NotFound("Account not found")
        return account

    async def create_site(self, *, account_id: str, domain: str, name: str) -> tuple[Site, str]:
        """Create a site of an account; answers it with its client secret (shown once)."""
        violations = Violations()
        domain = rules.check_domain(violations, domain)
        name = rules.check_name(violations, name)
        violations.raise_if_any()
        account = await self.get_account(account_id=account_id)
        secret = SECRET_PREFIX + new_token()
        site = await self._sites.add_site(
            account_id=account.id,
            domain=domain,
            name=name,
            secret_digest=digest(secret),
            now=self._clock(),
        )
        return site, secret

    async def list_sites(self, *, account_id: str, page: int, limit: int) -> Listing[Site]:
        """A page of an account's sites, newest first."""
        violations = Violations()
        request = check_page(violations, page, limit)
        violations.raise_if_any()
        account = await self.get_account(account_id=account_id)
        sites, total = await self._sites.sites(account_id=account.id, page=request)
        return Listing(sites, total, request)

    async def get_site(self, *, site_id: str) -> Site:
        """One site; NOT_FOUND when there is none."""
        known = rules.canonical_uuid(site_id)
        site = await self._sites.site(site_id=known) if known else None
        if site is None:
            raise NotFound("Site not found")
        return site

    async def update_site(self, *, site_id: str, name: str | None, is_active: bool | None) -> Site:
        """Change the fields that are not None."""
        violations = Violations()
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = rules.check_name(violations, name)
        if is_active is not None:
            changes["is_active"] = is_active
        violations.raise_if_any()
        known = await self.get_site(site_id=site_id)
        site = await self._sites.update_site(site_id=known.id, now=self._clock(), changes=changes)
        if site is None:
            raise NotFound("Site not found")
        return site

    async def rotate_secret(self, *, site_id: str) -> tuple[Site, str]:
        """Replace a site's client secret; the old one stops working at once."""
        known = await self.get_site(site_id=site_id)
        secret = SECRET_PREFIX + new_token()
        now = self._clock()
        site = await self._sites.update_site(
            site_id=known.id,
            now=now,
            changes={"secret_digest": digest(secret), "secret_rotated_at": now},
        )
        if site is None:
            raise NotFound("Site not found")
        return site, secret

    async def issue_token(self, *, site_id: str, domain: str, client_secret: str) -> SiteTokenGrant:
        """A site token for valid site credentials; one generic 401 for every failure."""
        site_id, domain = site_id.strip(), domain.strip().lower().rstrip(".")
        violations = Violations()
        if not site_id and not domain:
            violations.add("site_id", rules.MSG_SITE_REF)
        if not client_secret:
            violations.add("client_secret", "Client secret is required")
        violations.raise_if_any()
        site = None
        if site_id and (known := rules.canonical_uuid(site_id)):
            site = await self._sites.site(site_id=known)
        elif not site_id:
            site = await self._sites.site_by_domain(domain=domain)
        matches = hmac.compare_digest(
            site.secret_digest if site else _DECOY_DIGEST, digest(client_secret)
        )
        if site is None or not matches or not site.is_active or (domain and site.domain != domain):
            raise Unauthenticated(BAD_CLIENT, reason=reasons.INVALID_CLIENT)
        account = await self._sites.account(account_id=site.account_id)
        if account is None or not account.is_active:
            raise Unauthenticated(BAD_CLIENT, reason=reasons.INVALID_CLIENT)
        now = int(self._clock().timestamp())
        claims = {
            "iss": ISSUER,
            "sub": site.id,
            "role": "site",
            "typ": "site",
            "scope": " ".join(SITE_SCOPES),
            "domain": site.domain,
            "account": account.id,
            "owner": account.owner_user_id or "",
            "max_batches": account.max_concurrent_batches,
            "jti": str(uuid.uuid4()),
            "iat": now,
            "exp": now + SITE_TOKEN_TTL,
        }
        return SiteTokenGrant(self._keys.sign(claims), now + SITE_TOKEN_TTL, site)
