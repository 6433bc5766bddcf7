"""The gateway's settings: the shared ones plus its browser-facing limits (``IOT_*`` variables)."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import model_validator

from iotkit.config import ConfigError, EmptyIsUnset, Settings

MAX_WORKERS = 10
"""The most gateway workers: their metrics ports step by 10 and must not meet a service's."""

DEFAULT_BODY_TIMEOUT = 30.0
"""Seconds a request body may go without a byte by default (``IOT_GATEWAY_BODY_TIMEOUT``)."""

DEFAULT_MAX_CONNECTIONS = 1000
"""Connections one worker holds at once by default (``IOT_GATEWAY_MAX_CONNECTIONS``)."""

MAX_BODY_TIMEOUT = 3600.0
"""The longest wait for a piece of a request body that may be configured (seconds)."""


class GatewaySettings(Settings):
    """The gateway process's settings; see the configuration table in the README."""

    # Requests to the API (/v1/...) answered per minute: to one client address, and to one
    # bearer token; 0 turns a limit off. Shared through Redis when IOT_REDIS_URL is set.
    gateway_rate_per_client: Annotated[int, EmptyIsUnset] = 3000
    gateway_rate_per_token: Annotated[int, EmptyIsUnset] = 1200
    # Origins of other sites whose pages may call the API (comma-separated, exact
    # "scheme://host[:port]"); none by default: the console is served from the same origin.
    gateway_cors_origins: str = ""
    # Worker processes serving the gateway's one port (uvicorn's supervisor shares the
    # socket); worker n serves /metrics at the first free of the metrics port + 10 * k.
    gateway_workers: Annotated[int, EmptyIsUnset] = 1
    # Seconds a request's body may go without a byte arriving before it is answered 408
    # (a client that sends headers and part of a body holds a connection until then).
    gateway_body_timeout: Annotated[float, EmptyIsUnset] = DEFAULT_BODY_TIMEOUT
    # Open connections (and requests in progress) past which one worker answers 503 at once,
    # so that clients holding connections cannot make it take on more work than its files allow.
    gateway_max_connections: Annotated[int, EmptyIsUnset] = DEFAULT_MAX_CONNECTIONS

    @model_validator(mode="after")
    def _check_gateway(self) -> Self:
        for field in ("gateway_rate_per_client", "gateway_rate_per_token"):
            if getattr(self, field) < 0:
                raise ConfigError(f"IOT_{field.upper()} must be 0 (off) or more")
        if not 0 < self.gateway_body_timeout <= MAX_BODY_TIMEOUT:
            raise ConfigError(
                f"IOT_GATEWAY_BODY_TIMEOUT must be more than 0 and at most {MAX_BODY_TIMEOUT:g}"
            )
        if self.gateway_max_connections < 1:
            raise ConfigError("IOT_GATEWAY_MAX_CONNECTIONS must be 1 or more")
        if not 1 <= self.gateway_workers <= MAX_WORKERS:
            raise ConfigError(f"IOT_GATEWAY_WORKERS must be between 1 and {MAX_WORKERS}")
        for origin in self.cors_origins:
            if origin == "*" or not origin.startswith(("http://", "https://")):
                raise ConfigError(
                    "IOT_GATEWAY_CORS_ORIGINS lists origins like https://app.example.com, "
                    f"not {origin!r}"
                )
        return self

    @property
    def cors_origins(self) -> tuple[str, ...]:
        """The allowed origins, without blanks or trailing slashes."""
        parts = (part.strip().rstrip("/") for part in self.gateway_cors_origins.split(","))
        return tuple(part for part in parts if part)


def gateway_settings(settings: Settings) -> GatewaySettings:
    """``settings`` as the gateway's: its own when they are, the defaults beside shared ones."""
    if isinstance(settings, GatewaySettings):
        return settings
    return GatewaySettings(**settings.model_dump())
