"""On PostgreSQL, partition ``chunks`` by month of its first reading (``ts_min``).

Readings at scale: a range query reads only the months it spans, and
retention drops a whole month's table instead of deleting its rows one by one
(``services.telemetry.telemetry.partitions`` creates the months ahead and
drops the expired ones at run time). The table is rebuilt as a partitioned
table with the same columns, the same id sequence and the same index; the
rows move over in one statement, in this migration's transaction. A
partitioned table's primary key must hold its partition key, so it becomes
(id, ts_min); ids stay unique, drawn from the one sequence as before.

SQLite, the embedded default, has no partitions: this revision changes
nothing there.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 13:10:00 UTC
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

# Frozen copies of the run-time rule (a revision must not follow the code): a month has its
# own partition from 2000-01 up to a year ahead; anything else lives in the default one.
FIRST_MONTH = (2000, 1)
MONTHS_AHEAD = 12

COLUMNS = """
    stream_id VARCHAR(36) NOT NULL,
    ts_min BIGINT NOT NULL,
    ts_max BIGINT NOT NULL,
    count INTEGER NOT NULL,
    v_min FLOAT NOT NULL,
    v_max FLOAT NOT NULL,
    v_sum FLOAT NOT NULL,
    data BYTEA NOT NULL
"""
NAMES = "id, stream_id, ts_min, ts_max, count, v_min, v_max, v_sum, data"


def _micros(year: int, month: int) -> int:
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp() * 1_000_000)


def _next(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def _months_of(connection: sa.Connection) -> set[tuple[int, int]]:
    """The months that the existing rows start in, inside the window that has partitions."""
    now = datetime.now(UTC)
    last = (now.year, now.month)
    for _ in range(MONTHS_AHEAD):
        last = _next(*last)
    rows = connection.execute(
        sa.text(
            "SELECT DISTINCT CAST(EXTRACT(YEAR FROM m) AS INTEGER), "
            "CAST(EXTRACT(MONTH FROM m) AS INTEGER) FROM ("
            " SELECT date_trunc('month', to_timestamp(ts_min / 1000000.0) AT TIME ZONE 'UTC') AS m"
            " FROM chunks_unpartitioned) AS months"
        )
    )
    return {(int(y), int(m)) for y, m in rows if FIRST_MONTH <= (int(y), int(m)) <= last}


def _rebuild(*, aside: str, key: str, partitioned: bool) -> None:
    """Rename ``chunks`` (with its index and key) to ``aside`` and make an empty ``chunks``
    in its place, on the same id sequence, partitioned by month of ``ts_min`` or not."""
    op.execute(f"ALTER TABLE chunks RENAME TO {aside}")
    op.execute(f"ALTER INDEX ix_chunks_stream_span RENAME TO ix_{aside}_stream_span")
    op.execute(f"ALTER TABLE {aside} RENAME CONSTRAINT chunks_pkey TO {aside}_pkey")
    op.execute(
        f"CREATE TABLE chunks (id BIGINT NOT NULL DEFAULT nextval('chunks_id_seq'), {COLUMNS},"
        f" CONSTRAINT chunks_pkey PRIMARY KEY ({key}))"
        + (" PARTITION BY RANGE (ts_min)" if partitioned else "")
    )
    # The sequence goes with the new table, or dropping the old one would drop it too.
    op.execute("ALTER SEQUENCE chunks_id_seq OWNED BY chunks.id")
    op.execute("CREATE INDEX ix_chunks_stream_span ON chunks (stream_id, ts_min, ts_max)")


def upgrade() -> None:
    """Rebuild ``chunks`` as a table partitioned by month of ``ts_min`` (PostgreSQL only)."""
    connection = op.get_bind()
    if connection.dialect.name != "postgresql":
        return
    _rebuild(aside="chunks_unpartitioned", key="id, ts_min", partitioned=True)
    op.execute("CREATE TABLE chunks_default PARTITION OF chunks DEFAULT")
    for year, month in sorted(_months_of(connection)):
        after = _next(year, month)
        op.execute(
            f"CREATE TABLE chunks_p{year:04d}{month:02d} PARTITION OF chunks FOR VALUES FROM "
            f"({_micros(year, month)}) TO ({_micros(*after)})"
        )
    op.execute(f"INSERT INTO chunks ({NAMES}) SELECT {NAMES} FROM chunks_unpartitioned")
    op.execute("DROP TABLE chunks_unpartitioned")


def downgrade() -> None:
    """Put the rows back in one plain ``chunks`` table, as revision 0001 made it."""
    connection = op.get_bind()
    if connection.dialect.name != "postgresql":
        return
    _rebuild(aside="chunks_partitioned", key="id", partitioned=False)
    op.execute(f"INSERT INTO chunks ({NAMES}) SELECT {NAMES} FROM chunks_partitioned")
    # Dropping the partitioned table drops its partitions with it.
    op.execute("DROP TABLE chunks_partitioned")
