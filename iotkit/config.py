"""Configuration from ``IOT_*`` environment variables.

Every process reads one frozen settings object in its ``__main__`` (never at
import time) with :meth:`Settings.load`. :class:`Settings` holds what the kit
and several processes read; a service with settings of its own subclasses it
beside its code (``services/auth/settings.py``,
``services/telemetry/settings.py``). Each field is the variable
``IOT_<FIELD>`` and its default is written once, on the field;
``IOT_<SERVICE>_ADDR`` fills :attr:`Settings.addresses`: one ``host:port``, or
a comma-separated list with one per replica of the service (IP literals, so
that gRPC can spread calls over them without a resolver); a replica listens
where ``IOT_LISTEN_ADDR`` says, by default its service's first address.
``IOT_<PROCESS>_METRICS_ADDR`` (a service or ``GATEWAY``) fills
:attr:`Settings.metrics_addresses`.

A process ignores the ``IOT_*`` variables it does not read, unknown ones
included: the launcher hands one environment to every process, so auth's
variables reach the gateway too, and no process can tell a misspelt variable
from another process's. An empty optional URL, mail sender or number counts
as unset, as Compose writes ``IOT_SMTP_URL: ${IOT_SMTP_URL:-}``; an empty
``IOT_ENV`` or secret stays empty, so it is never taken for a development
default.

Constructing a class directly (as tests do) takes its arguments and the
defaults, never the environment. Secrets, and URLs that may carry a password,
are left out of ``repr`` and ``str``. Placeholder secrets are accepted only
when ``IOT_ENV=development``.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Self

from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUseDefault
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

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

GATEWAY = "gateway"
"""The REST gateway's process name."""

PROCESSES = (*SERVICES, GATEWAY)
"""Every process of the suite: the services, then the gateway."""

DEFAULT_METRICS_PORTS = {
    "auth": 9461,
    "devices": 9462,
    "telemetry": 9463,
    "analytics": 9464,
    "chat": 9465,
    GATEWAY: 9460,
}
"""The ``/metrics`` port of each process under ``iot up`` (a process alone serves none)."""

PLACEHOLDER_SECRET = "dev-insecure-secret-change-me"
"""The development secret; refused outside development."""

_PLACEHOLDERS = {"", PLACEHOLDER_SECRET, "changeme", "change-me", "secret", "password"}

PREFIX = "IOT_"
"""What every variable's name starts with."""


class ConfigError(ValueError):
    """A setting is missing, malformed or unsafe for the environment."""


def _empty_is_unset(value: object) -> object:
    if value == "":
        raise PydanticUseDefault()
    return value


EmptyIsUnset = BeforeValidator(_empty_is_unset)
"""Field metadata: an empty value gives the field its default."""


def variable(field: str) -> str:
    """The environment variable of the settings field ``field``."""
    return f"{PREFIX}{field.upper()}"


class Settings(BaseSettings):
    """What the kit and several processes read; see the configuration table in the README."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True, extra="forbid")

    SECRETS: ClassVar[tuple[str, ...]] = ("service_secret",)
    """Fields that must hold a real secret outside development, in the order checked."""

    env: str = "development"
    data_dir: Path = Path(".data")
    database_url: Annotated[str | None, EmptyIsUnset] = Field(default=None, repr=False)
    redis_url: Annotated[str | None, EmptyIsUnset] = Field(default=None, repr=False)
    service_secret: str = Field(default=PLACEHOLDER_SECRET, repr=False)
    addresses: Mapping[str, str] = Field(default_factory=dict)
    metrics_addresses: Mapping[str, str] = Field(default_factory=dict)
    listen_addr: Annotated[str | None, EmptyIsUnset] = None
    gateway_host: str = "127.0.0.1"
    gateway_port: Annotated[int, EmptyIsUnset] = 8080
    log_level: str = "INFO"
    grace_seconds: Annotated[float, EmptyIsUnset] = 5.0
    startup_timeout: Annotated[float, EmptyIsUnset] = 60.0
    public_url: str = ""
    # The MQTT broker (README "Devices over MQTT"): mqtt://admin:password@host:port. Unset:
    # MQTT ingest is off (``iot up`` sets it when it starts a Mosquitto of its own).
    mqtt_url: Annotated[str | None, EmptyIsUnset] = Field(default=None, repr=False)
    # Where the Mosquitto ``iot up`` starts listens (loopback), when IOT_MQTT_URL is unset.
    mqtt_port: Annotated[int, EmptyIsUnset] = 1883

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only the arguments: `load` reads the environment it is given, and a test
        # that builds settings directly never picks up the shell's IOT_* variables.
        return (init_settings,)

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read and validate settings from ``environ`` (the process environment by default).

        A bad value raises :class:`ConfigError` naming its variable.
        """
        values = _Variables(cls, os.environ if environ is None else environ)()
        try:
            return cls(**values)
        except ValidationError as exc:
            raise _config_error(exc) from exc

    @field_validator("log_level")
    @classmethod
    def _upper_case_level(cls, value: str) -> str:
        return value.upper()

    @field_validator("metrics_addresses")
    @classmethod
    def _host_and_port(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        for process, address in value.items():
            _, sep, port = address.rpartition(":")
            if not sep or not port.isdigit() or int(port) > 65535:
                raise ConfigError(f"{metrics_variable(process)} must be host:port, got {address!r}")
        return value

    @field_validator("public_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        # Links are built as base_url() + "/path".
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check_shared(self) -> Self:
        for field in self.SECRETS:
            value = getattr(self, field)
            weak = value.strip().lower() in _PLACEHOLDERS or len(value) < 32
            if self.env != "development" and weak:
                raise ConfigError(
                    f"{variable(field)} must be set to a random value of at least 32 characters "
                    f"when IOT_ENV={self.env}"
                )
        if self.mqtt_url and not self.mqtt_url.startswith("mqtt://"):
            raise ConfigError("IOT_MQTT_URL must be mqtt://[user:password@]host[:port]")
        if self.public_url and not self.public_url.startswith(("http://", "https://")):
            raise ConfigError("IOT_PUBLIC_URL must be an http:// or https:// URL")
        for service, listed in self.addresses.items():
            _check_replica_list(variable(f"{service}_addr"), listed)
        return self

    def address(self, service: str) -> str:
        """Where ``service`` is dialled: its ``host:port``, or its replicas' comma-separated."""
        return self.addresses.get(service) or f"127.0.0.1:{DEFAULT_PORTS[service]}"

    def metrics_address(self, process: str) -> str | None:
        """The ``host:port`` where ``process`` serves ``/metrics``, or None when it serves
        none (the default: ``iot up`` sets them; see :data:`DEFAULT_METRICS_PORTS`)."""
        return self.metrics_addresses.get(process) or None

    def replicas(self, service: str) -> tuple[str, ...]:
        """The ``host:port`` of each replica of ``service`` (one unless a list is configured)."""
        return split_addresses(self.address(service))

    def listen_address(self, service: str) -> str:
        """Where this process, a replica of ``service``, listens."""
        return self.listen_addr or self.replicas(service)[0]

    def base_url(self) -> str:
        """Where browsers reach the gateway, for links in emails and download URLs."""
        return self.public_url or f"http://{self.gateway_host}:{self.gateway_port}"


def metrics_variable(process: str) -> str:
    """The variable holding where ``process`` serves ``/metrics``."""
    return variable(f"{process}_metrics_addr")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The shared :class:`Settings` from ``environ``; a service's own class has ``load``."""
    return Settings.load(environ)


def split_addresses(listed: str) -> tuple[str, ...]:
    """The addresses of a comma-separated list (a single address is a list of one)."""
    return tuple(part.strip() for part in listed.split(",") if part.strip())


def _check_replica_list(name: str, listed: str) -> None:
    """Refuse a list of several addresses unless each is an IP literal with a port.

    gRPC spreads a channel over a list only with the ``ipv4:``/``ipv6:`` schemes,
    which take no host names; one name that resolves to every replica (as in
    Compose or Kubernetes) is a single address and needs no list.
    """
    parts = split_addresses(listed)
    if len(parts) < 2:
        return
    families = set()
    for part in parts:
        host, sep, port = part.rpartition(":")
        try:
            families.add(ipaddress.ip_address(host.strip("[]")).version)
        except ValueError:
            host = ""
        if not sep or not port.isdigit() or not host:
            raise ConfigError(
                f"{name}: {part!r} is not an IP address with a port; a list of replicas "
                "takes IP addresses (use one name that resolves to every replica instead)"
            )
    if len(families) > 1:
        raise ConfigError(f"{name}: a list of replicas is all IPv4 or all IPv6")


class _Variables(PydanticBaseSettingsSource):
    """The ``IOT_*`` variables of ``environ`` that name a field of the class."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self._environ = environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """The raw value of ``field_name``'s variable, or None when unset."""
        name = variable(field_name)
        return self._environ.get(name), name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, _, _ = self.get_field_value(field, name)
            if value is not None and name not in ("addresses", "metrics_addresses"):
                values[name] = value
        # Not one IOT_ADDRESSES: a variable per service, as Compose files set them.
        values["addresses"] = {
            name: self._environ[variable(f"{name}_addr")]
            for name in SERVICES
            if self._environ.get(variable(f"{name}_addr"))
        }
        values["metrics_addresses"] = {
            name: self._environ[metrics_variable(name)]
            for name in PROCESSES
            if self._environ.get(metrics_variable(name))
        }
        return values


def _config_error(exc: ValidationError) -> ConfigError:
    """The first problem of ``exc`` as a :class:`ConfigError` naming its variable."""
    first = exc.errors()[0]
    raised = first.get("ctx", {}).get("error")
    if isinstance(raised, ConfigError):
        return raised
    loc = first["loc"]
    if loc[:1] == ("addresses",) and len(loc) > 1:
        name = variable(f"{loc[1]}_addr")
    elif loc[:1] == ("metrics_addresses",) and len(loc) > 1:
        name = metrics_variable(str(loc[1]))
    else:
        name = variable(str(loc[0])) if loc else "IOT_*"
    kind = {"int": "a whole number", "float": "a number"}.get(first["type"].partition("_")[0])
    if kind:
        return ConfigError(f"{name} must be {kind}, got {first['input']!r}")
    return ConfigError(f"{name}: {first['msg']}")
