"""``streams.max_chunk_span_us``: the longest time any chunk of the stream spans.

The range query bounds the start of the chunks it reads by it (a chunk
overlapping [start, end) starts at ``start - max_chunk_span_us`` or later), so
its index scan, and on PostgreSQL the months it reads, follow the range asked
for rather than the stream's whole history. Existing streams get it from
their chunks.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 13:25:00 UTC
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the column (0 for a stream with no chunk) and fill it from each stream's chunks."""
    op.add_column(
        "streams",
        sa.Column("max_chunk_span_us", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.execute(
        "UPDATE streams SET max_chunk_span_us = COALESCE((SELECT MAX(ts_max - ts_min) "
        "FROM chunks WHERE chunks.stream_id = streams.id), 0)"
    )


def downgrade() -> None:
    """Drop the column; the query without it reads from the stream's first chunk."""
    with op.batch_alter_table("streams") as batch:
        batch.drop_column("max_chunk_span_us")
