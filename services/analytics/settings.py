"""Analytics' settings: the shared ones plus the alert channels (``IOT_*`` variables)."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, model_validator

from iotkit.config import ConfigError, EmptyIsUnset, Settings


class AnalyticsSettings(Settings):
    """The analytics process's settings; see the configuration table in the README."""

    # Alert emails go through this SMTP server (the same variable as auth's); unset: logged.
    smtp_url: Annotated[str | None, EmptyIsUnset] = Field(default=None, repr=False)
    mail_from: Annotated[str, EmptyIsUnset] = "iotsuite <no-reply@localhost>"
    # Webhooks may target loopback, private and link-local addresses (and plain http):
    # for development and tests only; an administrator's decision.
    alerts_allow_private_webhooks: Annotated[bool, EmptyIsUnset] = False
    # Failed deliveries are retried after base, 2 x base, 4 x base ... seconds, and dead
    # after this many attempts.
    alerts_retry_base_seconds: Annotated[float, EmptyIsUnset] = 5.0
    alerts_max_attempts: Annotated[int, EmptyIsUnset] = 6
    # How often silence is checked, activity stored and held messages sent.
    alerts_check_seconds: Annotated[float, EmptyIsUnset] = 5.0
    alerts_max_rules: Annotated[int, EmptyIsUnset] = 100

    @model_validator(mode="after")
    def _check_alerts(self) -> Self:
        if self.alerts_retry_base_seconds <= 0:
            raise ConfigError("IOT_ALERTS_RETRY_BASE_SECONDS must be above 0")
        if self.alerts_max_attempts < 1:
            raise ConfigError("IOT_ALERTS_MAX_ATTEMPTS must be at least 1")
        if self.alerts_check_seconds <= 0:
            raise ConfigError("IOT_ALERTS_CHECK_SECONDS must be above 0")
        if self.alerts_max_rules < 1:
            raise ConfigError("IOT_ALERTS_MAX_RULES must be at least 1")
        return self
