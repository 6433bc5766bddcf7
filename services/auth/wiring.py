"""Assembles the auth process: database, keys, the logic of each API, servicers, server,
and the background sender of the email outbox."""

from __future__ import annotations

from pathlib import Path

from argon2 import PasswordHasher
from grpc import aio

from iot.auth.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    auth_pb2,
    auth_pb2_grpc,
    data_pb2,
    data_pb2_grpc,
    mfa_pb2,
    mfa_pb2_grpc,
    profile_pb2,
    profile_pb2_grpc,
    security_pb2,
    security_pb2_grpc,
    sites_pb2,
    sites_pb2_grpc,
)
from iot.system.v1 import system_pb2, system_pb2_grpc
from iotkit.checks import smtp_check
from iotkit.config import SERVICES, ConfigError, Settings
from iotkit.db import Database, open_database
from iotkit.diagnostics import DiagnosticsServicer
from iotkit.errors import ValidationFailed
from iotkit.interceptors import RequestCounters
from iotkit.limits import window_counter
from iotkit.migrations import History
from iotkit.process import open_metrics, standard_checks
from iotkit.server import ServiceProcess, build_server, channel
from iotkit.sqltypes import utcnow
from iotkit.tokens import KeySet, TokenVerifier, static_keys
from services.auth import lockout
from services.auth.admin.bootstrap import admin_from_environment
from services.auth.admin.service import AdminService
from services.auth.admin.servicer import AdminServicer
from services.auth.admin.store import AdminStore
from services.auth.core.self_service import SelfService
from services.auth.core.service import AuthService
from services.auth.core.servicer import AuthServicer
from services.auth.core.store import AuthStore, Base
from services.auth.crypto import SecretBox, Signer
from services.auth.data.service import DataExportService
from services.auth.data.servicer import DataServicer
from services.auth.data.store import ExportStore
from services.auth.housekeeping import Housekeeping
from services.auth.keys import KeyDecryptionError, SigningKeys
from services.auth.link_tokens import LinkTokenStore
from services.auth.mail.mailer import Mailer
from services.auth.mail.sender import OutboxSender, transport_for
from services.auth.mail.store import OutboxStore
from services.auth.mfa.service import MfaManager
from services.auth.mfa.servicer import MfaServicer
from services.auth.mfa.store import MfaStore
from services.auth.passwords import Passwords
from services.auth.profile.service import ProfileService
from services.auth.profile.servicer import ProfileServicer
from services.auth.profile.store import ProfileStore
from services.auth.revocations import RedisRelay, RevocationLog
from services.auth.security.service import SecurityService
from services.auth.security.servicer import SecurityServicer
from services.auth.security.store import SecurityLog, SessionStore
from services.auth.settings import AuthSettings
from services.auth.sites.service import SiteService
from services.auth.sites.servicer import AccountServicer, SiteTokenServicer
from services.auth.sites.store import SiteStore
from services.auth.system.probes import local_probe, remote_probe
from services.auth.system.service import SystemStatusService
from services.auth.system.servicer import SystemServicer

MIGRATIONS = History(
    service="auth", directory=Path(__file__).with_name("migrations"), metadata=Base.metadata
)
"""The auth service's schema history, applied at start and by ``iot migrate``."""

MAIL_WINDOW = 3600.0
# The outbox depth is a count query: often enough for a dashboard, rare enough to cost nothing.
QUEUE_SAMPLE_SECONDS = 10.0


async def open_auth_database(settings: Settings, *, schema: str | None = None) -> Database:
    """Auth's database, migrated to the head of its history."""
    return await open_database(service="auth", settings=settings, tables=MIGRATIONS, schema=schema)


async def build(
    settings: AuthSettings,
    *,
    address: str,
    schema: str | None = None,
    hasher: PasswordHasher | None = None,
) -> ServiceProcess:
    """Build the auth server bound to ``address``.

    ``hasher`` lets tests use cheaper argon2 parameters.
    """
    try:
        transport = transport_for(settings.smtp_url)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    database = await open_auth_database(settings, schema=schema)
    sessions = database.sessions
    store = AuthStore(sessions)
    admins = AdminStore(sessions)
    passwords = Passwords(hasher or PasswordHasher())
    if settings.admin_email and settings.admin_password:
        try:
            await admin_from_environment(
                store=store,
                admins=admins,
                passwords=passwords,
                email=settings.admin_email,
                password=settings.admin_password,
            )
        except ValidationFailed as exc:
            await database.close()
            broken = "; ".join(v.message for v in exc.violations)
            raise ConfigError(f"IOT_ADMIN_EMAIL/IOT_ADMIN_PASSWORD: {broken}") from exc
    try:
        keys = await SigningKeys.load_or_create(
            store=store, secret=settings.secret_key, now=utcnow()
        )
    except KeyDecryptionError as exc:
        # A configuration error: the process exits with one line naming the variable,
        # not a traceback, and leaves no connection open behind it.
        await database.close()
        raise ConfigError(f"IOT_SECRET_KEY: {exc}") from exc
    verifier = TokenVerifier(KeySet(static_keys(keys.public_keys().items())))

    secret = settings.secret_key
    log = SecurityLog(sessions)
    session_list = SessionStore(sessions)
    login_failures = window_counter(
        settings.redis_url, namespace="iot:auth:login-failures", window=lockout.WINDOW
    )
    mails_sent = window_counter(settings.redis_url, namespace="iot:auth:mails", window=MAIL_WINDOW)
    guard = lockout.LoginGuard(login_failures)
    outbox = OutboxStore(sessions)
    mail_box = SecretBox(secret, purpose="outbox-body")
    sender = OutboxSender(
        store=outbox, transport=transport, box=mail_box, sender=settings.mail_from
    )
    mailer = Mailer(outbox=outbox, box=mail_box, base_url=settings.base_url(), notify=sender.notify)
    links = LinkTokenStore(sessions)
    self_service = SelfService(
        store=store,
        links=links,
        mailer=mailer,
        passwords=passwords,
        guard=guard,
        mail_limit=mails_sent,
        log=log,
    )
    mfa = MfaManager(
        store=store,
        mfa=MfaStore(sessions),
        box=SecretBox(secret, purpose="totp-secret"),
        recovery_signer=Signer(secret, purpose="recovery-codes"),
        guard=guard,
        log=log,
    )
    service = AuthService(
        store=store,
        keys=keys,
        verifier=verifier,
        passwords=passwords,
        guard=guard,
        mfa=mfa,
        self_service=self_service,
        log=log,
        access_ttl=settings.access_token_ttl,
        refresh_ttl=settings.refresh_token_ttl,
        service_secret=settings.service_secret,
    )
    exports = ExportStore(sessions)
    data = DataExportService(
        store=store,
        sessions=session_list,
        log=log,
        exports=exports,
        signer=Signer(secret, purpose="download-links"),
        base_url=settings.base_url(),
    )
    sites = SiteService(sites=SiteStore(sessions), keys=keys)
    revocations = RevocationLog(store=store, access_ttl=settings.access_token_ttl)
    relay = (
        RedisRelay(revocations=revocations, redis_url=settings.redis_url)
        if settings.redis_url
        else None
    )
    housekeeping = Housekeeping(
        exports=exports, links=links, outbox=outbox, revocations=revocations
    )

    metrics = open_metrics("auth", settings, database)
    metrics.sampled_gauge(
        "iot_auth_outbox_pending",
        "Emails waiting in the outbox.",
        outbox.pending_count,
        period=QUEUE_SAMPLE_SECONDS,
    )

    counters = RequestCounters()
    checks = [
        *standard_checks(database, settings, service="auth", cache_required=True),
        smtp_check(settings.smtp_url, service="auth"),
    ]
    diagnostics = DiagnosticsServicer(service="auth", checks=checks, counters=counters)
    peers = {name: channel(settings.address(name)) for name in SERVICES if name != "auth"}

    def service_token() -> str:
        return service.service_token(service="auth").token

    system = SystemStatusService(
        local=local_probe(diagnostics),
        remotes={name: remote_probe(peer, service_token) for name, peer in peers.items()},
        active_users=service.active_users,
    )

    def register(server: aio.Server) -> list[str]:
        auth_pb2_grpc.add_AuthServiceServicer_to_server(
            AuthServicer(
                service=service, self_service=self_service, keys=keys, revocations=revocations
            ),
            server,
        )
        mfa_pb2_grpc.add_MfaServiceServicer_to_server(MfaServicer(mfa), server)
        profile_pb2_grpc.add_ProfileServiceServicer_to_server(
            ProfileServicer(ProfileService(store=ProfileStore(sessions), log=log)), server
        )
        security_pb2_grpc.add_SecurityServiceServicer_to_server(
            SecurityServicer(SecurityService(store=store, sessions=session_list, log=log)), server
        )
        data_pb2_grpc.add_DataServiceServicer_to_server(DataServicer(data), server)
        admin_pb2_grpc.add_AdminServiceServicer_to_server(
            AdminServicer(AdminService(store=admins, accounts=store, links=links, log=log)),
            server,
        )
        sites_pb2_grpc.add_AccountServiceServicer_to_server(AccountServicer(sites), server)
        sites_pb2_grpc.add_SiteTokenServiceServicer_to_server(SiteTokenServicer(sites), server)
        system_pb2_grpc.add_SystemServiceServicer_to_server(SystemServicer(system), server)
        return [
            auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name,
            mfa_pb2.DESCRIPTOR.services_by_name["MfaService"].full_name,
            profile_pb2.DESCRIPTOR.services_by_name["ProfileService"].full_name,
            security_pb2.DESCRIPTOR.services_by_name["SecurityService"].full_name,
            data_pb2.DESCRIPTOR.services_by_name["DataService"].full_name,
            admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
            sites_pb2.DESCRIPTOR.services_by_name["AccountService"].full_name,
            sites_pb2.DESCRIPTOR.services_by_name["SiteTokenService"].full_name,
            system_pb2.DESCRIPTOR.services_by_name["SystemService"].full_name,
        ]

    built = build_server(
        service="auth",
        register=register,
        verifier=verifier,
        session_check=service.session_is_live,
        address=address,
        counters=counters,
        diagnostics=diagnostics,
        metrics=metrics,
    )
    sender.start()
    housekeeping.start()
    if relay is not None:
        relay.start()
    metrics.start(settings.metrics_address("auth"))
    # Closed last-first: background work stops before the counters, channels and database.
    return ServiceProcess(
        built,
        [
            metrics.aclose,
            database.close,
            *(peer.close for peer in peers.values()),
            login_failures.aclose,
            mails_sent.aclose,
            sender.stop,
            housekeeping.stop,
            *([relay.stop] if relay is not None else []),
        ],
        metrics,
    )
