"""The leak scan flags real secrets of the suite's own formats, and not the hostile text
tests send on purpose; its findings name the kind and the logger, never the secret.

Each test uses its own scanner, so the secrets fed here do not fail the run.
"""

from __future__ import annotations

import json
import logging
import sys
import time

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.auth.crypto import new_token
from services.auth.keys import SigningKeys
from services.auth.mfa.totp import new_recovery_codes, new_secret, provisioning_uri
from services.auth.sites.service import SECRET_PREFIX
from tests import leak_scan
from tests.conftest import FAST_HASHER
from tests.leak_scan import LeakHandler, SecretScanner
from tests.service.proto_strategies import HOSTILE_TEXT
from tests.support import PASSWORD


def scanner() -> SecretScanner:
    fresh = SecretScanner()
    fresh.register(leak_scan.PASSWORD, PASSWORD)
    return fresh


def record(message: str, *, name: str = "services.auth", **extra: object) -> logging.LogRecord:
    return logging.makeLogRecord({"name": name, "msg": message, "levelname": "INFO", **extra})


def test_a_log_line_with_an_argon2_hash_or_a_password_is_flagged_by_logger_and_kind() -> None:
    handler = LeakHandler(scanner())
    handler.test = "tests/x.py::test_y"
    hashed = FAST_HASHER.hash("anything")
    handler.handle(record("stored user", name="services.auth.core", row=f"hash {hashed}"))
    handler.handle(record("login for %s failed", name="iotkit.rpc", args=(PASSWORD,)))
    handler.handle(record("rpc", name="iotkit.rpc"))
    reports = [str(finding) for finding in handler.findings]
    assert reports == [
        "tests/x.py::test_y: logger 'services.auth.core' carried a argon2 hash",
        "tests/x.py::test_y: logger 'iotkit.rpc' carried a password",
    ]
    assert not any(hashed in line or PASSWORD in line for line in reports)


def test_a_process_log_file_is_scanned_line_by_line() -> None:
    # End-to-end tests run the services as processes: their log files are scanned after.
    handler = LeakHandler(scanner())
    handler.test = "tests/e2e/x.py::test_y"
    text = '{"msg": "serving"}\n' + json.dumps({"msg": "login", "password": PASSWORD}) + "\n"
    assert leak_scan.scan_log(text, "log file suite.log", handler) == [leak_scan.PASSWORD]
    assert [str(f) for f in handler.findings] == [
        "tests/e2e/x.py::test_y: log file suite.log line 2 carried a password"
    ]
    assert leak_scan.scan_log('{"msg": "serving"}\n', "log file ok.log", handler) == []


def test_exception_text_is_scanned_too() -> None:
    handler = LeakHandler(scanner())
    try:
        raise ValueError(f"bad password {PASSWORD}")
    except ValueError:
        handler.handle(record("unhandled error", exc_info=sys.exc_info()))
    assert [finding.kind for finding in handler.findings] == [leak_scan.PASSWORD]


def _private_key_pem() -> str:
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.mark.parametrize(
    ("kind", "make"),
    [
        (leak_scan.ARGON2_HASH, lambda: FAST_HASHER.hash("x")),
        (leak_scan.PRIVATE_KEY, _private_key_pem),
        (leak_scan.TOTP_SECRET, new_secret),
        (leak_scan.TOTP_SECRET, lambda: provisioning_uri(new_secret(), account="a@example.com")),
        (leak_scan.CLIENT_SECRET, lambda: SECRET_PREFIX + new_token()),
        (
            leak_scan.JWT,
            lambda: SigningKeys({"k1": Ed25519PrivateKey.generate()}).sign(
                {"sub": "u", "exp": int(time.time()) + 60}
            ),
        ),
    ],
)
def test_each_kind_of_the_suites_own_secrets_is_found_in_a_line(kind: str, make: object) -> None:
    assert callable(make)
    line = f'{{"msg": "value was {make()}", "logger": "x"}}'
    assert scanner().kinds_in(line) == [kind]


def test_recovery_codes_are_found_and_word_pairs_are_not() -> None:
    codes = new_recovery_codes()
    found = [scanner().kinds_in(f"codes: {code}") for code in codes]
    # A code without a digit is not told from two words; ten codes without one are not made.
    assert [leak_scan.RECOVERY_CODE] in found
    assert all(kinds in ([leak_scan.RECOVERY_CODE], []) for kinds in found)
    assert scanner().kinds_in("queue-start and stale-batch") == []


def test_hostile_text_and_forged_tokens_the_tests_send_are_not_secrets() -> None:
    unsigned = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."
    texts = [*HOSTILE_TEXT, unsigned, "request id 0f3a9c2e4b5d6e7f8a9b0c1d2e3f4a5b", "a" * 64]
    assert [text[:20] for text in texts if scanner().kinds_in(text)] == []


async def test_a_response_body_with_a_hash_fails_the_request_and_is_a_finding() -> None:
    handler = LeakHandler(scanner())
    hashed = FAST_HASHER.hash("x")

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/leaky":
            return httpx.Response(200, json={"data": {"password_hash": hashed}})
        return httpx.Response(200, json={"data": {"access_token": "eyJ.eyJ.sig"}})

    async with httpx.AsyncClient(
        transport=httpx.MockTransport(answer),
        base_url="http://gw",
        event_hooks=leak_scan.response_hooks(handler),
    ) as http:
        assert (await http.get("/fine")).status_code == 200
        with pytest.raises(AssertionError, match="GET /leaky carried a argon2 hash"):
            await http.get("/leaky")
    assert [(f.source, f.kind) for f in handler.findings] == [
        ("response of GET /leaky", leak_scan.ARGON2_HASH)
    ]


@pytest.mark.parametrize("blocking", [False, True], ids=["async", "sync"])
async def test_a_client_a_test_makes_for_itself_is_scanned_too(blocking: bool) -> None:
    # The run gives every httpx client the scan, not only the shared ones; this test then
    # takes its own finding back, so that the run itself stays green.
    hashed = FAST_HASHER.hash("x")
    transport = httpx.MockTransport(lambda _: httpx.Response(200, json={"hash": hashed}))
    before = len(leak_scan._handler.findings)
    with pytest.raises(AssertionError, match="GET /mine carried a argon2 hash"):
        if blocking:
            with httpx.Client(transport=transport, base_url="http://gw") as plain:
                plain.get("/mine")
        else:
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
                await http.get("/mine")
    taken = leak_scan._handler.findings[before:]
    del leak_scan._handler.findings[before:]
    assert [(f.source, f.kind) for f in taken] == [("response of GET /mine", leak_scan.ARGON2_HASH)]
