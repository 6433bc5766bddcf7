"""Auth's secrets at rest: keys derived from IOT_SECRET_KEY, encryption, digests, signatures.

Each use gets its own key, derived with HKDF from ``IOT_SECRET_KEY`` and a
purpose label, so that a key of one use can never stand in for another.
High-entropy tokens (links, client secrets) are stored as SHA-256 digests:
they cannot be guessed, so a slow hash would add nothing but cost.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from iotkit.tokens import b64url


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


class Signer:
    """HMAC-SHA256 signatures of short texts, with a key of its own purpose."""

    def __init__(self, secret: str, *, purpose: str) -> None:
        self._key = derive_key(secret, purpose)

    def sign(self, text: str) -> str:
        """The signature of ``text``, base64url."""
        return b64url(hmac.new(self._key, text.encode(), hashlib.sha256).digest())

    def verify(self, text: str, signature: str) -> bool:
        """True when ``signature`` is the signature of ``text`` (constant time)."""
        return hmac.compare_digest(self.sign(text).encode(), signature.encode())


def new_token(nbytes: int = 32) -> str:
    """A random URL-safe token of ``nbytes`` bytes of entropy."""
    return secrets.token_urlsafe(nbytes)


def digest(token: str) -> str:
    """The SHA-256 hex digest under which a high-entropy token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()
