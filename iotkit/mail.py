"""Sending email: SMTP when ``IOT_SMTP_URL`` is set, otherwise to the log.

What every process that sends email shares: where the SMTP server is
(:class:`SmtpTarget`), the transports that deliver one message, and how a
queued message becomes an :class:`~email.message.EmailMessage`. Each service
keeps its own outbox table and drives it with :class:`iotkit.outbox.OutboxLoop`.
The log transport records that an email would have been sent, to whom and
why, but never its body: a body may hold a single-use link.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Protocol
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

SMTP_TIMEOUT = 10.0
SENT, LOGGED = "sent", "logged"
"""Outbox statuses of a delivered message: sent over SMTP, or only logged."""


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


def compose(
    *, sender: str, to: str, subject: str, body: str, created_at: datetime, message_id: str
) -> EmailMessage:
    """A queued email as a message.

    Date and Message-ID come from the queued row, so every retry of it is the
    same message: one id lets a recipient drop a copy that a timed-out send
    delivered after all. Message-IDs name the sender's domain, as RFC 5322 advises.
    """
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(created_at.timestamp(), usegmt=True)
    message["Message-ID"] = f"<{message_id}@{domain}>"
    message.set_content(body)
    return message
