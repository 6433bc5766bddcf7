"""Token verification with the suite's public keys.

Only auth signs tokens (Ed25519). Every process verifies them locally with a
:class:`KeySet`: auth fills it from its own key store, the other services
from auth's ``GetJwks`` RPC, refreshed when a token names an unknown key.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from iotkit.context import Caller
from iotkit.errors import Unauthenticated, Unavailable

ISSUER = "iotsuite"
ALGORITHM = "EdDSA"
LEEWAY_SECONDS = 5
_INVALID = "Invalid or expired token"

log = logging.getLogger(__name__)


def b64url(data: bytes) -> str:
    """Base64url without padding, as JWKs write key material."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Inverse of :func:`b64url`."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


KeyFetcher = Callable[[], Awaitable[dict[str, Ed25519PublicKey]]]
"""Answers every currently published public key by key id."""


class KeySet:
    """The public keys a process trusts, refreshed from a fetcher on demand.

    A refresh is attempted at most once per ``min_refresh_interval`` so that a
    flood of tokens with a made-up ``kid`` cannot hammer the auth service.
    """

    def __init__(self, fetch: KeyFetcher, *, min_refresh_interval: float = 10.0) -> None:
        self._fetch = fetch
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._min_interval = min_refresh_interval
        self._last_attempt = float("-inf")
        self._lock = asyncio.Lock()

    @property
    def loaded(self) -> bool:
        """True once at least one key is known."""
        return bool(self._keys)

    async def refresh(self, *, force: bool = False) -> bool:
        """Fetch the keys again; answers whether the set now holds any key."""
        async with self._lock:
            now = time.monotonic()
            if not force and now - self._last_attempt < self._min_interval:
                return self.loaded
            self._last_attempt = now
            try:
                self._keys = await self._fetch()
            except Exception as exc:  # any transport failure leaves the old keys in place
                log.warning("could not fetch signing keys", extra={"error": type(exc).__name__})
            return self.loaded

    async def key(self, kid: str) -> Ed25519PublicKey | None:
        """The key named ``kid``, refreshing once if it is not known yet."""
        if kid not in self._keys:
            await self.refresh()
        return self._keys.get(kid)


def static_keys(keys: Iterable[tuple[str, Ed25519PublicKey]]) -> KeyFetcher:
    """A fetcher over keys already in hand (auth's own, or tests')."""
    frozen = dict(keys)

    async def fetch() -> dict[str, Ed25519PublicKey]:
        return dict(frozen)

    return fetch


class TokenVerifier:
    """Checks signature, expiry, issuer and type of a token and answers its caller."""

    def __init__(self, keys: KeySet) -> None:
        self.keys = keys

    async def verify(self, token: str, *, token_types: Iterable[str] = ("access",)) -> Caller:
        """The caller of a valid ``token`` of one of ``token_types``; raises Unauthenticated."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated(_INVALID) from exc
        kid = header.get("kid")
        if header.get("alg") != ALGORITHM or not isinstance(kid, str):
            raise Unauthenticated(_INVALID)
        if not self.keys.loaded and not await self.keys.refresh(force=True):
            raise Unavailable("Signing keys are not available yet; retry shortly")
        key = await self.keys.key(kid)
        if key is None:
            raise Unauthenticated(_INVALID)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "sub", "typ", "jti"], "verify_aud": False},
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(_INVALID) from exc
        if claims.get("typ") not in set(token_types):
            raise Unauthenticated(_INVALID)
        scope = claims.get("scope", "")
        return Caller(
            subject=str(claims["sub"]),
            role=str(claims.get("role", "user")),
            scopes=frozenset(str(scope).split()),
            token_type=str(claims["typ"]),
            session_id=claims.get("sid"),
            token_id=str(claims["jti"]),
            issued_at=int(claims["iat"]),
            expires_at=int(claims["exp"]),
            claims=claims,
            token=token,
        )
