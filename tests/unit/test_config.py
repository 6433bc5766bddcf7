"""Settings from the environment, and refusal of placeholder secrets outside development."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotkit.config import PLACEHOLDER_SECRET, ConfigError, load_settings
from services.auth.settings import AuthSettings
from services.telemetry.settings import TelemetrySettings


def test_defaults_are_the_embedded_ones() -> None:
    settings = load_settings({})
    assert settings.env == "development"
    assert settings.data_dir == Path(".data")
    assert settings.database_url is None and settings.redis_url is None
    assert settings.address("auth") == "127.0.0.1:50051"
    assert settings.address("chat") == "127.0.0.1:50055"
    assert settings.gateway_port == 8080


def test_addresses_and_ports_come_from_the_environment() -> None:
    settings = load_settings(
        {"IOT_DEVICES_ADDR": "10.0.0.5:7000", "IOT_GATEWAY_PORT": "9000", "IOT_DATA_DIR": "/tmp/x"}
    )
    assert settings.address("devices") == "10.0.0.5:7000"
    assert settings.address("auth") == "127.0.0.1:50051"
    assert settings.gateway_port == 9000
    assert settings.data_dir == Path("/tmp/x")


@pytest.mark.parametrize("name", ["IOT_SECRET_KEY", "IOT_SERVICE_SECRET"])
@pytest.mark.parametrize("secret", [None, PLACEHOLDER_SECRET, "changeme", "short-but-real"])
def test_production_refuses_placeholder_or_short_secrets(name: str, secret: str | None) -> None:
    environ = {"IOT_ENV": "production", "IOT_SECRET_KEY": "k" * 48, "IOT_SERVICE_SECRET": "s" * 48}
    del environ[name]
    if secret is not None:
        environ[name] = secret
    with pytest.raises(ConfigError, match=name):
        AuthSettings.load(environ)


def test_production_accepts_real_secrets() -> None:
    settings = AuthSettings.load(
        {"IOT_ENV": "production", "IOT_SECRET_KEY": "k" * 48, "IOT_SERVICE_SECRET": "s" * 48}
    )
    assert settings.env == "production"


@pytest.mark.parametrize(
    ("name", "value"),
    [("IOT_GATEWAY_PORT", "eighty"), ("IOT_ACCESS_TOKEN_TTL", "1.5"), ("IOT_GRACE_SECONDS", "x")],
)
def test_malformed_numbers_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        AuthSettings.load({name: value})


def test_refresh_must_outlive_access() -> None:
    with pytest.raises(ConfigError, match="lifetimes"):
        AuthSettings.load({"IOT_ACCESS_TOKEN_TTL": "600", "IOT_REFRESH_TOKEN_TTL": "60"})


def test_import_limits_come_from_the_environment() -> None:
    settings = TelemetrySettings.load(
        {"IOT_MAX_ACTIVE_BATCHES": "12", "IOT_BATCH_MAX_AGE_HOURS": "1.5"}
    )
    assert (settings.max_active_batches, settings.batch_max_age_hours) == (12, 1.5)
    defaults = TelemetrySettings.load({})
    assert (defaults.max_active_batches, defaults.batch_max_age_hours) == (5, 24.0)


@pytest.mark.parametrize(
    ("name", "value"), [("IOT_MAX_ACTIVE_BATCHES", "0"), ("IOT_BATCH_MAX_AGE_HOURS", "-1")]
)
def test_import_limits_must_be_positive(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        TelemetrySettings.load({name: value})

