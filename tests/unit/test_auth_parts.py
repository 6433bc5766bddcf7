"""Auth's plain parts: windows and lockout, exports, TOTP, secrets at rest, rules, settings."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree import ElementTree

import pyotp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from iotkit.config import ConfigError, load_settings
from iotkit.errors import RateLimited
from iotkit.limits import LocalWindowCounter, RedisWindowCounter
from iotkit.validation import Violations
from services.auth import rules
from services.auth.crypto import DecryptionError, SecretBox, Signer
from services.auth.data.formats import render
from services.auth.lockout import LoginGuard
from services.auth.mail.sender import SmtpTarget
from services.auth.mfa import totp
from services.auth.security.user_agents import device_info
from services.auth.settings import AuthSettings


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_local_window_closes_after_its_length() -> None:
    clock = FakeClock()
    counter = LocalWindowCounter(window=900, clock=clock)
    for expected in range(1, 6):
        assert (await counter.hit("k")).count == expected
    clock.now += 600
    window = await counter.peek("k")
    assert (window.count, window.retry_after_seconds) == (5, 300)
    clock.now += 300
    assert (await counter.peek("k")).count == 0
    assert (await counter.hit("k")).count == 1


async def test_lockout_refuses_until_the_window_passes() -> None:
    clock = FakeClock()
    guard = LoginGuard(LocalWindowCounter(window=900, clock=clock))
    for _ in range(5):
        await guard.check("a@example.com")
        await guard.failed("a@example.com")
    with pytest.raises(RateLimited) as caught:
        await guard.check("a@example.com")
    assert caught.value.retry_after == 900
    await guard.check("b@example.com")  # other accounts are not affected
    clock.now += 900
    await guard.check("a@example.com")


async def test_redis_window_is_shared_and_expires(redis_url: str) -> None:
    namespace = f"test:{uuid.uuid4().hex}"
    first = RedisWindowCounter(redis_url, namespace=namespace, window=0.4)
    second = RedisWindowCounter(redis_url, namespace=namespace, window=0.4)
    try:
        assert (await first.hit("k")).count == 1
        shared = await second.hit("k")
        assert shared.count == 2 and 0 < shared.retry_after <= 0.4
        assert (await first.peek("k")).count == 2
        await asyncio.sleep(0.5)
        assert (await second.peek("k")).count == 0
        await first.hit("k")
        await first.clear("k")
        assert (await second.peek("k")).count == 0
    finally:
        await first.aclose()
        await second.aclose()


async def test_several_keys_are_counted_at_once_alike_in_redis_and_locally(
    redis_url: str,
) -> None:
    namespace = f"test:{uuid.uuid4().hex}"
    shared = RedisWindowCounter(redis_url, namespace=namespace, window=60)
    local = LocalWindowCounter(window=60)
    try:
        for counter in (shared, local):
            await counter.hit("b")
            counts = await counter.hit_many(["a", "b"])
            assert [c.count for c in counts] == [1, 2]
            assert all(0 < c.retry_after <= 60 for c in counts)
            assert (await counter.peek("a")).count == 1
            assert await counter.hit_many([]) == []
    finally:
        await shared.aclose()


SNAPSHOT: dict[str, Any] = {
    "exported_at": "2026-01-01T00:00:00Z",
    "user": {"uuid": "u", "email": "a@example.com", "last_login_at": None, "is_active": True},
    "profile": {"display_name": "=HYPERLINK(1)", "tags": ["x"], "metadata": {"1 bad key": [1]}},
    "preferences": {"mfa_enabled": False},
    "sessions": [{"id": "s", "user_agent": "curl\x00/8"}],
    "security_logs": [{"id": "e", "action": "logout", "details": {"<k>": "v&"}}],
}


def test_csv_quotes_formulas() -> None:
    rows = list(csv.reader(io.StringIO(render(SNAPSHOT, "csv").content.decode())))
    assert rows[0] == ["section", "item", "field", "value"]
    assert ["profile", "", "display_name", "'=HYPERLINK(1)"] in rows
    assert ["profile", "", "metadata", '{"1 bad key": [1]}'] in rows
    assert ["user", "", "last_login_at", ""] in rows


def test_xml_keeps_free_keys_in_attributes_and_drops_invalid_characters() -> None:
    root = ElementTree.fromstring(render(SNAPSHOT, "xml").content)
    assert root.find("profile/metadata/entry").get("key") == "1 bad key"  # type: ignore[union-attr]
    assert root.find("security_logs/event/details/entry").get("key") == "<k>"  # type: ignore[union-attr]
    assert root.findtext("sessions/session/user_agent") == "curl\ufffd/8"
    assert root.findtext("user/is_active") == "true"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**9), 10**9) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3)
    ),
    max_leaves=10,
)


@given(metadata=st.dictionaries(st.text(), json_values, max_size=4), name=st.text())
def test_every_profile_renders_in_every_format(metadata: dict[str, Any], name: str) -> None:
    snapshot = {**SNAPSHOT, "profile": {"display_name": name, "metadata": metadata}}
    assert json.loads(render(snapshot, "json").content)["profile"]["metadata"] == metadata
    ElementTree.fromstring(render(snapshot, "xml").content)
    rows = list(csv.reader(io.StringIO(render(snapshot, "csv").content.decode(), newline="")))
    assert all(len(row) == 4 for row in rows)
    render(snapshot, "zip")


def test_totp_accepts_one_step_of_drift_and_names_the_step() -> None:
    secret = totp.new_secret()
    now = datetime(2026, 1, 1, 12, 0, 10, tzinfo=UTC)
    step = pyotp.TOTP(secret).timecode(now)
    for offset in (-1, 0, 1):
        code = totp.code_at(secret, now + timedelta(seconds=30 * offset))
        assert totp.matching_step(secret, code, now=now) == step + offset
    assert (
        totp.matching_step(secret, totp.code_at(secret, now + timedelta(minutes=2)), now=now)
        is None
    )
    assert totp.matching_step(secret, "12345", now=now) is None
    assert totp.matching_step(secret, "١٢٣٤٥٦", now=now) is None  # non-ASCII digits


def test_recovery_codes_are_distinct_and_normalise() -> None:
    codes = totp.new_recovery_codes()
    assert len(set(codes)) == 10 and all(len(c) == 11 and c[5] == "-" for c in codes)
    assert totp.normalise_recovery_code(" ABCDE-fghjk ") == "abcdefghjk"


def test_sealed_secrets_need_the_same_key_and_purpose() -> None:
    box = SecretBox("k" * 40, purpose="totp-secret")
    sealed = box.seal("JBSWY3DPEHPK3PXP")
    assert b"JBSWY3DPEHPK3PXP" not in sealed
    assert box.open(sealed) == "JBSWY3DPEHPK3PXP"
    for other in (SecretBox("j" * 40, purpose="totp-secret"), SecretBox("k" * 40, purpose="x")):
        with pytest.raises(DecryptionError):
            other.open(sealed)
    signer = Signer("k" * 40, purpose="download-links")
    signature = signer.sign("a/b/1")
    assert signer.verify("a/b/1", signature)
    assert not signer.verify("a/b/2", signature)
    assert not Signer("k" * 40, purpose="other").verify("a/b/1", signature)


@pytest.mark.parametrize(
    ("domain", "valid"),
    [
        ("plant-7.example.com", True),
        ("Plant-7.Example.COM.", True),
        ("localhost", False),
        ("-x.example.com", False),
        ("x-.example.com", False),
        ("a..example.com", False),
        ("10.0.0.1", False),
        ("a b.example.com", False),
        (("a" * 63 + ".") * 4 + "com", False),
    ],
)
def test_domains(domain: str, valid: bool) -> None:
    violations = Violations()
    rules.check_domain(violations, domain)
    assert violations.has("domain") is not valid


def test_device_info_reads_browsers_and_tools() -> None:
    assert device_info("") == "Unknown device"
    assert device_info("curl/8.5.0").startswith("curl")
    assert (
        device_info(
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.0.0 Mobile Safari/537.36"
        )
        == "Chrome Mobile 120 on Android 14 (Pixel 8)"
    )
    assert len(device_info("x" * 500)) <= 120


def test_smtp_urls() -> None:
    plain = SmtpTarget.parse("smtp://127.0.0.1:2525")
    assert (plain.host, plain.port, plain.implicit_tls, plain.username) == (
        "127.0.0.1",
        2525,
        False,
        None,
    )
    secure = SmtpTarget.parse("smtps://bot%40x.com:p%2Fw@mail.example.com")
    assert (secure.port, secure.implicit_tls, secure.username, secure.password) == (
        465,
        True,
        "bot@x.com",
        "p/w",
    )
    assert SmtpTarget.parse("smtp://mail.example.com:587?starttls=true").starttls
    with pytest.raises(ValueError, match="smtp://"):
        SmtpTarget.parse("http://mail.example.com")


def test_settings_of_issue_six() -> None:
    settings = AuthSettings.load(
        {
            "IOT_PUBLIC_URL": "https://iot.example.com/",
            "IOT_ADMIN_EMAIL": "root@example.com",
            "IOT_ADMIN_PASSWORD": "Adm1n!passw0rd",
            "IOT_MAIL_FROM": "IoT <iot@example.com>",
        }
    )
    assert settings.base_url() == "https://iot.example.com"
    assert settings.mail_from == "IoT <iot@example.com>"
    assert "Adm1n!passw0rd" not in repr(settings)
    assert load_settings({"IOT_GATEWAY_PORT": "9000"}).base_url() == "http://127.0.0.1:9000"
    with pytest.raises(ConfigError, match="IOT_ADMIN_PASSWORD"):
        AuthSettings.load({"IOT_ADMIN_EMAIL": "root@example.com"})
    with pytest.raises(ConfigError, match="IOT_PUBLIC_URL"):
        load_settings({"IOT_PUBLIC_URL": "iot.example.com"})
