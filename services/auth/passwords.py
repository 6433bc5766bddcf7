"""Password hashing with argon2id, off the event loop.

A check for an unknown account still verifies against a decoy hash, so that
"no such user" and "wrong password" take as long as each other.
"""

from __future__ import annotations

import asyncio
import uuid

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


class Passwords:
    """Hashes and checks passwords in a worker thread (argon2 is CPU-bound by design)."""

    def __init__(self, hasher: PasswordHasher) -> None:
        self._hasher = hasher
        self._decoy_hash = hasher.hash(uuid.uuid4().hex)

    async def hash(self, password: str) -> str:
        """The argon2id hash of ``password``."""
        return await asyncio.to_thread(self._hasher.hash, password)

    async def matches(self, password_hash: str, password: str) -> bool:
        """True when ``password`` matches ``password_hash``."""
        try:
            return await asyncio.to_thread(self._hasher.verify, password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def spend_decoy(self, password: str) -> None:
        """Take as long as a real check, for an account that does not exist."""
        await self.matches(self._decoy_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with older parameters."""
        return self._hasher.check_needs_rehash(password_hash)
