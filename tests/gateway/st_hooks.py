"""Schemathesis hooks of the signed-in run: every request carries a live access token.

Fuzzing reaches logout and session revocation too, which end the session of
the token in use; so the token is a fresh login every few seconds (and after
a 401), not one header fixed for the whole run. The gateway's address and the
account come from ``IOT_ST_BASE_URL``, ``IOT_ST_EMAIL`` and ``IOT_ST_PASSWORD``.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import schemathesis

TOKEN_SECONDS = 5
"""How long one login's token is used before logging in again."""


@schemathesis.auth(refresh_interval=TOKEN_SECONDS)
class FreshLogin:
    """A new login of the test's account: its access token."""

    def get(self, case: Any, context: Any) -> str:
        """Log in and answer the access token."""
        answer = httpx.post(
            f"{os.environ['IOT_ST_BASE_URL']}/v1/auth/login",
            json={"email": os.environ["IOT_ST_EMAIL"], "password": os.environ["IOT_ST_PASSWORD"]},
            timeout=30,
        )
        answer.raise_for_status()
        return str(answer.json()["data"]["access_token"])

    def set(self, case: Any, data: str, context: Any) -> None:
        """Send the token as a bearer token."""
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
