"""Today's schema: the tables the code made before it had migrations.

Revision ID: 0001
Revises: None
Create Date: 2026-12-01 05:38:50 UTC
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
        "account_batch_slots",
        sa.Column("batch_id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("batch_id"),
        sa.UniqueConstraint("account_id", "slot"),
    )
    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=36), nullable=False),
        sa.Column("site_id", sa.String(length=36), nullable=True),
        sa.Column("device_id", sa.String(length=36), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("active_slot", sa.Integer(), nullable=True),
        sa.Column("files_count", sa.Integer(), nullable=False),
        sa.Column("total_size", sa.BigInteger(), nullable=False),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner_id", "active_slot"),
    )
    op.create_index("ix_batches_owner_started", "batches", ["owner_id", "started_at"], unique=False)
    op.create_index("ix_batches_status_started", "batches", ["status", "started_at"], unique=False)
    op.create_table(
        "chunks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("stream_id", sa.String(length=36), nullable=False),
        sa.Column("ts_min", sa.BigInteger(), nullable=False),
        sa.Column("ts_max", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("v_min", sa.Float(), nullable=False),
        sa.Column("v_max", sa.Float(), nullable=False),
        sa.Column("v_sum", sa.Float(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_chunks_stream_span", "chunks", ["stream_id", "ts_min", "ts_max"], unique=False
    )
    op.create_table(
        "cursors",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "error_logs",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=36), nullable=False),
        sa.Column("batch_id", sa.String(length=36), nullable=True),
        sa.Column("file_id", sa.String(length=36), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("severity", sa.String(length=8), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("message", sa.String(length=500), nullable=False),
        sa.Column("row", sa.Integer(), nullable=True),
        sa.Column("column", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("id"),
    )
    op.create_index("ix_error_logs_batch", "error_logs", ["batch_id", "seq"], unique=False)
    op.create_index("ix_error_logs_file", "error_logs", ["file_id", "seq"], unique=False)
    op.create_table(
        "streams",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=36), nullable=False),
        sa.Column("metric_name", sa.String(length=64), nullable=False),
        sa.Column("device_type", sa.String(length=16), nullable=False),
        sa.Column("sampling_rate", sa.Integer(), nullable=False),
        sa.Column("sampling_period_us", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_ts", sa.BigInteger(), nullable=True),
        sa.Column("last_value", sa.Float(), nullable=True),
        sa.Column("readings_count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("device_id", "metric_name"),
    )
    op.create_index(op.f("ix_streams_device_id"), "streams", ["device_id"], unique=False)
    op.create_table(
        "uploaded_files",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=36), nullable=False),
        sa.Column("batch_id", sa.String(length=36), nullable=True),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("object_key", sa.String(length=400), nullable=False),
        sa.Column("device_id", sa.String(length=36), nullable=True),
        sa.Column("device_owner_id", sa.String(length=36), nullable=True),
        sa.Column("metric_name", sa.String(length=64), nullable=True),
        sa.Column("expected_columns", sa.JSON(), nullable=False),
        sa.Column("expected_checksum", sa.String(length=32), nullable=True),
        sa.Column("checksum", sa.String(length=32), nullable=True),
        sa.Column("file_size", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message", sa.String(length=500), nullable=False),
        sa.Column("duplicate_of", sa.String(length=36), nullable=True),
        sa.Column("rows_total", sa.Integer(), nullable=False),
        sa.Column("rows_imported", sa.Integer(), nullable=False),
        sa.Column("rows_rejected", sa.Integer(), nullable=False),
        sa.Column("rows_duplicate", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_uploaded_files_batch", "uploaded_files", ["batch_id", "created_at"], unique=False
    )
    op.create_index(
        op.f("ix_uploaded_files_owner_id"), "uploaded_files", ["owner_id"], unique=False
    )
    op.create_index("ix_uploaded_files_status", "uploaded_files", ["status"], unique=False)


def downgrade() -> None:
    """Undo this revision."""
    op.drop_index("ix_uploaded_files_status", table_name="uploaded_files")
    op.drop_index(op.f("ix_uploaded_files_owner_id"), table_name="uploaded_files")
    op.drop_index("ix_uploaded_files_batch", table_name="uploaded_files")
    op.drop_table("uploaded_files")
    op.drop_index(op.f("ix_streams_device_id"), table_name="streams")
    op.drop_table("streams")
    op.drop_index("ix_error_logs_file", table_name="error_logs")
    op.drop_index("ix_error_logs_batch", table_name="error_logs")
    op.drop_table("error_logs")
    op.drop_table("cursors")
    op.drop_index("ix_chunks_stream_span", table_name="chunks")
    op.drop_table("chunks")
    op.drop_index("ix_batches_status_started", table_name="batches")
    op.drop_index("ix_batches_owner_started", table_name="batches")
    op.drop_table("batches")
    op.drop_table("account_batch_slots")
