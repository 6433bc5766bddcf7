"""Today's schema: the tables the code made before it had migrations.

Revision ID: 0001
Revises: None
Create Date: 2026-12-01 05:38:54 UTC
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Today's schema: the tables the code made before it had migrations."""
    op.create_table(
        "anomalies",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("stream_id", sa.String(length=36), nullable=False),
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=36), nullable=False),
        sa.Column("detected_us", sa.BigInteger(), nullable=False),
        sa.Column("known_us", sa.BigInteger(), nullable=True),
        sa.Column("anomaly_type", sa.String(length=16), nullable=False),
        sa.Column("raw_value", sa.Float(), nullable=False),
        sa.Column("expected_value", sa.Float(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewed_by", sa.String(length=36), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("review_note", sa.String(length=1000), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("stream_id", "anomaly_type", "detected_us"),
    )
    op.create_index(op.f("ix_anomalies_device_id"), "anomalies", ["device_id"], unique=False)
    op.create_index(
        "ix_anomalies_owner_detected", "anomalies", ["owner_id", "detected_us"], unique=False
    )
    op.create_index(op.f("ix_anomalies_stream_id"), "anomalies", ["stream_id"], unique=False)
    op.create_table(
        "correlations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=36), nullable=False),
        sa.Column("stream_a", sa.String(length=36), nullable=False),
        sa.Column("stream_b", sa.String(length=36), nullable=False),
        sa.Column("coefficient", sa.Float(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("algorithm", sa.String(length=32), nullable=False),
        sa.Column("sample_count", sa.Integer(), nullable=False),
        sa.Column("best_lag_seconds", sa.Float(), nullable=False),
        sa.Column("grid_seconds", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("p_value", sa.Float(), nullable=False),
        sa.Column("ci_low", sa.Float(), nullable=False),
        sa.Column("ci_high", sa.Float(), nullable=False),
        sa.Column("effective_sample_count", sa.Float(), nullable=False),
        sa.Column("lags_tried", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_correlations_created_at"), "correlations", ["created_at"], unique=False
    )
    op.create_index(op.f("ix_correlations_owner_id"), "correlations", ["owner_id"], unique=False)
    op.create_table(
        "detectors",
        sa.Column("stream_id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=36), nullable=False),
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("stream_id"),
    )
    op.create_index(op.f("ix_detectors_owner_id"), "detectors", ["owner_id"], unique=False)
    op.create_table(
        "retired_devices",
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("device_id"),
    )
    op.create_table(
        "scores",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("stream_id", sa.String(length=36), nullable=False),
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("first_us", sa.BigInteger(), nullable=False),
        sa.Column("last_us", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_scores_device_id"), "scores", ["device_id"], unique=False)
    op.create_index(
        "ix_scores_stream_span", "scores", ["stream_id", "first_us", "last_us"], unique=False
    )


def downgrade() -> None:
    """Undo this revision."""
    op.drop_index("ix_scores_stream_span", table_name="scores")
    op.drop_index(op.f("ix_scores_device_id"), table_name="scores")
    op.drop_table("scores")
    op.drop_table("retired_devices")
    op.drop_index(op.f("ix_detectors_owner_id"), table_name="detectors")
    op.drop_table("detectors")
    op.drop_index(op.f("ix_correlations_owner_id"), table_name="correlations")
    op.drop_index(op.f("ix_correlations_created_at"), table_name="correlations")
    op.drop_table("correlations")
    op.drop_index(op.f("ix_anomalies_stream_id"), table_name="anomalies")
    op.drop_index("ix_anomalies_owner_detected", table_name="anomalies")
    op.drop_index(op.f("ix_anomalies_device_id"), table_name="anomalies")
    op.drop_table("anomalies")
