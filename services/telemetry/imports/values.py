"""File import's domain values: batches, uploaded files, error log entries and their states.

The store converts its rows to these (and these to rows), so nothing above
the store holds an ORM row: the service, the importer and the servicer read
and build these. No gRPC and no SQL here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

# Batch statuses.
ACTIVE, COMPLETED, FAILED, CANCELLED, EXPIRED = (
    "ACTIVE",
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "EXPIRED",
)
BATCH_STATUSES = (ACTIVE, COMPLETED, FAILED, CANCELLED, EXPIRED)

# File statuses; FAILED and COMPLETED are shared with batches.
PENDING, UPLOADING, UPLOADED, PROCESSING = "PENDING", "UPLOADING", "UPLOADED", "PROCESSING"
FILE_DONE = (COMPLETED, FAILED)

SEVERITIES = ("INFO", "WARN", "ERROR", "FATAL")


@dataclass(frozen=True, slots=True)
class Batch:
    """An upload batch (seed 002 BatchResponseDto)."""

    id: str
    owner_id: str
    site_id: str | None
    device_id: str | None
    status: str
    files_count: int
    total_size: int
    # Entries of severity ERROR or FATAL in the batch's error log.
    error_count: int
    started_at: datetime
    # When an ACTIVE batch expires; None once it is closed (only an ACTIVE batch expires).
    expires_at: datetime | None
    completed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A file announced for upload, its stored content and how its import went."""

    id: str
    owner_id: str
    batch_id: str | None
    format: str
    filename: str
    object_key: str
    device_id: str | None
    # Who owns device_id, as devices answered when the upload was announced.
    device_owner_id: str | None
    metric_name: str | None
    expected_columns: list[str]
    expected_checksum: str | None
    checksum: str | None
    file_size: int
    status: str
    message: str
    created_at: datetime
    duplicate_of: str | None = None
    rows_total: int = 0
    rows_imported: int = 0
    rows_rejected: int = 0
    rows_duplicate: int = 0
    uploaded_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ErrorLog:
    """One entry of an error log: about a row of a file, a file, or a batch."""

    id: str
    owner_id: str
    batch_id: str | None
    file_id: str | None
    filename: str
    severity: str
    source: str
    message: str
    row: int | None
    column: str
    reason: str
    rows: int | None
    occurred_at: datetime


def error_entry(
    *,
    owner_id: str,
    batch_id: str | None,
    file_id: str | None,
    filename: str = "",
    severity: str,
    source: str,
    message: str,
    now: datetime,
    row: int | None = None,
    column: str = "",
    reason: str = "",
    rows: int | None = None,
) -> ErrorLog:
    """A new error log entry, its texts cut to what the log stores."""
    return ErrorLog(
        id=str(uuid.uuid4()),
        owner_id=owner_id,
        batch_id=batch_id,
        file_id=file_id,
        filename=filename[:255],
        severity=severity,
        source=source,
        message=message[:500],
        row=row,
        column=column[:64],
        reason=reason[:64],
        rows=rows,
        occurred_at=now,
    )
