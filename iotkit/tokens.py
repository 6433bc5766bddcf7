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
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from iotkit.context import Caller
from iotkit.errors import Unauthenticated, Unavailable

ISSUER = "iotsuite"
ALGORITHM = "EdDSA"
LEEWAY_SECONDS = 5
VERIFIED_CACHE_SIZE = 4096
"""Most tokens whose signature check a process remembers (least recently used leave first)."""
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

    def current(self, kid: str) -> Ed25519PublicKey | None:
        """The key named ``kid`` if the set holds it now (no refresh)."""
        return self._keys.get(kid)

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


@dataclass(frozen=True, slots=True)
class _Verified:
    """A token whose signature, issuer and claims were checked, and the key that signed it."""

    caller: Caller
    kid: str
    key: Ed25519PublicKey


class TokenVerifier:
    """Checks signature, expiry, issuer and type of a token and answers its caller.

    A token that passed is remembered (a bounded LRU, :data:`VERIFIED_CACHE_SIZE`), so a
    client's next calls skip the Ed25519 check and the JSON decoding: what is remembered is
    only what the token's bytes prove, which cannot change. Expiry, type and the signing key
    still being trusted are checked again on every call, and whether the session has been
    revoked is not the verifier's to say: callers check it on every call
    (:mod:`iotkit.revocation`), cached token or not.
    """

    def __init__(
        self,
        keys: KeySet,
        *,
        cache_size: int = VERIFIED_CACHE_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys
        self._verified: OrderedDict[str, _Verified] = OrderedDict()
        self._cache_size = cache_size
        self._clock = clock

    async def verify(self, token: str, *, token_types: Iterable[str] = ("access",)) -> Caller:
        """The caller of a valid ``token`` of one of ``token_types``; raises Unauthenticated."""
        known = self._verified.get(token)
        if known is not None:
            if known.caller.expires_at + LEEWAY_SECONDS < self._clock() or (
                self.keys.current(known.kid) is not known.key
            ):
                del self._verified[token]  # expired, or its key withdrawn: checked afresh
            else:
                self._verified.move_to_end(token)
                if known.caller.token_type not in set(token_types):
                    raise Unauthenticated(_INVALID)
                return known.caller
        caller, kid, key = await self._check(token)
        if caller.token_type not in set(token_types):
            raise Unauthenticated(_INVALID)
        if self._cache_size > 0:
            self._verified[token] = _Verified(caller, kid, key)
            if len(self._verified) > self._cache_size:
                self._verified.popitem(last=False)
        return caller

    async def _check(self, token: str) -> tuple[Caller, str, Ed25519PublicKey]:
        """Signature and claims of ``token``: its caller, and the key that signed it."""
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
        scope = claims.get("scope", "")
        caller = Caller(
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
        return caller, kid, key
