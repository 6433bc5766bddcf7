"""Every attempt of an alert delivery, kept: a delivery listed shows each try, when it
was made and what came of it, not only the count and the last error.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 14:22:04 UTC
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """The attempts table, indexed by delivery."""
    op.create_table(
        "alert_delivery_attempts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("delivery_id", sa.String(length=36), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_alert_delivery_attempts_delivery_id"),
        "alert_delivery_attempts",
        ["delivery_id"],
        unique=False,
    )


def downgrade() -> None:
    """Undo this revision."""
    op.drop_index(
        op.f("ix_alert_delivery_attempts_delivery_id"), table_name="alert_delivery_attempts"
    )
    op.drop_table("alert_delivery_attempts")
