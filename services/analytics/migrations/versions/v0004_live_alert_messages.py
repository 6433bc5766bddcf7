"""Live alert messages kept a few minutes, so that the live feed of every analytics replica
hears a message another replica sent (it is read back by the id its notice names).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 15:35:20 UTC
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """The live messages table, indexed by when each was stored (for dropping old ones)."""
    op.create_table(
        "alert_live_messages",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("message", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_alert_live_messages_created_at"),
        "alert_live_messages",
        ["created_at"],
        unique=False,
    )


def downgrade() -> None:
    """Undo this revision."""
    op.drop_index(op.f("ix_alert_live_messages_created_at"), table_name="alert_live_messages")
    op.drop_table("alert_live_messages")
