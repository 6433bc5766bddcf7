"""Configuration from ``IOT_*`` environment variables.

Every process reads one :class:`Settings` in its ``__main__`` (never at import
time). Placeholder secrets are accepted only when ``IOT_ENV=development``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

SERVICES = ("auth", "devices", "telemetry", "analytics", "chat")
"""The five services, in start order."""

DEFAULT_PORTS = {
    "auth": 50051,
    "devices": 50052,
    "telemetry": 50053,
    "analytics": 50054,
    "chat": 50055,
}
"""Default gRPC port of each service on 127.0.0.1."""

PLACEHOLDER_SECRET = "dev-insecure-secret-change-me"
"""The development secret; refused outside development."""

_PLACEHOLDERS = {"", PLACEHOLDER_SECRET, "changeme", "change-me", "secret", "password"}


T = TypeVar("T", int, float)


class ConfigError(ValueError):
    """A setting is missing, malformed or unsafe for the environment."""


@dataclass(frozen=True, slots=True)
class Settings:
    """All settings of a process; see the configuration table in the README."""

    env: str = "development"
    data_dir: Path = Path(".data")
    database_url: str | None = None
    redis_url: str | None = None
    secret_key: str = PLACEHOLDER_SECRET
    service_secret: str = PLACEHOLDER_SECRET
    addresses: Mapping[str, str] = field(default_factory=dict)
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    log_level: str = "INFO"
    access_token_ttl: int = 900
    refresh_token_ttl: int = 30 * 24 * 3600
    smtp_url: str | None = None
    grace_seconds: float = 5.0
    public_url: str = ""
    mail_from: str = "iotsuite <no-reply@localhost>"
    admin_email: str | None = None
    admin_password: str | None = field(default=None, repr=False)
    # File import (seed 002): open batches per user, and how long a batch stays open.
    max_active_batches: int = 5
    batch_max_age_hours: float = 24.0

    def address(self, service: str) -> str:
        """The ``host:port`` where ``service`` listens."""
        return self.addresses.get(service) or f"127.0.0.1:{DEFAULT_PORTS[service]}"

    def base_url(self) -> str:
        """Where browsers reach the gateway, for links in emails and download URLs."""
        return self.public_url or f"http://{self.gateway_host}:{self.gateway_port}"

    def validate(self) -> Settings:
        """Refuse settings that are unsafe outside development; answers self."""
        for name, value in (
            ("IOT_SECRET_KEY", self.secret_key),
            ("IOT_SERVICE_SECRET", self.service_secret),
        ):
            weak = value.strip().lower() in _PLACEHOLDERS or len(value) < 32
            if self.env != "development" and weak:
                raise ConfigError(
                    f"{name} must be set to a random value of at least 32 characters "
                    f"when IOT_ENV={self.env}"
                )
        if self.access_token_ttl <= 0 or self.refresh_token_ttl <= self.access_token_ttl:
            raise ConfigError("token lifetimes must be positive, the refresh one the longer")
        if bool(self.admin_email) != bool(self.admin_password):
            raise ConfigError(
                "IOT_ADMIN_EMAIL and IOT_ADMIN_PASSWORD are set together or not at all"
            )
        if self.public_url and not self.public_url.startswith(("http://", "https://")):
            raise ConfigError("IOT_PUBLIC_URL must be an http:// or https:// URL")
        if self.max_active_batches < 1:
            raise ConfigError("IOT_MAX_ACTIVE_BATCHES must be at least 1")
        if self.batch_max_age_hours <= 0:
            raise ConfigError("IOT_BATCH_MAX_AGE_HOURS must be above 0")
        return self


def _number(environ: Mapping[str, str], name: str, default: T, convert: Callable[[str], T]) -> T:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return convert(raw)
    except ValueError as exc:
        kind = "a whole number" if convert is int else "a number"
        raise ConfigError(f"{name} must be {kind}, got {raw!r}") from exc


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate settings from ``environ`` (the process environment by default)."""
    env = os.environ if environ is None else environ
    addresses = {
        name: env[f"IOT_{name.upper()}_ADDR"]
        for name in SERVICES
        if env.get(f"IOT_{name.upper()}_ADDR")
    }
    settings = Settings(
        env=env.get("IOT_ENV", "development"),
        data_dir=Path(env.get("IOT_DATA_DIR", ".data")),
        database_url=env.get("IOT_DATABASE_URL") or None,
        redis_url=env.get("IOT_REDIS_URL") or None,
        secret_key=env.get("IOT_SECRET_KEY", PLACEHOLDER_SECRET),
        service_secret=env.get("IOT_SERVICE_SECRET", PLACEHOLDER_SECRET),
        addresses=addresses,
        gateway_host=env.get("IOT_GATEWAY_HOST", "127.0.0.1"),
        gateway_port=_number(env, "IOT_GATEWAY_PORT", 8080, int),
        log_level=env.get("IOT_LOG_LEVEL", "INFO").upper(),
        access_token_ttl=_number(env, "IOT_ACCESS_TOKEN_TTL", 900, int),
        refresh_token_ttl=_number(env, "IOT_REFRESH_TOKEN_TTL", 30 * 24 * 3600, int),
        smtp_url=env.get("IOT_SMTP_URL") or None,
        grace_seconds=_number(env, "IOT_GRACE_SECONDS", 5.0, float),
        public_url=env.get("IOT_PUBLIC_URL", "").rstrip("/"),
        mail_from=env.get("IOT_MAIL_FROM") or "iotsuite <no-reply@localhost>",
        admin_email=env.get("IOT_ADMIN_EMAIL") or None,
        admin_password=env.get("IOT_ADMIN_PASSWORD") or None,
        max_active_batches=_number(env, "IOT_MAX_ACTIVE_BATCHES", 5, int),
        batch_max_age_hours=_number(env, "IOT_BATCH_MAX_AGE_HOURS", 24.0, float),
    )
    return settings.validate()
