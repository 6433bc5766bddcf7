"""Auth's settings: the shared ones plus what only auth reads (``IOT_*`` variables)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Self

from pydantic import Field, model_validator

from iotkit.config import PLACEHOLDER_SECRET, ConfigError, EmptyIsUnset, Settings


class AuthSettings(Settings):
    """The auth process's settings; see the configuration table in the README."""

    SECRETS: ClassVar[tuple[str, ...]] = ("secret_key", *Settings.SECRETS)

    secret_key: str = Field(default=PLACEHOLDER_SECRET, repr=False)
    access_token_ttl: Annotated[int, EmptyIsUnset] = 900
    refresh_token_ttl: Annotated[int, EmptyIsUnset] = 30 * 24 * 3600
    # May carry the SMTP user's password.
    smtp_url: Annotated[str | None, EmptyIsUnset] = Field(default=None, repr=False)
    mail_from: Annotated[str, EmptyIsUnset] = "iotsuite <no-reply@localhost>"
    admin_email: Annotated[str | None, EmptyIsUnset] = None
    admin_password: Annotated[str | None, EmptyIsUnset] = Field(default=None, repr=False)

    @model_validator(mode="after")
    def _check_auth(self) -> Self:
        if self.access_token_ttl <= 0 or self.refresh_token_ttl <= self.access_token_ttl:
            raise ConfigError("token lifetimes must be positive, the refresh one the longer")
        if bool(self.admin_email) != bool(self.admin_password):
            raise ConfigError(
                "IOT_ADMIN_EMAIL and IOT_ADMIN_PASSWORD are set together or not at all"
            )
        return self
