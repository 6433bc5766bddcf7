"""Helpers of the auth tests: a real SMTP server (aiosmtpd), the auth process, its stubs.

``smtp_server()`` runs aiosmtpd on 127.0.0.1 with a port chosen by the OS and
collects every message; ``start_auth`` starts the auth process of the
suite's real wiring with that server as ``IOT_SMTP_URL``. Test modules make
their fixtures from these, so each test gets its own server and schema.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlsplit

import grpc
import pyotp
from aiosmtpd.controller import Controller
from argon2 import PasswordHasher

from iot.auth.v1 import (
    admin_pb2_grpc,
    auth_pb2,
    auth_pb2_grpc,
    data_pb2,
    data_pb2_grpc,
    mfa_pb2,
    mfa_pb2_grpc,
    profile_pb2_grpc,
    security_pb2_grpc,
    sites_pb2_grpc,
)
from tests import leak_scan
from tests.conftest import FAST_HASHER, Backend, Suite, start_suite
from tests.support import PASSWORD, bearer, client, new_email

NEW_PASSWORD = "N3w!passw0rd"
ADMIN_EMAIL = "root@example.com"
ADMIN_PASSWORD = "Adm1n!passw0rd"
CHROME = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"

for _password in (NEW_PASSWORD, ADMIN_PASSWORD):
    leak_scan.register(leak_scan.PASSWORD, _password)

_LINK_TOKEN = re.compile(r"[?&]token=([A-Za-z0-9_-]+)")


@dataclass
class Mailbox:
    """What the test SMTP server received; the first ``refuse`` deliveries get a 451."""

    url: str = ""
    refuse: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    attempts: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """aiosmtpd's hook: keep the message (runs in the server's thread)."""
        with self._lock:
            self.attempts += 1
            if self.attempts <= self.refuse:
                return "451 4.3.0 Try again later"
            parsed = message_from_bytes(envelope.content, policy=policy.default)
            assert isinstance(parsed, EmailMessage)
            self.messages.append(parsed)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        """Messages received for ``address``."""
        with self._lock:
            return [m for m in self.messages if m["To"] == address]

    async def wait(self, address: str, subject: str, *, count: int = 1) -> EmailMessage:
        """The ``count``-th message to ``address`` whose subject contains ``subject``."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            found = [m for m in self.to(address) if subject.lower() in m["Subject"].lower()]
            if len(found) >= count:
                return found[count - 1]
            await asyncio.sleep(0.02)
        raise AssertionError(f"no email {subject!r} #{count} for {address}")

    async def token(self, address: str, subject: str, *, count: int = 1) -> str:
        """The link token of a message."""
        return link_token(await self.wait(address, subject, count=count))


def blob(value: object) -> bytes:
    """A binary column's value as bytes, whichever driver read it."""
    assert isinstance(value, bytes | bytearray | memoryview), value
    return bytes(value)


def link_token(message: EmailMessage) -> str:
    """The token of the link in an email."""
    body = message.get_content()
    found = _LINK_TOKEN.search(body)
    assert found, body
    return found.group(1)


def link_request(url: str) -> data_pb2.DownloadExportRequest:
    """The request that a signed download link stands for."""
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc) == ("https", "iot.example.com")
    _, v1, downloads, export_id, file_name = parts.path.split("/")
    assert (v1, downloads) == ("v1", "downloads")
    query = parse_qs(parts.query)
    return data_pb2.DownloadExportRequest(
        export_id=export_id,
        file_name=file_name,
        expires=int(query["expires"][0]),
        signature=query["signature"][0],
    )


class _Controller(Controller):
    """aiosmtpd's controller, able to listen on a port the OS picks (port 0)."""

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@contextmanager
def smtp_server(refuse: int = 0) -> Iterator[Mailbox]:
    """A real SMTP server on 127.0.0.1 for one test."""
    mailbox = Mailbox(refuse=refuse)
    controller = _Controller(mailbox, hostname="127.0.0.1", port=0)
    controller.start()
    mailbox.url = f"smtp://127.0.0.1:{controller.port}"
    try:
        yield mailbox
    finally:
        controller.stop()


@dataclass
class Auth:
    """The running auth process and a stub for each of its services."""

    suite: Suite
    channel: grpc.aio.Channel
    mailbox: Mailbox | None

    def __post_init__(self) -> None:
        self.auth = auth_pb2_grpc.AuthServiceStub(self.channel)
        self.mfa = mfa_pb2_grpc.MfaServiceStub(self.channel)
        self.profile = profile_pb2_grpc.ProfileServiceStub(self.channel)
        self.security = security_pb2_grpc.SecurityServiceStub(self.channel)
        self.data = data_pb2_grpc.DataServiceStub(self.channel)
        self.admin = admin_pb2_grpc.AdminServiceStub(self.channel)
        self.accounts = sites_pb2_grpc.AccountServiceStub(self.channel)
        self.site_tokens = sites_pb2_grpc.SiteTokenServiceStub(self.channel)

    async def register(self, email: str | None = None, **fields: Any) -> str:
        """Register an account; answers its email."""
        email = email or new_email()
        await self.auth.Register(auth_pb2.RegisterRequest(email=email, password=PASSWORD, **fields))
        return email

    async def login(
        self, email: str, password: str = PASSWORD, *, agent: str = "", ip: str = "", **extra: Any
    ) -> auth_pb2.LoginResponse:
        """Log in."""
        return await self.auth.Login(
            auth_pb2.LoginRequest(email=email, password=password, **extra),
            metadata=client(ip=ip, agent=agent) or None,
        )

    async def user(self) -> tuple[str, auth_pb2.LoginResponse]:
        """A new account, logged in."""
        email = await self.register()
        return email, await self.login(email)

    async def admin_login(self) -> auth_pb2.LoginResponse:
        """The admin created from IOT_ADMIN_EMAIL, logged in."""
        return await self.login(ADMIN_EMAIL, ADMIN_PASSWORD)


def totp_code(secret: str, *, steps_ahead: int = 0) -> str:
    """The TOTP code of ``secret`` ``steps_ahead`` periods from now."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


async def enable_mfa(auth: Auth, token: str) -> tuple[str, list[str]]:
    """Set up and enable MFA; answers the secret and the recovery codes.

    The enabling code is the current step's, so a login can use the next step's.
    """
    setup = await auth.mfa.SetupMfa(mfa_pb2.SetupMfaRequest(), metadata=bearer(token))
    enabled = await auth.mfa.EnableMfa(
        mfa_pb2.EnableMfaRequest(code=totp_code(setup.secret)), metadata=bearer(token)
    )
    return setup.secret, list(enabled.recovery_codes)


@asynccontextmanager
async def start_auth(
    backend: Backend,
    *,
    mailbox: Mailbox | None = None,
    redis_url: str | None = None,
    services: tuple[str, ...] = ("auth",),
    hasher: PasswordHasher | None = FAST_HASHER,
) -> AsyncIterator[Auth]:
    """The auth process (and ``services``) with the test SMTP server, an admin, maybe Redis;
    ``hasher`` as :func:`~tests.conftest.start_suite` takes it."""
    suite = await start_suite(
        backend,
        services,
        hasher=hasher,
        smtp_url=mailbox.url if mailbox else None,
        redis_url=redis_url,
        admin_email=ADMIN_EMAIL,
        admin_password=ADMIN_PASSWORD,
        public_url="https://iot.example.com",
    )
    try:
        async with grpc.aio.insecure_channel(suite.address("auth")) as channel:
            yield Auth(suite, channel, mailbox)
    finally:
        await suite.aclose()
