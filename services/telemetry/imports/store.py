"""Tables and queries of file import: batches, uploaded files, error logs (SQLAlchemy 2).

They live in telemetry's own database, declared on telemetry's ``Base`` so
that opening the database creates them. Every method runs in its own
transaction; state changes are conditional updates (``WHERE status = ...``)
so that two replicas, or a request racing the background importer, cannot
both move the same row. Queries answer the domain values of ``values.py``
(never a row) and writes take them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Index,
    Integer,
    String,
    UniqueConstraint,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from iotkit.listing import fetch_page
from iotkit.sqltypes import SEQUENCE, UtcDateTime
from services.telemetry.imports.values import (
    ACTIVE,
    COMPLETED,
    FAILED,
    FILE_DONE,
    PENDING,
    PROCESSING,
    UPLOADED,
    UPLOADING,
    Batch,
    ErrorLog,
    UploadedFile,
)
from services.telemetry.telemetry.store import Base

SERIOUS = ("ERROR", "FATAL")
SLOT_ATTEMPTS = 3


class BatchRow(Base):
    """An upload batch.

    ``active_slot`` is a number below the owner's limit while the batch is
    ACTIVE and NULL afterwards; the unique (owner, slot) pair is what keeps an
    owner within the limit even when requests race (NULLs never collide).
    """

    __tablename__ = "batches"
    __table_args__ = (
        UniqueConstraint("owner_id", "active_slot"),
        Index("ix_batches_owner_started", "owner_id", "started_at"),
        Index("ix_batches_status_started", "status", "started_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(36))
    site_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    device_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    active_slot: Mapped[int | None] = mapped_column(Integer, nullable=True)
    files_count: Mapped[int] = mapped_column(Integer, default=0)
    total_size: Mapped[int] = mapped_column(BigInteger, default=0)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class AccountSlotRow(Base):
    """The place of an ACTIVE site batch within its account's limit (seed 002 maxConcurrentBatches).

    A site's batches count against its account, all sites together; the unique
    (account, slot) pair keeps the account within it when requests race, as
    ``active_slot`` does for one owner. The row lives while the batch is
    ACTIVE. It came as a table when the schema could gain tables but not columns;
    it stays one (README, "Databases made by an older version"): a slot lives
    only while its batch is ACTIVE, and its unique pair is what admission races on.
    """

    __tablename__ = "account_batch_slots"
    __table_args__ = (UniqueConstraint("account_id", "slot"),)

    batch_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(36))
    slot: Mapped[int] = mapped_column(Integer)


class UploadedFileRow(Base):
    """A file announced for upload, its stored content and how its import went."""

    __tablename__ = "uploaded_files"
    __table_args__ = (
        Index("ix_uploaded_files_batch", "batch_id", "created_at"),
        Index("ix_uploaded_files_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(36), index=True)
    batch_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    format: Mapped[str] = mapped_column(String(8))
    filename: Mapped[str] = mapped_column(String(255))
    object_key: Mapped[str] = mapped_column(String(400))
    device_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # Who owns device_id, as devices answered when the upload was announced.
    device_owner_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    metric_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    expected_columns: Mapped[list[str]] = mapped_column(JSON, default=list)
    expected_checksum: Mapped[str | None] = mapped_column(String(32), nullable=True)
    checksum: Mapped[str | None] = mapped_column(String(32), nullable=True)
    file_size: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(String(500), default="")
    duplicate_of: Mapped[str | None] = mapped_column(String(36), nullable=True)
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_imported: Mapped[int] = mapped_column(Integer, default=0)
    rows_rejected: Mapped[int] = mapped_column(Integer, default=0)
    rows_duplicate: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    uploaded_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class ErrorLogRow(Base):
    """One entry of an error log: about a row of a file, a file, or a batch."""

    __tablename__ = "error_logs"
    __table_args__ = (
        Index("ix_error_logs_batch", "batch_id", "seq"),
        Index("ix_error_logs_file", "file_id", "seq"),
    )

    # The sequence orders entries (many share a timestamp); the UUID is what the API shows.
    seq: Mapped[int] = mapped_column(SEQUENCE, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    owner_id: Mapped[str] = mapped_column(String(36))
    batch_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    file_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    filename: Mapped[str] = mapped_column(String(255), default="")
    severity: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(String(500))
    row: Mapped[int | None] = mapped_column(Integer, nullable=True)
    column: Mapped[str] = mapped_column(String(64), default="")
    reason: Mapped[str] = mapped_column(String(64), default="")
    rows: Mapped[int | None] = mapped_column(Integer, nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)


@dataclass(frozen=True, slots=True)
class Progress:
    """Row counts of an import so far."""

    rows_total: int = 0
    rows_imported: int = 0
    rows_rejected: int = 0
    rows_duplicate: int = 0


@dataclass(frozen=True, slots=True)
class ErrorQuery:
    """Which error log entries to list: of a batch or of a file, with an optional severity."""

    owner_id: str
    batch_id: str | None
    file_id: str | None
    severity: str | None
    offset: int
    limit: int


def _rowcount(result: Any) -> int:
    return int(result.rowcount or 0)


def _fields(value: Batch | UploadedFile | ErrorLog) -> dict[str, Any]:
    """A domain value's fields by name (its row's columns), for a new row."""
    return {field.name: getattr(value, field.name) for field in fields(value)}


def _batch(row: BatchRow) -> Batch:
    """A batch row as its domain value."""
    values = {field.name: getattr(row, field.name) for field in fields(Batch)}
    if row.status != ACTIVE:
        values["expires_at"] = None  # a closed batch expires no more
    return Batch(**values)


def _file(row: UploadedFileRow) -> UploadedFile:
    """A file row as its domain value."""
    return UploadedFile(**{field.name: getattr(row, field.name) for field in fields(UploadedFile)})


def _error(row: ErrorLogRow) -> ErrorLog:
    """An error log row as its domain value."""
    return ErrorLog(**{field.name: getattr(row, field.name) for field in fields(ErrorLog)})


class ImportStore:
    """Queries over the import tables."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    # Batches

    async def add_batch(
        self, *, batch: Batch, max_active: int, account_id: str | None = None
    ) -> Batch | None:
        """Insert an ACTIVE batch in a free slot; None when every slot is taken.

        The slots are the owner's, or with ``account_id`` (a site's batch) the
        account's: a slot free in the account is free for each of its sites.
        """
        for _ in range(SLOT_ATTEMPTS):
            async with self._sessions() as session:
                taken_slots = (
                    select(AccountSlotRow.slot).where(AccountSlotRow.account_id == account_id)
                    if account_id
                    else select(BatchRow.active_slot).where(
                        BatchRow.owner_id == batch.owner_id, BatchRow.active_slot.is_not(None)
                    )
                )
                taken = set(await session.scalars(taken_slots))
            free = next((slot for slot in range(max_active) if slot not in taken), None)
            if free is None:
                return None
            # A fresh row each attempt: a row from a failed flush is not to be reused.
            row = BatchRow(**_fields(batch), active_slot=free)
            try:
                async with self._sessions.begin() as session:
                    session.add(row)
                    if account_id:
                        session.add(
                            AccountSlotRow(batch_id=row.id, account_id=account_id, slot=free)
                        )
                return _batch(row)
            except IntegrityError:
                continue  # a concurrent request took that slot; look again
        return None

    async def batch(self, *, batch_id: str) -> Batch | None:
        """A batch, if it exists."""
        async with self._sessions() as session:
            row = await session.get(BatchRow, batch_id)
        return None if row is None else _batch(row)

    async def list_batches(
        self, *, owner_id: str, status: str | None, offset: int, limit: int
    ) -> tuple[list[Batch], int]:
        """A page of an owner's batches, newest first, and how many there are in all."""
        conditions: list[Any] = [BatchRow.owner_id == owner_id]
        if status:
            conditions.append(BatchRow.status == status)
        async with self._sessions() as session:
            rows, total = await fetch_page(
                session,
                select(BatchRow)
                .where(*conditions)
                .order_by(BatchRow.started_at.desc(), BatchRow.id.desc()),
                offset=offset,
                limit=limit,
            )
            return [_batch(row) for row in rows], total

    async def finish_batch(
        self, *, batch_id: str, status: str, now: datetime, pending_message: str
    ) -> Batch | None:
        """Move an ACTIVE batch to ``status``, failing its files that never got content.

        Answers the batch as changed, or None when it was no longer ACTIVE.
        """
        async with self._sessions.begin() as session:
            moved = await session.execute(
                update(BatchRow)
                .where(BatchRow.id == batch_id, BatchRow.status == ACTIVE)
                .values(status=status, active_slot=None, completed_at=now)
            )
            if not _rowcount(moved):
                return None
            await session.execute(delete(AccountSlotRow).where(AccountSlotRow.batch_id == batch_id))
            await session.execute(
                update(UploadedFileRow)
                .where(
                    UploadedFileRow.batch_id == batch_id,
                    UploadedFileRow.status.in_((PENDING, UPLOADING)),
                )
                .values(status=FAILED, message=pending_message, finished_at=now)
            )
            batch = await session.get(BatchRow, batch_id)
            return None if batch is None else _batch(batch)

    async def batch_has_failed_files(self, *, batch_id: str) -> bool:
        """True when a file of the batch ended FAILED."""
        async with self._sessions() as session:
            found = await session.scalar(
                select(UploadedFileRow.id)
                .where(UploadedFileRow.batch_id == batch_id, UploadedFileRow.status == FAILED)
                .limit(1)
            )
            return found is not None

    async def fail_completed_batch(self, *, batch_id: str) -> None:
        """Mark a COMPLETED batch FAILED (one of its files failed after completion)."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(BatchRow)
                .where(BatchRow.id == batch_id, BatchRow.status == COMPLETED)
                .values(status=FAILED)
            )

    async def expired_batches(self, *, now: datetime) -> list[str]:
        """Ids of ACTIVE batches whose time is up."""
        async with self._sessions() as session:
            return list(
                await session.scalars(
                    select(BatchRow.id).where(BatchRow.status == ACTIVE, BatchRow.expires_at <= now)
                )
            )

    # Files

    async def add_file(self, *, file: UploadedFile) -> UploadedFile:
        """Insert an announced file."""
        async with self._sessions.begin() as session:
            session.add(UploadedFileRow(**_fields(file)))
        return file

    async def file(self, *, file_id: str) -> UploadedFile | None:
        """A file, if it exists."""
        async with self._sessions() as session:
            row = await session.get(UploadedFileRow, file_id)
        return None if row is None else _file(row)

    async def files_of_batch(self, *, batch_id: str) -> list[UploadedFile]:
        """The files of a batch in the order they were announced."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(UploadedFileRow)
                .where(UploadedFileRow.batch_id == batch_id)
                .order_by(UploadedFileRow.created_at, UploadedFileRow.id)
            )
            return [_file(row) for row in rows]

    async def move_file(
        self,
        *,
        file_id: str,
        from_statuses: Sequence[str],
        status: str,
        values: dict[str, Any] | None = None,
    ) -> bool:
        """Change a file's status if it is in one of ``from_statuses``; answers whether it moved."""
        async with self._sessions.begin() as session:
            moved = await session.execute(
                update(UploadedFileRow)
                .where(UploadedFileRow.id == file_id, UploadedFileRow.status.in_(from_statuses))
                .values(status=status, **(values or {}))
            )
            return bool(_rowcount(moved))

    async def record_content(
        self,
        *,
        file_id: str,
        size: int,
        checksum: str,
        status: str,
        message: str,
        now: datetime,
    ) -> UploadedFile | None:
        """Record an UPLOADING file's stored content and count it in its batch."""
        async with self._sessions.begin() as session:
            moved = await session.execute(
                update(UploadedFileRow)
                .where(UploadedFileRow.id == file_id, UploadedFileRow.status == UPLOADING)
                .values(
                    status=status,
                    file_size=size,
                    checksum=checksum,
                    message=message,
                    uploaded_at=now,
                    finished_at=now if status in FILE_DONE else None,
                )
            )
            if not _rowcount(moved):
                return None
            file = await session.get(UploadedFileRow, file_id)
            if file is not None and file.batch_id is not None:
                await session.execute(
                    update(BatchRow)
                    .where(BatchRow.id == file.batch_id)
                    .values(
                        files_count=BatchRow.files_count + 1,
                        total_size=BatchRow.total_size + size,
                    )
                )
            return None if file is None else _file(file)

    async def same_content(
        self, *, batch_id: str, checksum: str, other_than: str
    ) -> UploadedFile | None:
        """The first other file of the batch with the same content that was not refused."""
        async with self._sessions() as session:
            found = await session.scalar(
                select(UploadedFileRow)
                .where(
                    UploadedFileRow.batch_id == batch_id,
                    UploadedFileRow.checksum == checksum,
                    UploadedFileRow.id != other_than,
                    UploadedFileRow.status.in_((UPLOADED, PROCESSING, COMPLETED)),
                )
                .order_by(UploadedFileRow.created_at)
                .limit(1)
            )
            return None if found is None else _file(found)

    async def set_duplicate_of(self, *, file_id: str, duplicate_of: str) -> None:
        """Note that a file's content equals another's."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(UploadedFileRow)
                .where(UploadedFileRow.id == file_id)
                .values(duplicate_of=duplicate_of)
            )

    async def save_progress(self, *, file_id: str, progress: Progress) -> None:
        """Store the row counts of an import in progress."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(UploadedFileRow)
                .where(UploadedFileRow.id == file_id)
                .values(
                    rows_total=progress.rows_total,
                    rows_imported=progress.rows_imported,
                    rows_rejected=progress.rows_rejected,
                    rows_duplicate=progress.rows_duplicate,
                )
            )

    async def reset_interrupted_uploads(self) -> int:
        """Files whose content was arriving when the process stopped wait for it again."""
        async with self._sessions.begin() as session:
            moved = await session.execute(
                update(UploadedFileRow)
                .where(UploadedFileRow.status == UPLOADING)
                .values(status=PENDING)
            )
            return _rowcount(moved)

    async def files_to_import(self) -> list[str]:
        """Files whose content arrived but whose import never finished, oldest first."""
        async with self._sessions() as session:
            return list(
                await session.scalars(
                    select(UploadedFileRow.id)
                    .where(UploadedFileRow.status.in_((UPLOADED, PROCESSING)))
                    .order_by(UploadedFileRow.uploaded_at, UploadedFileRow.id)
                )
            )

    # Error logs

    async def add_errors(self, *, entries: Sequence[ErrorLog]) -> None:
        """Append entries to the error log, counting serious ones in their batches."""
        if not entries:
            return
        serious: dict[str, int] = {}
        for entry in entries:
            if entry.batch_id and entry.severity in SERIOUS:
                serious[entry.batch_id] = serious.get(entry.batch_id, 0) + 1
        async with self._sessions.begin() as session:
            session.add_all([ErrorLogRow(**_fields(entry)) for entry in entries])
            for batch_id, count in serious.items():
                await session.execute(
                    update(BatchRow)
                    .where(BatchRow.id == batch_id)
                    .values(error_count=BatchRow.error_count + count)
                )

    async def forget_import_errors(self, *, file_id: str, keep_sources: Sequence[str]) -> None:
        """Drop a file's entries of an import about to start over; recount its batch."""
        async with self._sessions.begin() as session:
            await session.execute(
                delete(ErrorLogRow).where(
                    ErrorLogRow.file_id == file_id, ErrorLogRow.source.not_in(keep_sources)
                )
            )
            file = await session.get(UploadedFileRow, file_id)
            if file is None or file.batch_id is None:
                return
            serious = await session.scalar(
                select(func.count())
                .select_from(ErrorLogRow)
                .where(ErrorLogRow.batch_id == file.batch_id, ErrorLogRow.severity.in_(SERIOUS))
            )
            await session.execute(
                update(BatchRow)
                .where(BatchRow.id == file.batch_id)
                .values(error_count=int(serious or 0))
            )

    async def errors(self, *, query: ErrorQuery) -> tuple[list[ErrorLog], int]:
        """A page of error log entries, oldest first, and how many match in all."""
        conditions: list[Any] = [ErrorLogRow.owner_id == query.owner_id]
        if query.batch_id is not None:
            conditions.append(ErrorLogRow.batch_id == query.batch_id)
        if query.file_id is not None:
            conditions.append(ErrorLogRow.file_id == query.file_id)
        if query.severity:
            conditions.append(ErrorLogRow.severity == query.severity)
        async with self._sessions() as session:
            rows, total = await fetch_page(
                session,
                select(ErrorLogRow).where(*conditions).order_by(ErrorLogRow.seq),
                offset=query.offset,
                limit=query.limit,
            )
            return [_error(row) for row in rows], total
