"""gRPC <-> domain translation for ``iot.auth.v1.AccountService`` and ``SiteTokenService``."""

from __future__ import annotations

from iot.auth.v1 import sites_pb2, sites_pb2_grpc
from iotkit.convert import epoch_timestamp
from iotkit.listing import pagination
from services.auth.core.servicer import Context
from services.auth.messages import account_message, site_message
from services.auth.sites.service import SiteService


class AccountServicer(sites_pb2_grpc.AccountServiceServicer):
    """Each RPC reads its message, calls the site logic and builds the answer."""

    def __init__(self, sites: SiteService) -> None:
        self._sites = sites

    async def CreateAccount(
        self, request: sites_pb2.CreateAccountRequest, context: Context
    ) -> sites_pb2.Account:
        """Create an account."""
        account = await self._sites.create_account(
            email=request.email,
            name=request.name,
            max_concurrent_batches=request.max_concurrent_batches,
            owner_user_id=request.owner_user_id,
        )
        return account_message(account)

    async def ListAccounts(
        self, request: sites_pb2.ListAccountsRequest, context: Context
    ) -> sites_pb2.Accounts:
        """A page of accounts."""
        found = await self._sites.list_accounts(
            page=request.page, limit=request.limit, search=request.search
        )
        return sites_pb2.Accounts(
            accounts=[account_message(account) for account in found.items],
            pagination=pagination(found.request, found.total),
        )

    async def GetAccount(
        self, request: sites_pb2.GetAccountRequest, context: Context
    ) -> sites_pb2.Account:
        """One account."""
        return account_message(await self._sites.get_account(account_id=request.account_id))

    async def UpdateAccount(
        self, request: sites_pb2.UpdateAccountRequest, context: Context
    ) -> sites_pb2.Account:
        """Change an account."""
        account = await self._sites.update_account(
            account_id=request.account_id,
            name=request.name if request.HasField("name") else None,
            is_active=request.is_active if request.HasField("is_active") else None,
            max_concurrent_batches=request.max_concurrent_batches
            if request.HasField("max_concurrent_batches")
            else None,
            owner_user_id=request.owner_user_id if request.HasField("owner_user_id") else None,
        )
        return account_message(account)

    async def CreateSite(
        self, request: sites_pb2.CreateSiteRequest, context: Context
    ) -> sites_pb2.SiteCredentials:
        """Create a site; its secret is in this answer only."""
        site, secret = await self._sites.create_site(
            account_id=request.account_id, domain=request.domain, name=request.name
        )
        return sites_pb2.SiteCredentials(site=site_message(site), client_secret=secret)

    async def ListSites(
        self, request: sites_pb2.ListSitesRequest, context: Context
    ) -> sites_pb2.Sites:
        """A page of an account's sites."""
        found = await self._sites.list_sites(
            account_id=request.account_id, page=request.page, limit=request.limit
        )
        return sites_pb2.Sites(
            sites=[site_message(site) for site in found.items],
            pagination=pagination(found.request, found.total),
        )

    async def GetSite(self, request: sites_pb2.GetSiteRequest, context: Context) -> sites_pb2.Site:
        """One site."""
        return site_message(await self._sites.get_site(site_id=request.site_id))

    async def UpdateSite(
        self, request: sites_pb2.UpdateSiteRequest, context: Context
    ) -> sites_pb2.Site:
        """Change a site."""
        site = await self._sites.update_site(
            site_id=request.site_id,
            name=request.name if request.HasField("name") else None,
            is_active=request.is_active if request.HasField("is_active") else None,
        )
        return site_message(site)

    async def RotateSiteSecret(
        self, request: sites_pb2.RotateSiteSecretRequest, context: Context
    ) -> sites_pb2.SiteCredentials:
        """Replace a site's secret; the new one is in this answer only."""
        site, secret = await self._sites.rotate_secret(site_id=request.site_id)
        return sites_pb2.SiteCredentials(site=site_message(site), client_secret=secret)


class SiteTokenServicer(sites_pb2_grpc.SiteTokenServiceServicer):
    """Site credentials for site tokens."""

    def __init__(self, sites: SiteService) -> None:
        self._sites = sites

    async def IssueSiteToken(
        self, request: sites_pb2.IssueSiteTokenRequest, context: Context
    ) -> sites_pb2.SiteToken:
        """A site token (seed 002 TokenResponseDto)."""
        grant = await self._sites.issue_token(
            site_id=request.site_id, domain=request.domain, client_secret=request.client_secret
        )
        return sites_pb2.SiteToken(
            token=grant.token,
            expires_at=epoch_timestamp(grant.expires_at),
            site_id=grant.site.id,
            domain=grant.site.domain,
        )
