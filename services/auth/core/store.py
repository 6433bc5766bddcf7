"""Auth's core tables (SQLAlchemy 2, async): users, profiles, sessions, refresh
tokens and signing keys, with the queries of ``AuthService`` (protos/iot/auth/v1/auth.proto).

The other API folders' ``store.py`` share these models and ``Base`` (one
metadata, one database) and hold their own queries. Every query answers
domain values (``services.auth.account``), never a row. Auth owns these
tables and those of the other stores; no other service reads them. Their
schema changes through migrations (``services/auth/migrations``), so state
that is one per user is a column of ``users``.
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
    delete,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from iotkit import reasons
from iotkit.errors import AlreadyExists
from iotkit.sqltypes import UtcDateTime
from services.auth.account import Account, LoginSession, Profile, User


class Base(DeclarativeBase):
    """Declarative base of auth's tables."""


def new_id() -> str:
    """A new random UUID in its canonical text form."""
    return str(uuid.uuid4())


class UserRow(Base):
    """An account. The password is stored only as an argon2id hash.

    The TOTP secrets are sealed with a key derived from IOT_SECRET_KEY;
    ``totp_last_step`` is the newest time step a code was accepted for, so a
    code cannot be used twice. (Login failures and TOTP state were the table
    ``user_security`` until revision 0002 folded it in.)
    """

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
    # The server default fills the rows that were there when the column came (revision 0002).
    failed_login_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_failed_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    totp_secret: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    totp_pending: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


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


class RevocationRow(Base):
    """A revoked session, kept while its access tokens may be unexpired, for the other
    services to refuse them (``ListRevokedSessions``). Written in the transaction that
    revokes, so no revocation is missing from here."""

    __tablename__ = "session_revocations"

    session_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    revoked_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class SigningKeyRow(Base):
    """An Ed25519 signing key; the private half is PEM encrypted with IOT_SECRET_KEY."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    private_pem: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


def to_user(row: UserRow) -> User:
    """The domain value of a user row."""
    return User(
        id=row.id,
        email=row.email,
        role=row.role,
        is_active=row.is_active,
        is_verified=row.is_verified,
        mfa_requested=row.mfa_requested,
        mfa_enabled=row.mfa_enabled,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_login_at=row.last_login_at,
        password_hash=row.password_hash,
    )


def to_profile(row: ProfileRow) -> Profile:
    """The domain value of a profile row."""
    return Profile(
        id=row.id,
        user_id=row.user_id,
        display_name=row.display_name,
        tags=tuple(row.tags),
        metadata=dict(row.extra),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def to_account(user: UserRow, profile: ProfileRow | None) -> Account:
    """The domain value of a user row with its profile row."""
    return Account(to_user(user), to_profile(profile) if profile is not None else None)


def to_session(row: SessionRow) -> LoginSession:
    """The domain value of a session row."""
    return LoginSession(
        id=row.id,
        user_id=row.user_id,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        ip_address=row.ip_address,
        user_agent=row.user_agent,
    )


class RefreshOutcome:
    """What exchanging a refresh token found."""

    EXCHANGED = "exchanged"
    REUSED = "reused"
    UNKNOWN = "unknown"


class AuthStore:
    """Queries over users, sessions, refresh tokens and signing keys; every method runs in
    its own transaction."""

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
    ) -> Account:
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
            failed_login_attempts=0,
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
        except IntegrityError as exc:
            raise AlreadyExists("Email is already registered", reason=reasons.EMAIL_TAKEN) from exc
        return to_account(user, profile)

    async def user_by_email(self, *, email: str) -> User | None:
        """The user with this (lower-cased) email, if any."""
        async with self._sessions() as session:
            row = await session.scalar(select(UserRow).where(UserRow.email == email))
            return to_user(row) if row is not None else None

    async def user_by_id(self, *, user_id: str) -> User | None:
        """The user with this id, if any."""
        async with self._sessions() as session:
            row = await session.get(UserRow, user_id)
            return to_user(row) if row is not None else None

    async def account(self, *, user_id: str) -> Account | None:
        """The user with this id and their profile, if there is such a user."""
        async with self._sessions() as session:
            user = await session.get(UserRow, user_id)
            if user is None:
                return None
            profile = await session.scalar(select(ProfileRow).where(ProfileRow.user_id == user_id))
            return to_account(user, profile)

    async def record_login(self, *, user_id: str, now: datetime, password_hash: str | None) -> None:
        """Stamp the last login, clear the failure count, store a re-hashed password if any."""
        values: dict[str, Any] = {"last_login_at": now, "failed_login_attempts": 0}
        if password_hash is not None:
            values["password_hash"] = password_hash
        async with self._sessions.begin() as session:
            await session.execute(update(UserRow).where(UserRow.id == user_id).values(**values))

    async def record_failed_login(self, *, user_id: str, now: datetime) -> None:
        """Count a failed login of a known user (for the admin view)."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(UserRow)
                .where(UserRow.id == user_id)
                .values(
                    failed_login_attempts=UserRow.failed_login_attempts + 1,
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

    async def set_verified(self, *, user_id: str, now: datetime) -> User | None:
        """Mark a user's email verified; answers the user."""
        async with self._sessions.begin() as session:
            user = await session.get(UserRow, user_id)
            if user is not None and not user.is_verified:
                user.is_verified = True
                user.updated_at = now
        return to_user(user) if user is not None else None

    async def open_session(
        self, *, user_id: str, now: datetime, expires_at: datetime, ip_address: str, user_agent: str
    ) -> LoginSession:
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
        return to_session(row)

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

    async def session_by_id(self, *, session_id: str) -> LoginSession | None:
        """A session by id."""
        async with self._sessions() as session:
            row = await session.get(SessionRow, session_id)
            return to_session(row) if row is not None else None

    async def revoke_session(self, *, session_id: str, reason: str, now: datetime) -> bool:
        """Revoke a session; answers False when it was already revoked or unknown."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(SessionRow)
                .where(SessionRow.id == session_id, SessionRow.revoked_at.is_(None))
                .values(revoked_at=now, revoke_reason=reason)
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                return False
            session.add(RevocationRow(session_id=session_id, revoked_at=now))
            return True

    async def touch_session(self, *, session_id: str, now: datetime, older_than: datetime) -> None:
        """Stamp a session used, unless it was stamped after ``older_than`` (few writes)."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(SessionRow)
                .where(SessionRow.id == session_id, SessionRow.last_used_at < older_than)
                .values(last_used_at=now)
            )

    async def revoke_user_sessions(
        self, *, user_id: str, reason: str, now: datetime, keep: str | None = None
    ) -> int:
        """Revoke every live session of a user except ``keep``; answers how many."""
        conditions = [SessionRow.user_id == user_id, SessionRow.revoked_at.is_(None)]
        if keep is not None:
            conditions.append(SessionRow.id != keep)
        async with self._sessions.begin() as session:
            live = list(
                await session.scalars(
                    update(SessionRow)
                    .where(*conditions, SessionRow.expires_at > now)
                    .values(revoked_at=now, revoke_reason=reason)
                    .returning(SessionRow.id)
                )
            )
            # Expired ones are dead already (their tokens too); revoke them without counting.
            await session.execute(
                update(SessionRow).where(*conditions).values(revoked_at=now, revoke_reason=reason)
            )
            session.add_all(RevocationRow(session_id=sid, revoked_at=now) for sid in live)
            return len(live)

    async def revocations_since(self, *, since: datetime) -> list[tuple[str, datetime]]:
        """Sessions revoked at or after ``since``: id and when, oldest first."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(RevocationRow.session_id, RevocationRow.revoked_at)
                .where(RevocationRow.revoked_at >= since)
                .order_by(RevocationRow.revoked_at, RevocationRow.session_id)
            )
            return [(sid, at) for sid, at in rows]

    async def purge_revocations(self, *, before: datetime) -> None:
        """Forget revocations older than ``before`` (their tokens have all expired)."""
        async with self._sessions.begin() as session:
            await session.execute(delete(RevocationRow).where(RevocationRow.revoked_at < before))

    async def count_active_users(self, *, now: datetime) -> int:
        """Distinct users with an unexpired, unrevoked session."""
        async with self._sessions() as session:
            count = await session.scalar(
                select(func.count(func.distinct(SessionRow.user_id))).where(
                    SessionRow.revoked_at.is_(None), SessionRow.expires_at > now
                )
            )
            return int(count or 0)

    async def signing_keys(self) -> dict[str, bytes]:
        """Every signing key not retired, newest first: its encrypted PEM by key id."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(SigningKeyRow)
                .where(SigningKeyRow.retired_at.is_(None))
                .order_by(SigningKeyRow.created_at.desc())
            )
            return {row.kid: row.private_pem for row in rows}

    async def add_signing_key(self, *, kid: str, private_pem: bytes, now: datetime) -> None:
        """Store a new signing key."""
        async with self._sessions.begin() as session:
            session.add(SigningKeyRow(kid=kid, private_pem=private_pem, created_at=now))
