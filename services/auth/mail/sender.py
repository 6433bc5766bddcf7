"""Sending auth's outbox: over SMTP when ``IOT_SMTP_URL`` is set, otherwise to the log.

The sender runs in the background of the auth process (an
:class:`iotkit.outbox.OutboxLoop`). It wakes when a request queues an email
(and every few seconds), claims what is due, sends each message through an
:mod:`iotkit.mail` transport and retries failures with exponential backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from iotkit.mail import (
    SMTP_TIMEOUT,
    LogTransport,
    SmtpTarget,
    SmtpTransport,
    Transport,
    compose,
    transport_for,
)
from iotkit.outbox import Backoff, OutboxLoop
from iotkit.sqltypes import utcnow
from services.auth.crypto import SecretBox
from services.auth.mail.store import OutboxRow, OutboxStore

__all__ = [
    "LogTransport",
    "OutboxSender",
    "SmtpTarget",
    "SmtpTransport",
    "Transport",
    "transport_for",
]

log = logging.getLogger(__name__)


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
        self._backoff = Backoff(base=retry_base, maximum=retry_max, attempts=max_attempts)
        self._batch = batch
        self._clock = clock
        self._loop = OutboxLoop(
            round=self.deliver_due,
            batch=batch,
            poll_interval=poll_interval,
            name="outbox-sender",
            stop_within=SMTP_TIMEOUT * 2,
        )

    def notify(self) -> None:
        """Wake the sender: an email was queued."""
        self._loop.notify()

    def start(self) -> None:
        """Start the background loop."""
        self._loop.start()

    async def stop(self) -> None:
        """Stop after the email being sent, if any (so it is not sent twice); what is
        still due is sent by the next start."""
        await self._loop.stop()

    async def deliver_due(self) -> int:
        """Send what is due now; answers how many emails were claimed."""
        now = self._clock()
        # The lease outlasts a send that times out, so no one else claims it meanwhile.
        lease = now + timedelta(seconds=SMTP_TIMEOUT * 3)
        claimed = await self._store.claim_due(now=now, lease_until=lease, limit=self._batch)
        for row in claimed:
            # Once stopping, the rest stay claimed until their lease ends, then go out.
            if not self._loop.stopping:
                await self._deliver(row)
        return len(claimed)

    async def _deliver(self, row: OutboxRow) -> None:
        try:
            message = compose(
                sender=self._sender,
                to=row.to_address,
                subject=row.subject,
                body=self._box.open(row.sealed_body),
                created_at=row.created_at,
                message_id=row.id,
            )
            await self._transport.deliver(message, kind=row.kind)
        except Exception as exc:  # SMTP, network or decryption failure: retry later
            attempts = row.attempts + 1
            delay = self._backoff.delay(attempts)
            retry_at = None if delay is None else self._clock() + timedelta(seconds=delay)
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
            if delay is not None:
                self._loop.wake_in(delay)
            return
        await self._store.settle(email_id=row.id, status=self._transport.status, now=self._clock())
