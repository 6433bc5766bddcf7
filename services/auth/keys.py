"""The suite's signing keys: created once, kept encrypted, used only by auth.

The private half of each Ed25519 key is stored as PEM encrypted with
``IOT_SECRET_KEY``; the public halves are published as the JWKS.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
    load_pem_private_key,
)

from iotkit.tokens import ALGORITHM
from services.auth.core.store import AuthStore


class KeyDecryptionError(RuntimeError):
    """A stored key cannot be decrypted: IOT_SECRET_KEY differs from the one that stored it."""


class SigningKeys:
    """Every live signing key; the newest signs."""

    def __init__(self, keys: Mapping[str, Ed25519PrivateKey]) -> None:
        if not keys:
            raise ValueError("at least one signing key is needed")
        self._keys = dict(keys)
        self._signing_kid = next(iter(self._keys))

    @classmethod
    async def load_or_create(cls, *, store: AuthStore, secret: str, now: datetime) -> SigningKeys:
        """Load the stored keys, creating the first one on a new database."""
        stored = await store.signing_keys()
        if not stored:
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(secret.encode())
            )
            await store.add_signing_key(kid=secrets.token_hex(8), private_pem=pem, now=now)
            stored = await store.signing_keys()
        keys: dict[str, Ed25519PrivateKey] = {}
        for kid, private_pem in stored.items():  # newest first, so the newest key signs
            try:
                loaded = load_pem_private_key(private_pem, password=secret.encode())
            except (ValueError, TypeError) as exc:
                raise KeyDecryptionError(
                    "cannot decrypt the stored signing keys: "
                    "IOT_SECRET_KEY is not the one they were stored with"
                ) from exc
            if isinstance(loaded, Ed25519PrivateKey):
                keys[kid] = loaded
        return cls(keys)

    def sign(self, claims: Mapping[str, Any]) -> str:
        """A compact JWS of ``claims`` signed by the newest key."""
        return jwt.encode(
            dict(claims),
            self._keys[self._signing_kid],
            algorithm=ALGORITHM,
            headers={"kid": self._signing_kid},
        )

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        """Every public key, by key id."""
        return {kid: key.public_key() for kid, key in self._keys.items()}
