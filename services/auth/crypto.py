"""Auth's secrets at rest: keys derived from IOT_SECRET_KEY, encryption, digests, signatures.

Each use gets its own key, derived with HKDF from ``IOT_SECRET_KEY`` and a
purpose label, so that a key of one use can never stand in for another.
High-entropy tokens (links, client secrets) are stored as SHA-256 digests:
they cannot be guessed, so a slow hash would add nothing but cost.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from iotkit.sealing import DecryptionError as DecryptionError
from iotkit.sealing import SecretBox as SecretBox
from iotkit.sealing import derive_key
from iotkit.tokens import b64url


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
