"""A session-wide scan for secrets in log records and gateway response bodies.

Registered from ``tests/conftest.py`` as a pytest plugin. Every log record of
the run, from every logger, at INFO and above (the level the services run at;
the drivers that print SQL parameters stay at WARNING, as in production), is
formatted the way the services write it — message, extras, exception text —
and searched for passwords the tests use, argon2 hashes, private keys, TOTP
secrets, recovery codes, client secrets and JWTs. A finding fails the run at
its end; the report names the test, the logger and the kind of secret, never
the secret.

Known values (the tests' passwords) are registered with :func:`register`;
the rest is found by patterns precise enough that the hostile strings the
tests send on purpose do not match. Response bodies of the central HTTP
clients (:func:`response_hooks`) are searched for hashes, private keys and
known passwords; tokens and secrets a response exists to hand out are allowed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from iotkit.logs import PARAMETER_LOGGERS, JsonFormatter

PASSWORD = "password"
ARGON2_HASH = "argon2 hash"
PRIVATE_KEY = "private key"
TOTP_SECRET = "TOTP secret"
RECOVERY_CODE = "recovery code"
CLIENT_SECRET = "client secret"
JWT = "JWT"

# Not alphanumeric on either side, so a longer word or id never matches in part.
_EDGE_L, _EDGE_R = r"(?<![A-Za-z0-9_-])", r"(?![A-Za-z0-9_-])"
# The alphabet of services.auth.mfa.totp recovery codes (no 0/o, 1/l/i).
_RECOVERY = "[a-hjkmnp-z2-9]{5}"

PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (ARGON2_HASH, re.compile(r"\$argon2(?:id|i|d)\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+")),
    (PRIVATE_KEY, re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")),
    # A signed token: header and claims are JSON objects, the signature is not empty.
    (JWT, re.compile(_EDGE_L + r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{16,}")),
    # services.auth.sites: "iots_" and 32 random bytes, base64url.
    (CLIENT_SECRET, re.compile(_EDGE_L + r"iots_[A-Za-z0-9_-]{43}" + _EDGE_R)),
    # 160-bit base32 (pyotp.random_base32(32)), or any provisioning URI.
    (TOTP_SECRET, re.compile(_EDGE_L + r"[A-Z2-7]{32}" + _EDGE_R + r"|otpauth://\S*secret=")),
    # Two groups of five with at least one digit: "queue-start" is a word pair, not a code.
    (
        RECOVERY_CODE,
        re.compile(_EDGE_L + rf"(?=[a-z-]{{0,10}}[2-9]){_RECOVERY}-{_RECOVERY}" + _EDGE_R),
    ),
)

# What a response body may never hold, even one that hands out tokens or secrets.
BODY_KINDS = frozenset({PASSWORD, ARGON2_HASH, PRIVATE_KEY})


@dataclass
class Finding:
    """One secret seen where it must not be: where (test, logger or path) and what kind."""

    test: str
    source: str
    kind: str

    def __str__(self) -> str:
        return f"{self.test}: {self.source} carried a {self.kind}"


@dataclass
class SecretScanner:
    """Finds the kinds of secret in a text: registered known values, then patterns."""

    known: dict[str, str] = field(default_factory=dict)

    def register(self, kind: str, value: str) -> None:
        """Flag ``value`` as a secret of ``kind`` wherever it appears."""
        if value:
            self.known[value] = kind

    def kinds_in(self, text: str, only: frozenset[str] | None = None) -> list[str]:
        """The kinds of secret ``text`` holds (each once), restricted to ``only`` if given."""
        found = {kind for value, kind in self.known.items() if value in text}
        found.update(kind for kind, pattern in PATTERNS if pattern.search(text))
        return sorted(found if only is None else found & only)


class LeakHandler(logging.Handler):
    """Scans every record it handles as the services would write it; keeps the findings."""

    def __init__(self, scanner: SecretScanner) -> None:
        super().__init__(logging.NOTSET)
        self.scanner = scanner
        self.findings: list[Finding] = []
        self.test = "(outside any test)"
        self._formatter = JsonFormatter("test")

    def emit(self, record: logging.LogRecord) -> None:
        """Format ``record`` (message, extras, exception) and note each secret kind in it."""
        try:
            text = self._formatter.format(record)
        except Exception:  # a record that cannot be formatted is logging's problem, not a leak
            self.handleError(record)
            return
        for kind in self.scanner.kinds_in(text):
            self.findings.append(Finding(self.test, f"logger {record.name!r}", kind))


SCANNER = SecretScanner()
_handler = LeakHandler(SCANNER)


def register(kind: str, value: str) -> None:
    """Flag ``value`` as a secret of ``kind`` for the rest of the run."""
    SCANNER.register(kind, value)


def _check_body(response: httpx.Response, handler: LeakHandler) -> None:
    kinds = handler.scanner.kinds_in(response.text, BODY_KINDS)
    if kinds:
        where = f"response of {response.request.method} {response.request.url.path}"
        handler.findings.extend(Finding(handler.test, where, kind) for kind in kinds)
        raise AssertionError(f"the {where} carried a {', '.join(kinds)}")


def _is_event_stream(response: httpx.Response) -> bool:
    # An event stream may never end; its events are the same envelopes anyway.
    return response.headers.get("content-type", "").startswith("text/event-stream")


def response_hooks(
    handler: LeakHandler = _handler,
) -> dict[str, list[Callable[[httpx.Response], Awaitable[None]]]]:
    """``event_hooks`` for an ``httpx.AsyncClient`` that scan each response body, failing
    the request (and the run, should the test swallow that) on a finding."""

    async def scan(response: httpx.Response) -> None:
        if not _is_event_stream(response):
            await response.aread()
            _check_body(response, handler)

    scan.leak_scan = True  # type: ignore[attr-defined]
    return {"response": [scan]}


def _sync_response_hooks(
    handler: LeakHandler = _handler,
) -> dict[str, list[Callable[[httpx.Response], None]]]:
    """The same for a blocking ``httpx.Client``."""

    def scan(response: httpx.Response) -> None:
        if not _is_event_stream(response):
            response.read()
            _check_body(response, handler)

    scan.leak_scan = True  # type: ignore[attr-defined]
    return {"response": [scan]}


def _scan_every_client() -> None:
    """Give every httpx client the run makes the response scan, unless it has one: tests
    build clients of their own beside the shared ones."""
    for cls, hooks in ((httpx.AsyncClient, response_hooks), (httpx.Client, _sync_response_hooks)):
        original = cls.__init__

        def init(
            self: Any, *args: Any, _original: Any = original, _hooks: Any = hooks, **kwargs: Any
        ) -> None:
            given = kwargs.pop("event_hooks", None) or {}
            merged = {name: list(functions) for name, functions in given.items()}
            scans = merged.setdefault("response", [])
            if not any(getattr(f, "leak_scan", False) for f in scans):
                scans.extend(_hooks()["response"])
            _original(self, *args, event_hooks=merged, **kwargs)

        cls.__init__ = init  # type: ignore[method-assign]


def scan_log(text: str, source: str, handler: LeakHandler = _handler) -> list[str]:
    """Scan the log a process of the suite wrote (end-to-end tests run services as
    processes, whose records this process never sees), line by line; answers the kinds
    found, and records each like a finding in this process's own logs."""
    found: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        for kind in handler.scanner.kinds_in(line):
            handler.findings.append(Finding(handler.test, f"{source} line {number}", kind))
            found.append(kind)
    return sorted(set(found))


# Loggers of the test harness, not of the product, that log every URL at INFO: the tests'
# own HTTP client, and uvicorn's access log, which the gateway turns off (gateway.serve)
# but pytest's capture handlers on it turn back on. Both would repeat what tests send.
HARNESS_LOGGERS = ("httpx", "uvicorn.access")


def pytest_configure(config: pytest.Config) -> None:
    """Attach the scanner to the root logger for the whole run."""
    root = logging.getLogger()
    root.addHandler(_handler)
    _scan_every_client()
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)
    for name in (*PARAMETER_LOGGERS, *HARNESS_LOGGERS):
        logging.getLogger(name).setLevel(logging.WARNING)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """Name the running test in findings."""
    _handler.test = item.nodeid
    try:
        return (yield)
    finally:
        _handler.test = "(between tests)"


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the run when any secret was seen."""
    if _handler.findings:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """List each finding: test, logger or response, kind of secret."""
    if not _handler.findings:
        return
    terminalreporter.section("secrets in logs or responses", red=True)
    seen: set[str] = set()
    for finding in _handler.findings:
        line = str(finding)
        if line not in seen:
            seen.add(line)
            terminalreporter.line(line)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Detach the scanner."""
    logging.getLogger().removeHandler(_handler)
