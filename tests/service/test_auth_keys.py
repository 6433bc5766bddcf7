"""Secrets auth keeps at rest under ``IOT_SECRET_KEY``: the signing keys (encrypted PEM;
another secret stops auth at start) and the recovery codes (keyed digests); on SQLite
and PostgreSQL."""

from __future__ import annotations

import hashlib

import pytest

from iotkit.config import ConfigError
from services.auth.crypto import Signer
from services.auth.mfa import totp
from tests.conftest import Backend, start_suite
from tests.service.auth_support import blob, enable_mfa, start_auth

OTHER_SECRET = "another-secret-key-of-at-least-32-characters"


async def test_the_signing_keys_are_stored_encrypted(backend: Backend) -> None:
    async with start_auth(backend):
        rows = await backend.sql("auth", "SELECT private_pem FROM signing_keys")
    assert rows
    for (pem,) in rows:
        text = blob(pem)
        assert text.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        assert b"-----BEGIN PRIVATE KEY-----" not in text


async def test_another_secret_key_stops_auth_at_start_naming_it(backend: Backend) -> None:
    async with start_auth(backend):
        pass
    with pytest.raises(ConfigError, match="IOT_SECRET_KEY") as caught:
        await start_suite(backend, ("auth",), secret_key=OTHER_SECRET)
    assert "cannot decrypt the stored signing keys" in str(caught.value)


async def test_recovery_codes_are_stored_as_digests_keyed_by_the_secret(
    backend: Backend,
) -> None:
    async with start_auth(backend) as auth:
        _, login = await auth.user()
        _, recovery_codes = await enable_mfa(auth, login.access_token)
        secret = auth.suite.settings.secret_key
        rows = await backend.sql("auth", "SELECT code_digest FROM recovery_codes")
    stored = {digest for (digest,) in rows}
    codes = [totp.normalise_recovery_code(code) for code in recovery_codes]
    # An HMAC under a key of IOT_SECRET_KEY: another secret, or no key, gives other digests.
    assert stored == {Signer(secret, purpose="recovery-codes").sign(code) for code in codes}
    assert stored.isdisjoint(
        Signer(OTHER_SECRET, purpose="recovery-codes").sign(code) for code in codes
    )
    assert stored.isdisjoint(hashlib.sha256(code.encode()).hexdigest() for code in codes)
