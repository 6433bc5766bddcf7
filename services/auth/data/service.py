"""The caller's data on request: prepared once, fetched through a signed link that expires.

A request renders the file at once (so the answer can tell its size) and
keeps it until the link expires. The link carries its expiry and an HMAC
signature over export, file name and expiry, with a key derived from
IOT_SECRET_KEY: it works in a plain browser download, without a token, and
any change to it (or its age) makes it fail with one undistinguished 401.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from iotkit.context import Caller
from iotkit.errors import NotFound, Unauthenticated
from iotkit.listing import PageRequest
from iotkit.sqltypes import utcnow
from iotkit.validation import Violations
from services.auth.core.store import AuthStore
from services.auth.crypto import Signer
from services.auth.data.formats import render
from services.auth.data.store import ExportStore
from services.auth.data.values import ExportFile
from services.auth.security.store import SecurityLog, SessionStore
from services.auth.security.user_agents import device_info
from services.auth.security.values import Action

EXPORT_TTL = timedelta(hours=1)
MAX_LOG_EVENTS = 10_000
DOWNLOAD_FORMATS = ("json", "csv", "xml")
OFFLINE_FORMATS = ("json", "zip")
BAD_LINK = "Invalid or expired link"


@dataclass(frozen=True, slots=True)
class PreparedExport:
    """A file ready to download."""

    download_url: str
    expires_at: datetime
    file_size: int
    format: str


@dataclass(frozen=True, slots=True)
class OfflineSummary:
    """What an offline export holds (seed 001 ``data_summary``)."""

    profile_data: bool
    security_logs: bool
    user_preferences: bool


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


class DataExportService:
    """Prepares exports of the caller's data and serves them by signed link."""

    def __init__(
        self,
        *,
        store: AuthStore,
        sessions: SessionStore,
        log: SecurityLog,
        exports: ExportStore,
        signer: Signer,
        base_url: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._sessions = sessions
        self._log = log
        self._exports = exports
        self._signer = signer
        self._base_url = base_url.rstrip("/")
        self._clock = clock

    async def download(self, *, caller: Caller, format: str) -> PreparedExport:
        """Prepare the caller's data as json, csv or xml."""
        fmt = _check_format(format, DOWNLOAD_FORMATS)
        snapshot = await self._snapshot(caller.subject)
        return await self._prepare(caller, snapshot, fmt, kind="data")

    async def offline(
        self, *, caller: Caller, format: str
    ) -> tuple[PreparedExport, OfflineSummary]:
        """Prepare the caller's data for offline use as json or zip."""
        fmt = _check_format(format, OFFLINE_FORMATS)
        snapshot = await self._snapshot(caller.subject)
        summary = OfflineSummary(
            profile_data=snapshot["profile"] is not None,
            security_logs=bool(snapshot["security_logs"]),
            user_preferences=bool(snapshot["preferences"]),
        )
        return await self._prepare(caller, snapshot, fmt, kind="offline"), summary

    async def fetch(
        self, *, export_id: str, file_name: str, expires: int, signature: str
    ) -> ExportFile:
        """The file behind a signed link; any invalid, altered or expired link is 401."""
        now = self._clock()
        text = _signed_text(export_id, file_name, expires)
        if not signature or not self._signer.verify(text, signature):
            raise Unauthenticated(BAD_LINK)
        if expires <= now.timestamp():
            raise Unauthenticated(BAD_LINK)
        export = await self._exports.get(export_id=export_id)
        if export is None or export.file_name != file_name or export.expires_at <= now:
            raise Unauthenticated(BAD_LINK)
        return export

    async def purge(self) -> int:
        """Delete files whose links have expired."""
        return await self._exports.purge(now=self._clock())

    async def _prepare(
        self, caller: Caller, snapshot: dict[str, Any], fmt: str, *, kind: str
    ) -> PreparedExport:
        now = self._clock()
        # Thousands of log events make rendering (and zipping) CPU work: off the event loop.
        rendered = await asyncio.to_thread(render, snapshot, fmt)
        expires_at = (now + EXPORT_TTL).replace(microsecond=0)
        file_name = f"iotsuite-{kind}-{now:%Y%m%d-%H%M%S}.{rendered.extension}"
        export_id = await self._exports.add(
            user_id=caller.subject,
            file_name=file_name,
            content_type=rendered.content_type,
            content=rendered.content,
            now=now,
            expires_at=expires_at,
        )
        expires = int(expires_at.timestamp())
        query = urlencode(
            {
                "expires": expires,
                "signature": self._signer.sign(_signed_text(export_id, file_name, expires)),
            }
        )
        await self._log.record(
            user_id=caller.subject,
            action=Action.DATA_EXPORTED,
            now=now,
            details={"kind": kind, "format": fmt},
        )
        return PreparedExport(
            download_url=f"{self._base_url}/v1/downloads/{export_id}/{file_name}?{query}",
            expires_at=expires_at,
            file_size=len(rendered.content),
            format=fmt,
        )

    async def _snapshot(self, user_id: str) -> dict[str, Any]:
        """Everything of the user's that is theirs to take, and no secret."""
        account = await self._store.account(user_id=user_id)
        if account is None:
            raise NotFound("User not found")
        user, profile = account.user, account.profile
        sessions = await self._sessions.sessions_of(user_id=user_id)
        events = await self._log.page(user_id=user_id, page=PageRequest(1, MAX_LOG_EVENTS))
        devices = await asyncio.to_thread(lambda: [device_info(s.user_agent) for s in sessions])
        return {
            "exported_at": _iso(self._clock()),
            "user": {
                "uuid": user.id,
                "email": user.email,
                "role": user.role,
                "is_active": user.is_active,
                "is_verified": user.is_verified,
                "mfa_enabled": user.mfa_enabled,
                "created_at": _iso(user.created_at),
                "updated_at": _iso(user.updated_at),
                "last_login_at": _iso(user.last_login_at),
            },
            "profile": None
            if profile is None
            else {
                "uuid": profile.id,
                "display_name": profile.display_name,
                "tags": list(profile.tags),
                "metadata": dict(profile.metadata),
                "created_at": _iso(profile.created_at),
                "updated_at": _iso(profile.updated_at),
            },
            "preferences": {
                "mfa_enabled": user.mfa_enabled,
                "mfa_requested": user.mfa_requested,
            },
            "sessions": [
                {
                    "id": s.id,
                    "device_info": device,
                    "ip_address": s.ip_address,
                    "user_agent": s.user_agent,
                    "created_at": _iso(s.created_at),
                    "last_used": _iso(s.last_used_at),
                    "expires_at": _iso(s.expires_at),
                    "revoked_at": _iso(s.revoked_at),
                }
                for s, device in zip(sessions, devices, strict=True)
            ],
            "security_logs": [
                {
                    "id": e.id,
                    "action": e.action,
                    "ip_address": e.ip_address,
                    "user_agent": e.user_agent,
                    "timestamp": _iso(e.created_at),
                    "success": e.success,
                    "details": dict(e.details),
                }
                for e in events.events
            ],
        }


def _check_format(fmt: str, allowed: tuple[str, ...]) -> str:
    fmt = fmt.strip().lower() or "json"
    if fmt not in allowed:
        violations = Violations()
        violations.add("format", f"Format must be one of {', '.join(allowed)}")
        violations.raise_if_any()
    return fmt


def _signed_text(export_id: str, file_name: str, expires: int) -> str:
    return f"{export_id}/{file_name}/{expires}"
