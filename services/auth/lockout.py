"""Brute-force protection of passwords and codes.

After ``MAX_FAILURES`` failed attempts on one email within ``WINDOW``
seconds, every further attempt on it is refused with RESOURCE_EXHAUSTED and a
retry delay until the window closes, even with the right password. Emails
with no account count the same, so a lockout reveals nothing about which
addresses exist. Keys are digests: no address is written to Redis.
"""

from __future__ import annotations

import hashlib

from iotkit.errors import RateLimited
from iotkit.limits import WindowCounter

MAX_FAILURES = 5
WINDOW = 15 * 60.0
LOCKED_MESSAGE = "Too many failed attempts; try again later"


def _key(email: str) -> str:
    return hashlib.sha256(email.encode()).hexdigest()[:32]


class LoginGuard:
    """Counts failed attempts per email and refuses attempts once there were too many."""

    def __init__(self, counter: WindowCounter, *, max_failures: int = MAX_FAILURES) -> None:
        self._counter = counter
        self._max = max_failures

    async def check(self, email: str) -> None:
        """Raise RateLimited while ``email`` is locked out."""
        window = await self._counter.peek(_key(email))
        if window.count >= self._max:
            raise RateLimited(LOCKED_MESSAGE, retry_after=window.retry_after_seconds)

    async def failed(self, email: str) -> None:
        """Count one failed attempt on ``email``."""
        await self._counter.hit(_key(email))

    async def succeeded(self, email: str) -> None:
        """Forget the failures of ``email`` after a successful login or a password reset."""
        await self._counter.clear(_key(email))
