"""Sending the outbox: over SMTP when ``IOT_SMTP_URL`` is set, otherwise to the log.

The sender runs in the background of the auth process. It wakes when a
request queues an email (and every few seconds), claims what is due, sends
each message with ``smtplib`` in a thread, and retries failures with
exponential backoff. The log transport records that an email would have been
sent, to whom and why, but never its body: the body holds a single-use link.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Protocol
from urllib.parse import unquote, urlsplit

from iotkit.outages import log_failed_round
from iotkit.sqltypes import utcnow
from iotkit.tasks import finish
from services.auth.crypto import SecretBox
from services.auth.mail.store import LOGGED, SENT, OutboxRow, OutboxStore

log = logging.getLogger(__name__)

SMTP_TIMEOUT = 10.0


class Transport(Protocol):
    """Delivers one message or raises."""

    status: str
    """The outbox status of a delivered message: ``sent`` or ``logged``."""

    async def deliver(self, message: EmailMessage, *, kind: str) -> None:
        """Deliver ``message``; raises on failure."""
        ...


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    """Where and how to reach the SMTP server, from ``smtp://`` or ``smtps://`` URLs."""

    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> SmtpTarget:
        """Read ``smtp[s]://[user:password@]host[:port][?starttls=true]``."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("IOT_SMTP_URL must start with smtp:// or smtps://")
        implicit = parts.scheme == "smtps"
        return cls(
            host=parts.hostname or "localhost",
            port=parts.port or (465 if implicit else 25),
            implicit_tls=implicit,
            starttls="starttls=true" in parts.query.lower(),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


class SmtpTransport:
    """Delivers through an SMTP server with ``smtplib`` (blocking, so in a thread)."""

    status = SENT

    def __init__(self, target: SmtpTarget) -> None:
        self._target = target

    def _send(self, message: EmailMessage) -> None:
        target = self._target
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if target.implicit_tls:
            client = smtplib.SMTP_SSL(
                target.host, target.port, timeout=SMTP_TIMEOUT, context=context
            )
        else:
            client = smtplib.SMTP(target.host, target.port, timeout=SMTP_TIMEOUT)
        with client:
            if target.starttls:
                client.starttls(context=context)
            if target.username is not None:
                client.login(target.username, target.password or "")
            client.send_message(message)

    async def deliver(self, message: EmailMessage, *, kind: str) -> None:
        """Send ``message``."""
        await asyncio.to_thread(self._send, message)


class LogTransport:
    """Stands in for SMTP when none is configured: logs that a message was due, not its body."""

    status = LOGGED

    async def deliver(self, message: EmailMessage, *, kind: str) -> None:
        """Log the message's kind and recipient."""
        log.info(
            "email not sent: IOT_SMTP_URL is not set",
            extra={"email_kind": kind, "to": message["To"], "subject": message["Subject"]},
        )


def transport_for(smtp_url: str | None) -> Transport:
    """SMTP when ``smtp_url`` is set, else the log."""
    return SmtpTransport(SmtpTarget.parse(smtp_url)) if smtp_url else LogTransport()


class OutboxSender:
    """Delivers due outbox emails in the background, with retries."""

    def __init__(
        self,
        *,
        store: OutboxStore,
        transport: Transport,
        box: SecretBox,
        sender: str,
        poll_interval: float = 5.0,
        retry_base: float = 5.0,
        retry_max: float = 3600.0,
        max_attempts: int = 8,
        batch: int = 20,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._transport = transport
        self._box = box
        self._sender = sender
        # Message-IDs name the sender's domain, as RFC 5322 advises.
        self._domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
        self._poll_interval = poll_interval
        self._retry_base = retry_base
        self._retry_max = retry_max
        self._max_attempts = max_attempts
        self._batch = batch
        self._clock = clock
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        """Wake the sender: an email was queued."""
        self._wake.set()

    def start(self) -> None:
        """Start the background loop."""
        self._stopping = False
        self._task = asyncio.create_task(self._loop(), name="outbox-sender")

    async def stop(self) -> None:
        """Stop after the email being sent, if any (so it is not sent twice); what is
        still due is sent by the next start."""
        self._stopping = True
        self._wake.set()
        # A send that hangs is cut off: its lease lets a later round retry it.
        await finish(self._task, within=SMTP_TIMEOUT * 2)
        self._task = None

    async def _loop(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
            self._wake.clear()
            try:
                while not self._stopping and await self.deliver_due() == self._batch:
                    pass
            except Exception as exc:  # the next round retries
                log_failed_round(log, "outbox round failed", exc)

    async def deliver_due(self) -> int:
        """Send what is due now; answers how many emails were claimed."""
        now = self._clock()
        # The lease outlasts a send that times out, so no one else claims it meanwhile.
        lease = now + timedelta(seconds=SMTP_TIMEOUT * 3)
        claimed = await self._store.claim_due(now=now, lease_until=lease, limit=self._batch)
        for row in claimed:
            # Once stopping, the rest stay claimed until their lease ends, then go out.
            if not self._stopping:
                await self._deliver(row)
        return len(claimed)

    async def _deliver(self, row: OutboxRow) -> None:
        try:
            message = EmailMessage()
            message["From"] = self._sender
            message["To"] = row.to_address
            message["Subject"] = row.subject
            # Both stay the same on every retry of the email: it was written when queued,
            # and one id lets a recipient drop a copy that a timed-out send delivered after all.
            message["Date"] = formatdate(row.created_at.timestamp(), usegmt=True)
            message["Message-ID"] = f"<{row.id}@{self._domain}>"
            message.set_content(self._box.open(row.sealed_body))
            await self._transport.deliver(message, kind=row.kind)
        except Exception as exc:  # SMTP, network or decryption failure: retry later
            attempts = row.attempts + 1
            retry_at = None
            if attempts < self._max_attempts:
                delay = min(self._retry_base * 2 ** (attempts - 1), self._retry_max)
                retry_at = self._clock() + timedelta(seconds=delay)
            # The class name says what failed; the message may quote the recipient.
            await self._store.retry_later(
                email_id=row.id, error=type(exc).__name__, retry_at=retry_at
            )
            log.warning(
                "email delivery failed",
                extra={
                    "email_id": row.id,
                    "email_kind": row.kind,
                    "attempts": attempts,
                    "error": type(exc).__name__,
                    "gave_up": retry_at is None,
                },
            )
            if retry_at is not None:
                self._schedule_wake(retry_at)
            return
        await self._store.settle(email_id=row.id, status=self._transport.status, now=self._clock())

    def _schedule_wake(self, when: datetime) -> None:
        # Retries shorter than the poll interval would otherwise wait for the next poll.
        delay = (when - self._clock()).total_seconds()
        if delay < self._poll_interval:
            asyncio.get_running_loop().call_later(max(delay, 0.0), self._wake.set)
