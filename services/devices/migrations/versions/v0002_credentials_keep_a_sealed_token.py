"""Credentials keep their token sealed (a key derived from the service secret), so that the
MQTT broker can be given a credential issued before it was configured, or again after it
lost its state; and whether the broker was given it (a failed grant is put right by the
broker's reconciliation, ``services.devices.broker_sync``).

A credential issued before this revision has no sealed token: the broker cannot be given
it, and its device needs a new credential to publish over MQTT.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 15:43:23 UTC
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """The sealed token (none for credentials already issued) and the broker flag (false)."""
    op.add_column("device_credentials", sa.Column("sealed_token", sa.LargeBinary(), nullable=True))
    op.add_column(
        "device_credentials",
        sa.Column("on_broker", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    """Undo this revision."""
    with op.batch_alter_table("device_credentials") as batch:
        batch.drop_column("on_broker")
        batch.drop_column("sealed_token")
