"""Domain values -> ``iot.auth.v1`` messages, shared by auth's servicers.

Every builder here picks the public fields of a domain value; none of them
reads a password hash, a sealed secret or a digest.
"""

from __future__ import annotations

from iot.auth.v1 import admin_pb2, auth_pb2, security_pb2, sites_pb2
from iotkit.convert import struct, timestamp
from services.auth.account import Account, Profile
from services.auth.admin.service import AdminUserView
from services.auth.core.service import MFA_CODE_NEEDED, Tokens
from services.auth.security.service import SessionView
from services.auth.security.values import SecurityEvent
from services.auth.sites.values import Site, SiteAccount


def user_message(account: Account) -> auth_pb2.User:
    """The public view of a user: never the password hash."""
    user = account.user
    return auth_pb2.User(
        uuid=user.id,
        email=user.email,
        role=user.role,
        is_active=user.is_active,
        is_verified=user.is_verified,
        is_configured=account.is_configured,
        last_login_at=timestamp(user.last_login_at),
        created_at=timestamp(user.created_at),
        updated_at=timestamp(user.updated_at),
        mfa_enabled=user.mfa_enabled,
    )


def profile_message(account: Account) -> auth_pb2.Profile | None:
    """The profile of an account, if it has one."""
    return profile_value_message(account.profile) if account.profile is not None else None


def profile_value_message(profile: Profile) -> auth_pb2.Profile:
    """A profile (seed 001 ProfileResponseDto)."""
    return auth_pb2.Profile(
        uuid=profile.id,
        display_name=profile.display_name,
        tags=profile.tags,
        metadata=struct(profile.metadata),
        created_at=timestamp(profile.created_at),
        updated_at=timestamp(profile.updated_at),
    )


def login_message(tokens: Tokens) -> auth_pb2.LoginResponse:
    """A LoginResponse for a login or refresh."""
    return auth_pb2.LoginResponse(
        user=user_message(tokens.account),
        profile=profile_message(tokens.account),
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_in=tokens.expires_in,
        token_type="bearer",
        mfa_required=tokens.mfa_required,
        message=MFA_CODE_NEEDED if tokens.mfa_required else "",
    )


def log_entry_message(event: SecurityEvent) -> security_pb2.SecurityLogEntry:
    """One event of the security log."""
    return security_pb2.SecurityLogEntry(
        id=event.id,
        action=event.action,
        ip_address=event.ip_address,
        user_agent=event.user_agent,
        timestamp=timestamp(event.created_at),
        success=event.success,
        details=struct(event.details),
    )


def session_message(view: SessionView) -> security_pb2.SessionInfo:
    """One live session."""
    return security_pb2.SessionInfo(
        id=view.session.id,
        device_info=view.device_info,
        ip_address=view.session.ip_address,
        created_at=timestamp(view.session.created_at),
        last_used=timestamp(view.session.last_used_at),
        is_current=view.is_current,
        expires_at=timestamp(view.session.expires_at),
    )


def admin_summary_message(account: Account) -> admin_pb2.AdminUserSummary:
    """A user in an admin listing."""
    user, profile = account.user, account.profile
    return admin_pb2.AdminUserSummary(
        uuid=user.id,
        email=user.email,
        role=user.role,
        is_active=user.is_active,
        is_verified=user.is_verified,
        is_configured=account.is_configured,
        last_login_at=timestamp(user.last_login_at),
        created_at=timestamp(user.created_at),
        profile=admin_pb2.AdminProfileSummary(uuid=profile.id, display_name=profile.display_name)
        if profile is not None
        else None,
    )


def admin_detail_message(view: AdminUserView) -> admin_pb2.AdminUserDetail:
    """One user as an admin sees them: whether links are pending, never their tokens."""
    user = view.account.user
    return admin_pb2.AdminUserDetail(
        user=admin_pb2.AdminUser(
            uuid=user.id,
            email=user.email,
            role=user.role,
            is_active=user.is_active,
            is_verified=user.is_verified,
            is_configured=view.account.is_configured,
            verification_pending=view.verification_expires is not None,
            verification_expires=timestamp(view.verification_expires),
            reset_pending=view.reset_expires is not None,
            reset_token_expiry=timestamp(view.reset_expires),
            last_login_at=timestamp(user.last_login_at),
            created_at=timestamp(user.created_at),
            updated_at=timestamp(user.updated_at),
            mfa_enabled=user.mfa_enabled,
        ),
        profile=profile_message(view.account),
        security_info=admin_pb2.SecurityInfo(
            total_sessions=view.total_sessions,
            failed_login_attempts=view.failed_login_attempts,
            last_security_incident=timestamp(view.last_incident),
            active_sessions=view.active_sessions,
        ),
    )


def account_message(account: SiteAccount) -> sites_pb2.Account:
    """An account (seed 002 AccountResponseDto)."""
    return sites_pb2.Account(
        id=account.id,
        email=account.email,
        name=account.name,
        is_active=account.is_active,
        created_at=timestamp(account.created_at),
        max_concurrent_batches=account.max_concurrent_batches,
        owner_user_id=account.owner_user_id or "",
    )


def site_message(site: Site) -> sites_pb2.Site:
    """A site without its secret (seed 002 SiteResponseDto)."""
    return sites_pb2.Site(
        id=site.id,
        account_id=site.account_id,
        domain=site.domain,
        name=site.name,
        is_active=site.is_active,
        created_at=timestamp(site.created_at),
    )
