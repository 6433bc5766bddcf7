"""Token verification: signature, expiry, type, issuer and key refresh."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from iotkit.errors import Unauthenticated, Unavailable
from iotkit.tokens import KeySet, TokenVerifier, static_keys

KEY = Ed25519PrivateKey.generate()


def token(key: Ed25519PrivateKey = KEY, kid: str = "k1", **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": "iotsuite",
        "sub": "u1",
        "role": "user",
        "scope": "devices:read chat",
        "typ": "access",
        "jti": "j1",
        "sid": "s1",
        "iat": now,
        "exp": now + 60,
    }
    claims.update(overrides)
    return jwt.encode(
        {k: v for k, v in claims.items() if v is not None},
        key,
        algorithm="EdDSA",
        headers={"kid": kid},
    )


def verifier() -> TokenVerifier:
    return TokenVerifier(KeySet(static_keys([("k1", KEY.public_key())])))


async def test_a_valid_token_answers_its_caller() -> None:
    caller = await verifier().verify(token())
    assert caller.subject == "u1" and caller.session_id == "s1"
    assert caller.scopes == frozenset({"devices:read", "chat"})
    assert not caller.is_admin


@pytest.mark.parametrize(
    "bad",
    [
        token(exp=int(time.time()) - 60),
        token(iss="someone-else"),
        token(typ="refresh"),
        token(sub=None),
        token(jti=None),
        token(key=Ed25519PrivateKey.generate()),
        token(kid="unknown"),
        "a.b.c",
        "",
    ],
)
async def test_bad_tokens_are_refused_alike(bad: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        await verifier().verify(bad)
    assert caught.value.message == "Invalid or expired token"


async def test_accepted_types_are_the_caller_s_choice() -> None:
    caller = await verifier().verify(token(typ="refresh"), token_types=("refresh",))
    assert caller.token_type == "refresh"


async def test_unknown_kid_refreshes_the_key_set_once() -> None:
    calls = 0
    rotated = Ed25519PrivateKey.generate()

    async def fetch() -> dict[str, Ed25519PublicKey]:
        nonlocal calls
        calls += 1
        keys = {"k1": KEY.public_key()}
        if calls > 1:
            keys["k2"] = rotated.public_key()
        return keys

    keys = KeySet(fetch, min_refresh_interval=0)
    check = TokenVerifier(keys)
    await check.verify(token())
    assert calls == 1
    assert (await check.verify(token(key=rotated, kid="k2"))).subject == "u1"
    assert calls == 2


async def test_refresh_is_rate_limited_against_made_up_kids() -> None:
    calls = 0

    async def fetch() -> dict[str, Ed25519PublicKey]:
        nonlocal calls
        calls += 1
        return {"k1": KEY.public_key()}

    check = TokenVerifier(KeySet(fetch, min_refresh_interval=60))
    await check.verify(token())
    for n in range(5):
        with pytest.raises(Unauthenticated):
            await check.verify(token(kid=f"bogus-{n}"))
    assert calls == 1


async def test_no_keys_yet_is_unavailable_not_unauthenticated() -> None:
    async def fetch() -> dict[str, Ed25519PublicKey]:
        raise ConnectionError("auth is not up")

    with pytest.raises(Unavailable):
        await TokenVerifier(KeySet(fetch)).verify(token())


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def test_a_verified_token_is_remembered_until_it_expires() -> None:
    clock = Clock()
    checker = TokenVerifier(KeySet(static_keys([("k1", KEY.public_key())])), clock=clock)
    good = token(exp=int(clock.now) + 60)
    first = await checker.verify(good)
    assert await checker.verify(good) is first  # remembered: no second signature check
    # Its type is still checked on every call.
    with pytest.raises(Unauthenticated):
        await checker.verify(good, token_types=("refresh",))
    clock.now += 60 + 6  # past exp and the leeway, on the verifier's clock only
    # Forgotten and checked afresh (which PyJWT, on the real clock, still passes).
    assert await checker.verify(good) is not first


async def test_a_remembered_token_falls_with_its_withdrawn_key() -> None:
    published = {"k1": KEY.public_key()}

    async def fetch() -> dict[str, Ed25519PublicKey]:
        return dict(published)

    keys = KeySet(fetch, min_refresh_interval=0)
    checker = TokenVerifier(keys)
    good = token()
    assert (await checker.verify(good)).subject == "u1"
    published.clear()
    published["k2"] = Ed25519PrivateKey.generate().public_key()
    assert await keys.refresh(force=True)
    with pytest.raises(Unauthenticated):
        await checker.verify(good)


async def test_the_memory_of_verified_tokens_is_bounded() -> None:
    checker = TokenVerifier(KeySet(static_keys([("k1", KEY.public_key())])), cache_size=2)
    tokens = [token(jti=f"j{n}") for n in range(3)]
    callers = [await checker.verify(t) for t in tokens]
    # The oldest was forgotten: verified afresh (a new caller), the newest still remembered.
    assert await checker.verify(tokens[0]) is not callers[0]
    assert await checker.verify(tokens[2]) is callers[2]
