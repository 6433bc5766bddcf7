"""Accounts, their upload sites and site tokens (seed 002).

A site's client secret is random, answered once (at creation or rotation)
and stored as a SHA-256 digest. ``issue_token`` exchanges it for a short-lived
``site`` token with the scope ``telemetry:write``; every way that can fail
(unknown site, wrong secret, inactive site or account) answers the same 401.
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
from services.auth.sites.store import AccountRow, SiteRow, SiteStore

SITE_TOKEN_TTL = 3600
SITE_SCOPES = ("telemetry:write",)
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
    site: SiteRow


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Listing(Generic[T]):
    """A page of rows."""

    rows: list[T]
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
        self, *, email: str, name: str, max_concurrent_batches: int
    ) -> AccountRow:
        """Create an account after checking every field."""
        violations = Violations()
        email = rules.check_email(violations, email)
        name = rules.check_name(violations, name)
        batches = rules.check_max_batches(violations, max_concurrent_batches or MAX_BATCHES_DEFAULT)
        violations.raise_if_any()
        return await self._sites.add_account(
            email=email, name=name, max_concurrent_batches=batches, now=self._clock()
        )

    async def list_accounts(self, *, page: int, limit: int, search: str) -> Listing[AccountRow]:
        """A page of accounts, newest first."""
        violations = Violations()
        request = check_page(violations, page, limit)
        violations.raise_if_any()
        rows, total = await self._sites.accounts(page=request, search=search.strip())
        return Listing(rows, total, request)

    async def get_account(self, *, account_id: str) -> AccountRow:
        """One account; NOT_FOUND when there is none."""
        row = (
            await self._sites.account(account_id=account_id) if rules.is_uuid(account_id) else None
        )
        if row is None:
            raise NotFound("Account not found")
        return row

    async def update_account(
        self,
        *,
        account_id: str,
        name: str | None,
        is_active: bool | None,
        max_concurrent_batches: int | None,
    ) -> AccountRow:
        """Change the fields that are not None."""
        violations = Violations()
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = rules.check_name(violations, name)
        if max_concurrent_batches is not None:
            changes["max_concurrent_batches"] = rules.check_max_batches(
                violations, max_concurrent_batches
            )
        if is_active is not None:
            changes["is_active"] = is_active
        violations.raise_if_any()
        await self.get_account(account_id=account_id)
        row = await self._sites.update_account(
            account_id=account_id, now=self._clock(), changes=changes
        )
        if row is None:
            raise NotFound("Account not found")
        return row

    async def create_site(self, *, account_id: str, domain: str, name: str) -> tuple[SiteRow, str]:
        """Create a site of an account; answers it with its client secret (shown once)."""
        violations = Violations()
        domain = rules.check_domain(violations, domain)
        name = rules.check_name(violations, name)
        violations.raise_if_any()
        await self.get_account(account_id=account_id)
        secret = SECRET_PREFIX + new_token()
        site = await self._sites.add_site(
            account_id=account_id,
            domain=domain,
            name=name,
            secret_digest=digest(secret),
            now=self._clock(),
        )
        return site, secret

    async def list_sites(self, *, account_id: str, page: int, limit: int) -> Listing[SiteRow]:
        """A page of an account's sites, newest first."""
        violations = Violations()
        request = check_page(violations, page, limit)
        violations.raise_if_any()
        await self.get_account(account_id=account_id)
        rows, total = await self._sites.sites(account_id=account_id, page=request)
        return Listing(rows, total, request)

    async def get_site(self, *, site_id: str) -> SiteRow:
        """One site; NOT_FOUND when there is none."""
        row = await self._sites.site(site_id=site_id) if rules.is_uuid(site_id) else None
        if row is None:
            raise NotFound("Site not found")
        return row

    async def update_site(
        self, *, site_id: str, name: str | None, is_active: bool | None
    ) -> SiteRow:
        """Change the fields that are not None."""
        violations = Violations()
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = rules.check_name(violations, name)
        if is_active is not None:
            changes["is_active"] = is_active
        violations.raise_if_any()
        await self.get_site(site_id=site_id)
        row = await self._sites.update_site(site_id=site_id, now=self._clock(), changes=changes)
        if row is None:
            raise NotFound("Site not found")
        return row

    async def rotate_secret(self, *, site_id: str) -> tuple[SiteRow, str]:
        """Replace a site's client secret; the old one stops working at once."""
        await self.get_site(site_id=site_id)
        secret = SECRET_PREFIX + new_token()
        now = self._clock()
        row = await self._sites.update_site(
            site_id=site_id,
            now=now,
            changes={"secret_digest": digest(secret), "secret_rotated_at": now},
        )
        if row is None:
            raise NotFound("Site not found")
        return row, secret

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
        if site_id and rules.is_uuid(site_id):
            site = await self._sites.site(site_id=site_id)
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
            "max_batches": account.max_concurrent_batches,
            "jti": str(uuid.uuid4()),
            "iat": now,
            "exp": now + SITE_TOKEN_TTL,
        }
        return SiteTokenGrant(self._keys.sign(claims), now + SITE_TOKEN_TTL, site)
