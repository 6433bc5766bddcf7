"""Fold ``user_security`` into ``users``: login failures and TOTP state are one per user.

The table existed only because the code could add tables to an existing
database but not columns. Its rows move into the new columns of ``users``
(a user without one, which the old code backfilled at start, gets the
defaults), then it is dropped; the downgrade recreates it from those columns,
one row per user, as the old code expects.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 06:10:00 UTC
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

# The columns that move, with their types (frozen here: a revision must not follow the models).
MOVED = (
    ("last_failed_login_at", sa.DateTime(timezone=True)),
    ("totp_secret", sa.LargeBinary()),
    ("totp_pending", sa.LargeBinary()),
    ("totp_last_step", sa.BigInteger()),
)


def upgrade() -> None:
    """Add the columns to ``users``, copy each user's row into them, drop ``user_security``."""
    # NOT NULL with a server default: the rows already there get 0 before the copy.
    op.add_column(
        "users",
        sa.Column("failed_login_attempts", sa.Integer(), server_default="0", nullable=False),
    )
    for name, kind in MOVED:
        op.add_column("users", sa.Column(name, kind, nullable=True))
    # Correlated subqueries: one statement that PostgreSQL and SQLite both run.
    copies = ", ".join(
        f"{name} = (SELECT s.{name} FROM user_security s WHERE s.user_id = users.id)"
        for name, _ in MOVED
    )
    op.execute(
        "UPDATE users SET failed_login_attempts = COALESCE("
        "(SELECT s.failed_login_attempts FROM user_security s WHERE s.user_id = users.id), 0), "
        f"{copies}"
    )
    op.drop_table("user_security")


def downgrade() -> None:
    """Recreate ``user_security`` with one row per user from the columns, then drop them."""
    op.create_table(
        "user_security",
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("failed_login_attempts", sa.Integer(), nullable=False),
        *(sa.Column(name, kind, nullable=True) for name, kind in MOVED),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id"),
    )
    names = ", ".join(name for name, _ in MOVED)
    op.execute(
        f"INSERT INTO user_security (user_id, failed_login_attempts, {names}) "
        f"SELECT id, failed_login_attempts, {names} FROM users"
    )
    # Plain columns (no index, key or constraint): SQLite drops them in place (3.35+),
    # without rebuilding ``users``, whose rebuild would cascade-delete what refers to it.
    for name, _ in reversed(MOVED):
        op.drop_column("users", name)
    op.drop_column("users", "failed_login_attempts")
