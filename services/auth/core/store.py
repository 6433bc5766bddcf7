"""Auth's core tables and their queries (SQLAlchemy 2, async): users, profiles,
sessions, refresh tokens and signing keys.

Auth owns these and the tables of its other ``*_store`` modules; no other
service reads them. State added after the first release lives in tables of
its own (``user_security``) rather than new columns of ``users``, because
``create_all`` adds missing tables to an existing database but not columns.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from iotkit import reasons
from iotkit.errors import AlreadyExists
from iotkit.listing import PageRequest, contains, fetch_page
from iotkit.sqltypes import UtcDateTime


class Base(DeclarativeBase):
    """Declarative base of auth's tables."""


def new_id() -> str:
    """A new random UUID in its canonical text form."""
    return str(uuid.uuid4())


class UserRow(Base):
    """An account. The password is stored only as an argon2id hash."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="user")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    mfa_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    mfa_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class ProfileRow(Base):
    """What a user shows of themselves; one per user."""

    __tablename__ = "profiles"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    extra: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class UserSecurityRow(Base):
    """A user's login failures and TOTP state; one per user.

    The TOTP secrets are sealed with a key derived from IOT_SECRET_KEY;
    ``totp_last_step`` is the newest time step a code was accepted for, so a
    code cannot be used twice.
    """

    __tablename__ = "user_security"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    failed_login_attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_failed_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    totp_secret: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    totp_pending: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class SessionRow(Base):
    """A login: every token pair issued by logging in and refreshing belongs to one."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoke_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    ip_address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(512), default="")


class RefreshTokenRow(Base):
    """One issued refresh token, by its ``jti``; ``used_at`` is set when it is exchanged."""

    __tablename__ = "refresh_tokens"

    jti: Mapped[str] = mapped_column(String(36), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class SigningKeyRow(Base):
    """An Ed25519 signing key; the private half is PEM encrypted with IOT_SECRET_KEY."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    private_pem: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class RefreshOutcome:
    """What exchanging a refresh token found."""

    EXCHANGED = "exchanged"
    REUSED = "reused"
    UNKNOWN = "unknown"


class AuthStore:
    """Queries over auth's tables; every method runs in its own transaction."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def add_user(
        self,
        *,
        email: str,
        password_hash: str,
        display_name: str,
        mfa_requested: bool,
        now: datetime,
        role: str = "user",
    ) -> tuple[UserRow, ProfileRow]:
        """Insert a user with their profile; raises AlreadyExists for a taken email."""
        user = UserRow(
            id=new_id(),
            email=email,
            password_hash=password_hash,
            role=role,
            is_active=True,
            is_verified=False,
            mfa_requested=mfa_requested,
            mfa_enabled=False,
            created_at=now,
            updated_at=now,
        )
        profile = ProfileRow(
            id=new_id(),
            user_id=user.id,
            display_name=display_name,
            tags=[],
            extra={},
            created_at=now,
            updated_at=now,
        )
        try:
            async with self._sessions.begin() as session:
                session.add(user)
                await session.flush()
                session.add(profile)
                session.add(UserSecurityRow(user_id=user.id, failed_login_attempts=0))
        except IntegrityError as exc:
            raise AlreadyExists("Email is already registered", reason=reasons.EMAIL_TAKEN) from exc
        return user, profile

    async def user_by_email(self, *, email: str) -> UserRow | None:
        """The user with this (lower-cased) email, if any."""
        async with self._sessions() as session:
            return await session.scalar(select(UserRow).where(UserRow.email == email))

    async def user_by_id(self, *, user_id: str) -> UserRow | None:
        """The user with this id, if any."""
        async with self._sessions() as session:
            return await session.get(UserRow, user_id)

    async def profile_of(self, *, user_id: str) -> ProfileRow | None:
        """The profile of a user."""
        async with self._sessions() as session:
            return await session.scalar(select(ProfileRow).where(ProfileRow.user_id == user_id))

    async def backfill_security_rows(self) -> None:
        """Give a ``user_security`` row to every user created before that table existed."""
        known = select(UserSecurityRow.user_id)
        async with self._sessions.begin() as session:
            await session.execute(
                insert(UserSecurityRow).from_select(
                    ["user_id", "failed_login_attempts"],
                    select(UserRow.id, literal(0)).where(UserRow.id.not_in(known)),
                )
            )

    async def security_of(self, *, user_id: str) -> UserSecurityRow | None:
        """A user's login failures and TOTP state."""
        async with self._sessions() as session:
            return await session.get(UserSecurityRow, user_id)

    async def record_login(self, *, user_id: str, now: datetime, password_hash: str | None) -> None:
        """Stamp the last login, clear the failure count, store a re-hashed password if any."""
        values: dict[str, Any] = {"last_login_at": now}
        if password_hash is not None:
            values["password_hash"] = password_hash
        async with self._sessions.begin() as session:
            await session.execute(update(UserRow).where(UserRow.id == user_id).values(**values))
            await session.execute(
                update(UserSecurityRow)
                .where(UserSecurityRow.user_id == user_id)
                .values(failed_login_attempts=0)
            )

    async def record_failed_login(self, *, user_id: str, now: datetime) -> None:
        """Count a failed login of a known user (for the admin view)."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(UserSecurityRow)
                .where(UserSecurityRow.user_id == user_id)
                .values(
                    failed_login_attempts=UserSecurityRow.failed_login_attempts + 1,
                    last_failed_login_at=now,
                )
            )

    async def set_password(self, *, user_id: str, password_hash: str, now: datetime) -> None:
        """Replace a user's password hash."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(UserRow)
                .where(UserRow.id == user_id)
                .values(password_hash=password_hash, updated_at=now)
            )

    async def set_verified(self, *, user_id: str, now: datetime) -> UserRow | None:
        """Mark a user's email verified; answers the user."""
        async with self._sessions.begin() as session:
            user = await session.get(UserRow, user_id)
            if user is not None and not user.is_verified:
                user.is_verified = True
                user.updated_at = now
            return user

    async def update_user(
        self,
        *,
        user_id: str,
        now: datetime,
        role: str | None = None,
        is_active: bool | None = None,
        is_verified: bool | None = None,
    ) -> tuple[UserRow, dict[str, tuple[object, object]]] | None:
        """Change role and status; answers the user and each changed field as (old, new)."""
        async with self._sessions.begin() as session:
            user = await session.get(UserRow, user_id, with_for_update=True)
            if user is None:
                return None
            changes: dict[str, tuple[object, object]] = {}
            for name, value in (
                ("role", role),
                ("is_active", is_active),
                ("is_verified", is_verified),
            ):
                if value is not None and getattr(user, name) != value:
                    changes[name] = (getattr(user, name), value)
                    setattr(user, name, value)
            if changes:
                user.updated_at = now
            return user, changes

    async def update_profile(
        self,
        *,
        user_id: str,
        now: datetime,
        display_name: str | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> ProfileRow | None:
        """Change the fields given of a user's profile; answers it."""
        async with self._sessions.begin() as session:
            profile = await session.scalar(
                select(ProfileRow).where(ProfileRow.user_id == user_id).with_for_update()
            )
            if profile is None:
                return None
            if display_name is not None:
                profile.display_name = display_name
            if tags is not None:
                profile.tags = tags
            if metadata is not None:
                profile.extra = metadata
            profile.updated_at = now
            return profile

    async def list_users(
        self,
        *,
        page: PageRequest,
        search: str = "",
        role: str = "",
        is_active: bool | None = None,
    ) -> tuple[list[tuple[UserRow, ProfileRow | None]], int]:
        """A page of users, newest first (ties by id), with the total that match."""
        conditions: list[Any] = []
        if search:
            conditions.append(
                or_(contains(UserRow.email, search), contains(ProfileRow.display_name, search))
            )
        if role:
            conditions.append(UserRow.role == role)
        if is_active is not None:
            conditions.append(UserRow.is_active.is_(is_active))
        async with self._sessions() as session:
            return await fetch_page(
                session,
                select(UserRow, ProfileRow)
                .outerjoin(ProfileRow, ProfileRow.user_id == UserRow.id)
                .where(*conditions)
                .order_by(UserRow.created_at.desc(), UserRow.id),
                offset=page.offset,
                limit=page.limit,
            )

    async def promote(self, *, user_id: str, now: datetime, password_hash: str | None) -> None:
        """Make a user an active, verified admin; replace the password when one is given."""
        values: dict[str, Any] = {
            "role": "admin",
            "is_active": True,
            "is_verified": True,
            "updated_at": now,
        }
        if password_hash is not None:
            values["password_hash"] = password_hash
        async with self._sessions.begin() as session:
            await session.execute(update(UserRow).where(UserRow.id == user_id).values(**values))

    async def open_session(
        self, *, user_id: str, now: datetime, expires_at: datetime, ip_address: str, user_agent: str
    ) -> SessionRow:
        """Start a session for a user."""
        row = SessionRow(
            id=new_id(),
            user_id=user_id,
            created_at=now,
            last_used_at=now,
            expires_at=expires_at,
            ip_address=ip_address[:64],
            user_agent=user_agent[:512],
        )
        async with self._sessions.begin() as session:
            session.add(row)
        return row

    async def add_refresh_token(
        self, *, jti: str, session_id: str, issued_at: datetime, expires_at: datetime
    ) -> None:
        """Record an issued refresh token so that it can be exchanged once."""
        async with self._sessions.begin() as session:
            session.add(
                RefreshTokenRow(
                    jti=jti, session_id=session_id, issued_at=issued_at, expires_at=expires_at
                )
            )

    async def exchange_refresh_token(self, *, jti: str, session_id: str, now: datetime) -> str:
        """Mark a refresh token used, atomically; answers a :class:`RefreshOutcome`.

        The conditional UPDATE makes two concurrent exchanges of one token
        resolve to one winner; the loser sees REUSED.
        """
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(RefreshTokenRow)
                .where(
                    RefreshTokenRow.jti == jti,
                    RefreshTokenRow.session_id == session_id,
                    RefreshTokenRow.used_at.is_(None),
                )
                .values(used_at=now)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                await session.execute(
                    update(SessionRow).where(SessionRow.id == session_id).values(last_used_at=now)
                )
                return RefreshOutcome.EXCHANGED
            known = await session.get(RefreshTokenRow, jti)
            return RefreshOutcome.REUSED if known is not None else RefreshOutcome.UNKNOWN

    async def session_by_id(self, *, session_id: str) -> SessionRow | None:
        """A session by id."""
        async with self._sessions() as session:
            return await session.get(SessionRow, session_id)

    async def revoke_session(self, *, session_id: str, reason: str, now: datetime) -> bool:
        """Revoke a session; answers False when it was already revoked or unknown."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(SessionRow)
                .where(SessionRow.id == session_id, SessionRow.revoked_at.is_(None))
                .values(revoked_at=now, revoke_reason=reason)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def touch_session(self, *, session_id: str, now: datetime, older_than: datetime) -> None:
        """Stamp a session used, unless it was stamped after ``older_than`` (few writes)."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(SessionRow)
                .where(SessionRow.id == session_id, SessionRow.last_used_at < older_than)
                .values(last_used_at=now)
            )

    async def live_sessions(self, *, user_id: str, now: datetime) -> list[SessionRow]:
        """A user's unrevoked, unexpired sessions, newest first."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(SessionRow)
                .where(
                    SessionRow.user_id == user_id,
                    SessionRow.revoked_at.is_(None),
                    SessionRow.expires_at > now,
                )
                .order_by(SessionRow.created_at.desc(), SessionRow.id)
            )
            return list(rows)

    async def sessions_of(self, *, user_id: str) -> list[SessionRow]:
        """Every session a user ever opened, newest first."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(SessionRow)
                .where(SessionRow.user_id == user_id)
                .order_by(SessionRow.created_at.desc(), SessionRow.id)
            )
            return list(rows)

    async def revoke_user_sessions(
        self, *, user_id: str, reason: str, now: datetime, keep: str | None = None
    ) -> int:
        """Revoke every live session of a user except ``keep``; answers how many."""
        conditions = [SessionRow.user_id == user_id, SessionRow.revoked_at.is_(None)]
        if keep is not None:
            conditions.append(SessionRow.id != keep)
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(SessionRow)
                .where(*conditions, SessionRow.expires_at > now)
                .values(revoked_at=now, revoke_reason=reason)
            )
            # Expired ones are dead already; revoke them too, without counting them.
            await session.execute(
                update(SessionRow).where(*conditions).values(revoked_at=now, revoke_reason=reason)
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def count_sessions(self, *, user_id: str, now: datetime) -> tuple[int, int]:
        """How many sessions a user ever opened, and how many are live."""
        async with self._sessions() as session:
            total = await session.scalar(
                select(func.count()).select_from(SessionRow).where(SessionRow.user_id == user_id)
            )
            live = await session.scalar(
                select(func.count())
                .select_from(SessionRow)
                .where(
                    SessionRow.user_id == user_id,
                    SessionRow.revoked_at.is_(None),
                    SessionRow.expires_at > now,
                )
            )
            return int(total or 0), int(live or 0)

    async def count_active_users(self, *, now: datetime) -> int:
        """Distinct users with an unexpired, unrevoked session."""
        async with self._sessions() as session:
            count = await session.scalar(
                select(func.count(func.distinct(SessionRow.user_id))).where(
                    SessionRow.revoked_at.is_(None), SessionRow.expires_at > now
                )
            )
            return int(count or 0)

    async def signing_keys(self) -> list[SigningKeyRow]:
        """Every signing key not retired, newest first."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(SigningKeyRow)
                .where(SigningKeyRow.retired_at.is_(None))
                .order_by(SigningKeyRow.created_at.desc())
            )
            return list(rows)

    async def add_signing_key(self, *, kid: str, private_pem: bytes, now: datetime) -> None:
        """Store a new signing key."""
        async with self._sessions.begin() as session:
            session.add(SigningKeyRow(kid=kid, private_pem=private_pem, created_at=now))
