"""The field rules of seed 001 (RegisterDto, LoginDto, ResetPasswordDto, VerifyEmailDto,
UpdateProfileDto, UpdateUserAdminDto) with the seed's messages, and the rules of
seed 002's accounts and sites where the seed gives none.
"""

from __future__ import annotations

import json
import re
import uuid
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

from iotkit.validation import Violations

EMAIL_MAX = 255
PASSWORD_MIN, PASSWORD_MAX = 8, 128
DISPLAY_NAME_MAX = 100

_SPECIALS = r"!@#$%^&*()_+\-=\[\]{};':\"\\|,.<>\/?"
# The seed's pattern: one of each class, and only these characters; it ends with \Z where
# the seed's JavaScript has $, which in Python would also let a final newline through.
PASSWORD_PATTERN = re.compile(
    rf"^(?=.*[a-z])(?=.*[A-Z])(?=.*\d)(?=.*[{_SPECIALS}])[A-Za-z\d{_SPECIALS}]{{8,}}\Z", re.ASCII
)

MSG_EMAIL_REQUIRED = "Email is required"
MSG_EMAIL_LONG = "Email cannot exceed 255 characters"
MSG_EMAIL_FORMAT = "Invalid email format"
MSG_PASSWORD_REQUIRED = "Password is required"
MSG_PASSWORD_SHORT = "Password must be at least 8 characters"
MSG_PASSWORD_LONG = "Password cannot exceed 128 characters"
MSG_PASSWORD_WEAK = (
    "Password must include at least one uppercase letter, one lowercase letter, "
    "one number, and one special character"
)
MSG_DISPLAY_NAME = "Display name must be between 1 and 100 characters"


def check_email(violations: Violations, email: str, *, field: str = "email") -> str:
    """Check an email address; answers it normalised: trimmed, lower-cased, its domain in
    Unicode (NFC), so that one mailbox written with its domain in punycode
    (``xn--exmple-cua.com``) or in Unicode (``exämple.com``) is one account."""
    email = email.strip()
    if not email:
        violations.add(field, MSG_EMAIL_REQUIRED)
    elif len(email) > EMAIL_MAX:
        violations.add(field, MSG_EMAIL_LONG)
    else:
        try:
            valid = validate_email(email, check_deliverability=False)
        except EmailNotValidError:
            violations.add(field, MSG_EMAIL_FORMAT)
        else:
            email = f"{valid.local_part}@{valid.domain}"
    return email.lower()


def check_password(
    violations: Violations,
    password: str,
    *,
    field: str = "password",
    required: str = MSG_PASSWORD_REQUIRED,
) -> None:
    """Check a password against the seed's length and complexity rules."""
    if not password:
        violations.add(field, required)
    elif len(password) < PASSWORD_MIN:
        violations.add(field, MSG_PASSWORD_SHORT)
    elif len(password) > PASSWORD_MAX:
        violations.add(field, MSG_PASSWORD_LONG)
    elif not PASSWORD_PATTERN.match(password):
        violations.add(field, MSG_PASSWORD_WEAK)


def check_display_name(violations: Violations, name: str, *, field: str = "display_name") -> str:
    """Check a display name (1 to 100 characters, not blank); answers it trimmed."""
    trimmed = name.strip()
    if not 1 <= len(trimmed) <= DISPLAY_NAME_MAX:
        violations.add(field, MSG_DISPLAY_NAME)
    return trimmed


MSG_TOKEN_REQUIRED = "Token is required"
MSG_VERIFICATION_TOKEN_REQUIRED = "Verification token is required"
MSG_NEW_PASSWORD_REQUIRED = "New password is required"
MSG_CURRENT_PASSWORD_REQUIRED = "Current password is required"
MSG_CURRENT_PASSWORD_WRONG = "Current password is incorrect"
MSG_PASSWORD_UNCHANGED = "New password must be different from the current password"
MSG_TAGS = "Tags must be an array of strings"
MSG_METADATA = "Metadata must be a JSON object of at most 64 KiB"
MSG_TIMEZONE = "Time zone must be an IANA time zone name, such as Europe/Paris or UTC"
TIMEZONE_MAX = 64
MSG_ROLE = "Invalid role"
MSG_NAME = "Name must be between 1 and 100 characters"
MSG_DOMAIN = "Invalid domain"
MSG_MAX_BATCHES = "Max concurrent batches must be between 1 and 1000"
MSG_SITE_REF = "Give site_id or domain"
MSG_OWNER = "owner_user_id must be the id of an existing user"

ROLES = ("user", "admin")
METADATA_MAX_BYTES = 64 * 1024
NAME_MAX = 100
MAX_BATCHES_MAX = 1000
DOMAIN_MAX = 253
# A domain's label; \Z as above ("a\n.com" is no domain).
_DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)\Z")


def check_tags(violations: Violations, tags: list[object], *, field: str = "tags") -> list[str]:
    """Check tags: strings, any number of them; answers them trimmed, without blanks."""
    if not all(isinstance(tag, str) for tag in tags):
        violations.add(field, MSG_TAGS)
        return []
    return [tag.strip() for tag in tags if isinstance(tag, str) and tag.strip()]


def check_metadata(
    violations: Violations, metadata: dict[str, object], *, field: str = "metadata"
) -> dict[str, object]:
    """Check metadata: a JSON object of at most 64 KiB once serialised, whose ``timezone``
    (read by chat's periods and alerts' quiet hours) names an IANA time zone when given."""
    try:
        size = len(json.dumps(metadata, separators=(",", ":")).encode())
    except (TypeError, ValueError):
        size = METADATA_MAX_BYTES + 1
    if size > METADATA_MAX_BYTES:
        violations.add(field, MSG_METADATA)
    zone = metadata.get("timezone")
    if zone is not None and not is_time_zone(zone):
        violations.add(f"{field}.timezone", MSG_TIMEZONE)
    return metadata


def is_time_zone(name: object) -> bool:
    """Whether ``name`` is an IANA time zone this machine knows ("Europe/Paris", "UTC")."""
    if not isinstance(name, str) or not name or len(name) > TIMEZONE_MAX:
        return False
    if name == "UTC":
        return True
    try:
        ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError, OSError):
        return False
    return True


def check_role(violations: Violations, role: str, *, field: str = "role") -> str:
    """Check a role: "user" or "admin" (seed 001 UpdateUserAdminDto)."""
    if role not in ROLES:
        violations.add(field, MSG_ROLE)
    return role


# A listing's search text is matched inside emails and names, none longer than an email:
# longer text matches nothing, and past 50,000 bytes SQLite refuses the LIKE pattern
# ("pattern too complex"), which answered UNAVAILABLE as if the database were down.
SEARCH_MAX = EMAIL_MAX


def check_search(violations: Violations, search: str, *, field: str = "search") -> str:
    """Check a listing's search text (at most SEARCH_MAX characters once trimmed); answers
    it trimmed."""
    trimmed = search.strip()
    if len(trimmed) > SEARCH_MAX:
        violations.add(field, f"Search must be at most {SEARCH_MAX} characters")
    return trimmed


def check_name(violations: Violations, name: str, *, field: str = "name") -> str:
    """Check an account or site name (1 to 100 characters, not blank); answers it trimmed."""
    trimmed = name.strip()
    if not 1 <= len(trimmed) <= NAME_MAX:
        violations.add(field, MSG_NAME)
    return trimmed


def check_domain(violations: Violations, domain: str, *, field: str = "domain") -> str:
    """Check a DNS host name such as ``plant-7.example.com``; answers it lower-cased."""
    normalised = domain.strip().lower().rstrip(".")
    labels = normalised.split(".")
    valid = (
        0 < len(normalised) <= DOMAIN_MAX
        and len(labels) >= 2
        and all(_DOMAIN_LABEL.match(label) for label in labels)
        and not labels[-1].isdigit()
    )
    if not valid:
        violations.add(field, MSG_DOMAIN)
    return normalised


def check_max_batches(
    violations: Violations, value: int, *, field: str = "max_concurrent_batches"
) -> int:
    """Check the open-batches limit of an account: 1 to 1000."""
    if not 1 <= value <= MAX_BATCHES_MAX:
        violations.add(field, MSG_MAX_BATCHES)
    return value


def is_uuid(text: str) -> bool:
    """True for a UUID in any of its text forms (ids that cannot be one are simply unknown)."""
    return canonical_uuid(text) is not None


def canonical_uuid(text: str) -> str | None:
    """A UUID in any of its text forms (capitals, braces, no hyphens) as ids are stored:
    lower case with hyphens; None when ``text`` is no UUID. An id is looked up in this form,
    or one in capitals would be unknown."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None
