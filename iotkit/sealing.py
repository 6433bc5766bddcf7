"""Secrets at rest: keys derived from a process secret, and authenticated encryption.

Each use gets its own key, derived with HKDF from the secret and a purpose
label, so that a key of one use can never stand in for another. A value
that must be recovered (an outbox body, a webhook's signing secret) is sealed
with :class:`SecretBox`; one that need only be checked is stored as a digest.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class DecryptionError(RuntimeError):
    """Stored ciphertext cannot be read: IOT_SECRET_KEY changed, or the value was altered."""


def derive_key(secret: str, purpose: str) -> bytes:
    """A 32-byte key for ``purpose`` derived from the process secret."""
    hkdf = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=f"iotsuite/{purpose}".encode()
    )
    return hkdf.derive(secret.encode())


class SecretBox:
    """Authenticated encryption (Fernet) with a key of its own purpose."""

    def __init__(self, secret: str, *, purpose: str) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(derive_key(secret, purpose)))

    def seal(self, plaintext: str) -> bytes:
        """Encrypt ``plaintext``."""
        return self._fernet.encrypt(plaintext.encode())

    def open(self, sealed: bytes) -> str:
        """Decrypt what :meth:`seal` made; raises DecryptionError when it cannot."""
        try:
            return self._fernet.decrypt(sealed).decode()
        except InvalidToken as exc:
            raise DecryptionError("stored secret cannot be decrypted with IOT_SECRET_KEY") from exc
