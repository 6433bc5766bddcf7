"""``iot.auth.v1.AccountService`` and ``SiteTokenService`` (protos/iot/auth/v1/sites.proto):
accounts, sites, site tokens.
"""
