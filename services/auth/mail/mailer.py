"""The emails auth sends, queued in the outbox with their bodies sealed.

Links point at the web console with the token in the URL fragment, which
browsers never send to a server, so no access log can record it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from services.auth.crypto import SecretBox
from services.auth.mail.store import OutboxStore

VERIFY_KIND = "verify_email"
RESET_KIND = "reset_password"
CHANGED_KIND = "password_changed"


class Mailer:
    """Composes auth's emails and queues them for the background sender."""

    def __init__(
        self,
        *,
        outbox: OutboxStore,
        box: SecretBox,
        base_url: str,
        notify: Callable[[], None],
    ) -> None:
        self._outbox = outbox
        self._box = box
        self._base_url = base_url.rstrip("/")
        self._notify = notify

    async def _queue(self, *, kind: str, to: str, subject: str, body: str, now: datetime) -> None:
        await self._outbox.enqueue(
            kind=kind, to_address=to, subject=subject, sealed_body=self._box.seal(body), now=now
        )
        self._notify()

    async def verification(self, *, to: str, token: str, hours: int, now: datetime) -> None:
        """Queue the link that verifies ``to``."""
        link = f"{self._base_url}/#/verify-email?token={token}"
        body = (
            "Welcome to iotsuite.\n\n"
            f"Confirm your email address by opening this link within {hours} hours:\n\n"
            f"{link}\n\n"
            "If you did not create an account, ignore this message.\n"
        )
        await self._queue(
            kind=VERIFY_KIND, to=to, subject="Verify your email address", body=body, now=now
        )

    async def password_reset(self, *, to: str, token: str, minutes: int, now: datetime) -> None:
        """Queue the link that resets the password of ``to``."""
        link = f"{self._base_url}/#/reset-password?token={token}"
        body = (
            "Someone asked to reset the password of your iotsuite account.\n\n"
            f"Choose a new password by opening this link within {minutes} minutes:\n\n"
            f"{link}\n\n"
            "If it was not you, ignore this message: your password stays as it is.\n"
        )
        await self._queue(kind=RESET_KIND, to=to, subject="Reset your password", body=body, now=now)

    async def password_changed(self, *, to: str, now: datetime) -> None:
        """Queue the notice that the password of ``to`` changed."""
        body = (
            "The password of your iotsuite account was just changed, and your other "
            "sessions were ended.\n\n"
            "If it was not you, reset your password now and review your security log.\n"
        )
        await self._queue(
            kind=CHANGED_KIND, to=to, subject="Your password was changed", body=body, now=now
        )
