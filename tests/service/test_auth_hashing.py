"""Password hashes as the auth wiring makes them: argon2id at RFC 9106's low-memory
profile, an older hash replaced at the next login, and a decoy verified for unknown
addresses; on SQLite and PostgreSQL.

Every other test runs auth with a cheap hasher; these read the parameters out of
the hashes the running service stored.
"""

from __future__ import annotations

from typing import Literal

import grpc
import pytest
from argon2 import PasswordHasher, Type, extract_parameters

from tests.conftest import FAST_HASHER, Backend
from tests.service.auth_support import start_auth
from tests.support import new_email

# Parameters a deployment might have hashed with before the current ones.
OLDER_HASHER = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)


async def stored_hash(backend: Backend, email: str) -> str:
    """The password hash stored for ``email``."""
    rows = await backend.sql("auth", "SELECT password_hash FROM users WHERE email = ?", (email,))
    (value,) = rows[0]
    assert isinstance(value, str)
    return value


async def test_the_wiring_hashes_with_argon2id_at_the_low_memory_profile(
    backend: Backend,
) -> None:
    # hasher=None: auth builds the hasher production runs with.
    async with start_auth(backend, hasher=None) as auth:
        email = await auth.register()
        parameters = extract_parameters(await stored_hash(backend, email))
    assert parameters.type is Type.ID
    assert (parameters.time_cost, parameters.memory_cost, parameters.parallelism) == (
        3,
        64 * 1024,
        4,
    )
    assert (parameters.hash_len, parameters.salt_len) == (32, 16)


async def test_a_hash_with_older_parameters_is_replaced_at_the_next_login(
    backend: Backend,
) -> None:
    async with start_auth(backend, hasher=OLDER_HASHER) as auth:
        email = await auth.register()
    old = await stored_hash(backend, email)
    assert extract_parameters(old).time_cost == 2

    async with start_auth(backend, hasher=FAST_HASHER) as auth:
        await auth.login(email)
        new = await stored_hash(backend, email)
        assert new != old
        assert not FAST_HASHER.check_needs_rehash(new)
        # The new hash holds the same password.
        await auth.login(email)


class CountingHasher(PasswordHasher):
    """The cheap test parameters, counting the hashes verified."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.verified = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.verified += 1
        return super().verify(hash, password)


async def test_an_unknown_email_verifies_a_decoy_hash_as_a_wrong_password_verifies_its_own(
    backend: Backend,
) -> None:
    """No timing is measured: both failures do the same argon2 work, one verification
    with the same parameters, which is what makes them take as long."""
    hasher = CountingHasher()
    async with start_auth(backend, hasher=hasher) as auth:
        email = await auth.register()
        counts = []
        for address in (email, new_email()):
            before = hasher.verified
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await auth.login(address, "Wr0ng!pass")
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            counts.append(hasher.verified - before)
    assert counts == [1, 1]
