"""Auth's periodic clean-up: expired exports, spent link tokens, old delivered emails,
revocations whose tokens have all expired.

Runs every ``period`` seconds in the background; a failed round is logged
and retried on the next one, never fatal to the process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from iotkit.outages import log_failed_round
from iotkit.sqltypes import utcnow
from iotkit.tasks import cancel
from services.auth.data.store import ExportStore
from services.auth.link_tokens import LinkTokenStore
from services.auth.mail.store import OutboxStore
from services.auth.revocations import RevocationLog

log = logging.getLogger(__name__)

PERIOD = 600.0
LINK_TOKENS_KEPT = timedelta(days=7)
EMAILS_KEPT = timedelta(days=30)


class Housekeeping:
    """Deletes what auth no longer needs."""

    def __init__(
        self,
        *,
        exports: ExportStore,
        links: LinkTokenStore,
        outbox: OutboxStore,
        revocations: RevocationLog | None = None,
        period: float = PERIOD,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._exports = exports
        self._links = links
        self._outbox = outbox
        self._revocations = revocations
        self._period = period
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> None:
        """One round of clean-up."""
        now = self._clock()
        await self._exports.purge(now=now)
        await self._links.purge(before=now - LINK_TOKENS_KEPT)
        await self._outbox.purge(before=now - EMAILS_KEPT)
        if self._revocations is not None:
            await self._revocations.purge()

    def start(self) -> None:
        """Start the background loop."""
        self._task = asyncio.create_task(self._loop(), name="auth-housekeeping")

    async def stop(self) -> None:
        """Stop the loop."""
        await cancel(self._task)
        self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # the next round retries
                log_failed_round(log, "housekeeping round failed", exc)
            await asyncio.sleep(self._period)
