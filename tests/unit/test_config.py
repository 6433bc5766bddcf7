"""Settings from the environment, and refusal of placeholder secrets outside development."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from gateway.settings import GatewaySettings
from iotkit import event_loop
from iotkit.config import (
    PLACEHOLDER_SECRET,
    PROCESSES,
    SERVICES,
    ConfigError,
    Settings,
    load_settings,
    metrics_variable,
)
from iotkit.logs import JsonFormatter
from iotkit.server import target
from services.analytics.settings import AnalyticsSettings
from services.auth.settings import AuthSettings
from services.chat.settings import ChatSettings
from services.telemetry.settings import TelemetrySettings

KINDS = (
    Settings,
    AuthSettings,
    TelemetrySettings,
    ChatSettings,
    GatewaySettings,
    AnalyticsSettings,
)


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


def test_a_list_of_addresses_is_one_per_replica_and_each_listens_on_its_own() -> None:
    listed = {"IOT_ANALYTICS_ADDR": "10.0.0.5:50054, 10.0.0.6:50054"}
    settings = load_settings(listed)
    assert settings.replicas("analytics") == ("10.0.0.5:50054", "10.0.0.6:50054")
    assert settings.replicas("auth") == ("127.0.0.1:50051",)
    assert settings.listen_address("analytics") == "10.0.0.5:50054"
    second = load_settings({**listed, "IOT_LISTEN_ADDR": "10.0.0.6:50054"})
    assert second.listen_address("analytics") == "10.0.0.6:50054"
    # gRPC spreads a channel over a list only through the ipv4:/ipv6: schemes.
    assert target(settings.address("analytics")) == "ipv4:10.0.0.5:50054,10.0.0.6:50054"
    assert target("[::1]:1,[::1]:2") == "ipv6:[::1]:1,[::1]:2"
    assert target("analytics:50054") == "analytics:50054"


@pytest.mark.parametrize(
    ("listed", "error"),
    [
        ("analytics-1:50054,analytics-2:50054", "'analytics-1:50054' is not an IP address"),
        ("10.0.0.5:50054,10.0.0.6", "'10.0.0.6' is not an IP address with a port"),
        ("10.0.0.5:50054,[::1]:50054", "a list of replicas is all IPv4 or all IPv6"),
    ],
)
def test_a_list_of_addresses_takes_ip_addresses_with_ports(listed: str, error: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"IOT_ANALYTICS_ADDR: {error}")):
        load_settings({"IOT_ANALYTICS_ADDR": listed})


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


@pytest.mark.parametrize("kind", KINDS)
def test_each_default_is_written_once_on_its_class(kind: type[Settings]) -> None:
    # Loading from an empty environment adds nothing to the class's own defaults.
    assert kind.load({}) == kind()
    assert load_settings({}) == Settings()


@pytest.mark.parametrize("kind", KINDS)
def test_secrets_stay_out_of_repr_str_and_log_lines(kind: type[Settings]) -> None:
    secrets = {
        "IOT_SECRET_KEY": "key-" + "k" * 40,
        "IOT_SERVICE_SECRET": "svc-" + "s" * 40,
        "IOT_ADMIN_EMAIL": "root@example.com",
        "IOT_ADMIN_PASSWORD": "Adm1n!passw0rd",
        "IOT_DATABASE_URL": "postgresql://iot:db-pass@db:5432/iot",
        "IOT_REDIS_URL": "redis://:redis-pass@cache:6379/0",
        "IOT_SMTP_URL": "smtp://bot:smtp-pass@mail:587",
    }
    settings = kind.load({"IOT_ENV": "production", **secrets})
    record = logging.makeLogRecord(
        {"msg": "settings %s %r", "args": (settings, settings), "levelname": "INFO"}
    )
    shown = [repr(settings), str(settings), f"{settings}", JsonFormatter("test").format(record)]
    for text in shown:
        for word in ("k" * 40, "s" * 40, "Adm1n!passw0rd", "db-pass", "redis-pass", "smtp-pass"):
            assert word not in text
    assert "env='production'" in repr(settings)


@pytest.mark.parametrize(
    ("kind", "name", "value", "message"),
    [
        (Settings, "IOT_GATEWAY_PORT", "x", "IOT_GATEWAY_PORT must be a whole number, got 'x'"),
        (Settings, "IOT_GRACE_SECONDS", "soon", "IOT_GRACE_SECONDS must be a number, got 'soon'"),
        (
            AuthSettings,
            "IOT_REFRESH_TOKEN_TTL",
            "a month",
            "IOT_REFRESH_TOKEN_TTL must be a whole number, got 'a month'",
        ),
        (
            TelemetrySettings,
            "IOT_MAX_ACTIVE_BATCHES",
            "2.5",
            "IOT_MAX_ACTIVE_BATCHES must be a whole number, got '2.5'",
        ),
    ],
)
def test_a_bad_number_is_a_config_error_naming_its_variable(
    kind: type[Settings], name: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        kind.load({name: value})


def test_unknown_and_other_processes_variables_are_ignored() -> None:
    # The launcher hands every process the same environment: the gateway sees auth's
    # variables (even a malformed one, which auth itself refuses) and any misspelt one.
    environ = {"IOT_GATEWAY_PROT": "9000", "IOT_ACCESS_TOKEN_TTL": "x", "IOT_ADDRESSES": "{"}
    assert load_settings(environ) == Settings()
    assert TelemetrySettings.load(environ) == TelemetrySettings()
    with pytest.raises(ConfigError, match="IOT_ACCESS_TOKEN_TTL"):
        AuthSettings.load(environ)


def test_empty_optional_values_count_as_unset_but_an_empty_env_is_not_development() -> None:
    empty = {
        "IOT_SMTP_URL": "",
        "IOT_DATABASE_URL": "",
        "IOT_GATEWAY_PORT": "",
        "IOT_MAIL_FROM": "",
        "IOT_AUTH_ADDR": "",
    }
    assert AuthSettings.load(empty) == AuthSettings()
    with pytest.raises(ConfigError, match="IOT_SECRET_KEY"):
        AuthSettings.load({"IOT_ENV": ""})


def test_direct_construction_never_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IOT_GATEWAY_PORT", "9999")
    monkeypatch.setenv("IOT_MAX_ACTIVE_BATCHES", "9")
    assert Settings().gateway_port == 8080
    assert TelemetrySettings().max_active_batches == 5
    assert load_settings().gateway_port == 9999
    assert TelemetrySettings.load().max_active_batches == 9


def test_every_variable_of_the_readme_table_is_read_by_a_process() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    table = set(re.findall(r"^\| `(IOT_[A-Z_]+)` \|", readme, flags=re.MULTILINE))
    per_process = ("addresses", "metrics_addresses")
    fields = {name for kind in KINDS for name in kind.model_fields if name not in per_process}
    variables = {f"IOT_{name.upper()}" for name in fields}
    addresses = {f"IOT_{name.upper()}_ADDR" for name in SERVICES}
    metrics = {metrics_variable(name) for name in PROCESSES}
    # Read before any settings are: which event loop the process runs on.
    early = {event_loop.LOOP_ENV}
    assert table == variables | addresses | metrics | early


def test_metrics_addresses_are_per_process_and_off_when_unset_or_empty() -> None:
    settings = Settings.load(
        {"IOT_TELEMETRY_METRICS_ADDR": "0.0.0.0:9463", "IOT_GATEWAY_METRICS_ADDR": ""}
    )
    assert settings.metrics_address("telemetry") == "0.0.0.0:9463"
    assert settings.metrics_address("gateway") is None
    assert settings.metrics_address("auth") is None
    with pytest.raises(ConfigError, match="IOT_CHAT_METRICS_ADDR must be host:port"):
        Settings.load({"IOT_CHAT_METRICS_ADDR": "9465"})
