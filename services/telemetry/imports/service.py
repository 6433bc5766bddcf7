"""File import logic: batches, announcing files, receiving their content, error logs.

No gRPC and no SQL here. Batches, files and error logs belong to the caller
who created them; anyone else's is "not found". Whether the caller may write
a device is the devices service's answer for the caller's own token, asked
when a batch or file names the device. Importing the rows is the background
importer's job (see ``processor``).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, Protocol, TypeVar

from iotkit import reasons
from iotkit.context import Caller
from iotkit.errors import FailedPrecondition, FieldViolation, NotFound, ValidationFailed
from iotkit.listing import PageRequest, check_page
from iotkit.ownership import owned
from iotkit.sqltypes import utcnow
from iotkit.validation import Violations, check_uuid
from services.telemetry.imports.access import DeviceWriteCheck
from services.telemetry.imports.parsing import FORMATS
from services.telemetry.imports.store import ErrorQuery, ImportStore
from services.telemetry.imports.values import (
    ACTIVE,
    BATCH_STATUSES,
    CANCELLED,
    COMPLETED,
    EXPIRED,
    FAILED,
    PENDING,
    SEVERITIES,
    UPLOADED,
    UPLOADING,
    Batch,
    ErrorLog,
    UploadedFile,
    error_entry,
)
from services.telemetry.objects import ObjectStore, safe_filename
from services.telemetry.telemetry.ingest import METRIC_NAME

T = TypeVar("T")

FILENAME_MAX = 255
COLUMNS_MAX, COLUMN_NAME_MAX = 50, 64
CONTENT_TYPES = {
    "csv": "text/csv",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
_MD5 = re.compile(r"[0-9a-fA-F]{32}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class ImportLimits:
    """Limits of file import; every one configurable at wiring."""

    # ACTIVE batches one owner may have at once (seed 002 maxConcurrentBatches).
    max_active_batches: int = 5
    # How long a batch may stay ACTIVE before the expiry job closes it.
    batch_max_age: timedelta = timedelta(hours=24)
    # Largest file accepted, in bytes.
    max_file_bytes: int = 100 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class NewUpload:
    """A file as announced (unchecked)."""

    format: str
    expected_columns: list[str] = field(default_factory=list)
    batch_id: str = ""
    device_id: str = ""
    metric_name: str = ""
    filename: str = ""
    checksum: str = ""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list and where it sits."""

    items: list[T]
    total: int
    request: PageRequest


class FileQueue(Protocol):
    """Where files whose content arrived go to be imported."""

    def submit(self, file_id: str, token: str) -> None:
        """Queue a file; ``token`` is the uploader's, for checking devices its rows name."""
        ...


def batch_prefix(batch_id: str) -> str:
    """The object-storage prefix of a batch's files (seed 002 s3Path)."""
    return f"batches/{batch_id}/"


def _check_choice(violations: Violations, value: str, choices: tuple[str, ...], name: str) -> str:
    normalised = value.strip().upper()
    if normalised and normalised not in choices:
        violations.add(name, f"{name} must be one of: {', '.join(choices)}")
    return normalised


def _claimed_limit(claim: object, *, fallback: int) -> int:
    """The batch limit a site token carries (its account's), or ``fallback`` without one."""
    if isinstance(claim, int) and not isinstance(claim, bool) and claim > 0:
        return claim
    return fallback


def _batch_not_found() -> NotFound:
    return NotFound("Batch not found", reason=reasons.BATCH_NOT_FOUND)


def _file_not_found() -> NotFound:
    return NotFound("Upload not found", reason=reasons.UPLOAD_NOT_FOUND)


def _not_active(batch: Batch, doing: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"The batch is {batch.status}; only an ACTIVE batch {doing}",
        reason=reasons.BATCH_NOT_ACTIVE,
        metadata={"status": batch.status},
    )


class ImportService:
    """Batches and uploads; see the module docstring."""

    def __init__(
        self,
        *,
        store: ImportStore,
        objects: ObjectStore,
        files: FileQueue,
        devices: DeviceWriteCheck,
        limits: ImportLimits = ImportLimits(),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._objects = objects
        self._files = files
        self._devices = devices
        self._limits = limits
        self._clock = clock

    @property
    def limits(self) -> ImportLimits:
        """The limits in force."""
        return self._limits

    # Batches

    async def create_batch(self, *, caller: Caller, device_id: str, site_id: str) -> Batch:
        """Start an ACTIVE batch, within the limit of active batches.

        A user has the configured limit. A site's batches count against its
        account, all its sites together, up to the account's own limit, which
        auth wrote in the site token (seed 002 maxConcurrentBatches).
        """
        violations = Violations()
        if device_id:
            device_id = check_uuid(violations, device_id, field="device_id")
        if site_id:
            site_id = check_uuid(violations, site_id, field="site_id")
        violations.raise_if_any()
        if device_id and await self._devices.owner(token=caller.token, device_id=device_id) is None:
            raise NotFound("Device not found", reason=reasons.DEVICE_NOT_FOUND)
        account_id, limit = None, self._limits.max_active_batches
        if site_id and caller.token_type != "site":
            # Only a site attaches a batch to a site (itself): telemetry cannot tell whose
            # a site id is, and a batch must not claim another account's site.
            raise NotFound("Site not found", reason=reasons.SITE_NOT_FOUND)
        if caller.token_type == "site":
            site_id = site_id or caller.subject
            if site_id != caller.subject:  # a site speaks for itself only
                raise NotFound("Site not found", reason=reasons.SITE_NOT_FOUND)
            account_id = str(caller.claims.get("account") or "") or None
            limit = _claimed_limit(caller.claims.get("max_batches"), fallback=limit)
        now = self._clock()
        batch = await self._store.add_batch(
            batch=Batch(
                id=str(uuid.uuid4()),
                owner_id=caller.subject,
                site_id=site_id or None,
                device_id=device_id or None,
                status=ACTIVE,
                files_count=0,
                total_size=0,
                error_count=0,
                started_at=now,
                expires_at=now + self._limits.batch_max_age,
            ),
            max_active=limit,
            account_id=account_id,
        )
        if batch is None:
            holder = "This account has" if account_id else "You already have"
            raise FailedPrecondition(
                f"{holder} {limit} active batches, the most allowed; complete or cancel one first",
                reason=reasons.TOO_MANY_ACTIVE_BATCHES,
                metadata={"max_active_batches": str(limit)},
            )
        return batch

    async def get_batch(self, *, caller: Caller, batch_id: str) -> Batch:
        """One of the caller's batches."""
        return await self._owned_batch(caller, batch_id)

    async def list_batches(
        self, *, caller: Caller, page: int, limit: int, status: str
    ) -> Page[Batch]:
        """A page of the caller's batches, newest first."""
        violations = Violations()
        request = check_page(violations, page, limit)
        status = _check_choice(violations, status, BATCH_STATUSES, "status")
        violations.raise_if_any()
        rows, total = await self._store.list_batches(
            owner_id=caller.subject,
            status=status or None,
            offset=request.offset,
            limit=request.limit,
        )
        return Page(rows, total, request)

    async def complete_batch(self, *, caller: Caller, batch_id: str) -> Batch:
        """Close an ACTIVE batch: COMPLETED, or FAILED when one of its files failed."""
        batch = await self._owned_batch(caller, batch_id)
        finished = await self._store.finish_batch(
            batch_id=batch.id,
            status=COMPLETED,
            now=self._clock(),
            pending_message="The batch was completed before this file's content arrived",
        )
        if finished is None:
            raise _not_active(await self._owned_batch(caller, batch_id), "can be completed")
        if await self._store.batch_has_failed_files(batch_id=batch.id):
            await self._store.fail_completed_batch(batch_id=batch.id)
        return await self._owned_batch(caller, batch_id)

    async def cancel_batch(self, *, caller: Caller, batch_id: str) -> Batch:
        """Cancel an ACTIVE batch; files not yet imported will not be."""
        batch = await self._owned_batch(caller, batch_id)
        finished = await self._store.finish_batch(
            batch_id=batch.id,
            status=CANCELLED,
            now=self._clock(),
            pending_message="The batch was cancelled before this file's content arrived",
        )
        if finished is None:
            raise _not_active(await self._owned_batch(caller, batch_id), "can be cancelled")
        return finished

    async def batch_files(self, *, caller: Caller, batch_id: str) -> list[UploadedFile]:
        """The files of one of the caller's batches."""
        batch = await self._owned_batch(caller, batch_id)
        return await self._store.files_of_batch(batch_id=batch.id)

    async def batch_errors(
        self,
        *,
        caller: Caller,
        batch_id: str,
        page: int,
        limit: int,
        severity: str,
        file_id: str,
    ) -> Page[ErrorLog]:
        """A page of a batch's error log, oldest entry first."""
        violations = Violations()
        request = check_page(violations, page, limit)
        severity = _check_choice(violations, severity, SEVERITIES, "severity")
        if file_id:
            file_id = check_uuid(violations, file_id, field="file_id")
        violations.raise_if_any()
        batch = await self._owned_batch(caller, batch_id)
        return await self._errors(
            ErrorQuery(
                owner_id=caller.subject,
                batch_id=batch.id,
                file_id=file_id or None,
                severity=severity or None,
                offset=request.offset,
                limit=request.limit,
            ),
            request,
        )

    async def file_errors(
        self, *, caller: Caller, file_id: str, page: int, limit: int, severity: str
    ) -> Page[ErrorLog]:
        """A page of one of the caller's files' error log entries, oldest first."""
        violations = Violations()
        request = check_page(violations, page, limit)
        severity = _check_choice(violations, severity, SEVERITIES, "severity")
        violations.raise_if_any()
        file = await self._owned_file(caller, file_id)
        return await self._errors(
            ErrorQuery(
                owner_id=caller.subject,
                batch_id=None,
                file_id=file.id,
                severity=severity or None,
                offset=request.offset,
                limit=request.limit,
            ),
            request,
        )

    async def expire_batches(self, *, now: datetime | None = None) -> int:
        """Close every batch left ACTIVE past its time as EXPIRED; answers how many."""
        moment = now or self._clock()
        expired = 0
        for batch_id in await self._store.expired_batches(now=moment):
            batch = await self._store.finish_batch(
                batch_id=batch_id,
                status=EXPIRED,
                now=moment,
                pending_message="The batch expired before this file's content arrived",
            )
            if batch is None:
                continue  # completed or cancelled meanwhile
            expired += 1
            hours = self._limits.batch_max_age.total_seconds() / 3600
            await self._store.add_errors(
                entries=[
                    error_entry(
                        owner_id=batch.owner_id,
                        batch_id=batch.id,
                        file_id=None,
                        severity="WARN",
                        source="expiry",
                        message=f"The batch expired: it stayed ACTIVE longer than {hours:g} hours",
                        now=moment,
                    )
                ]
            )
        return expired

    # Uploads

    async def create_upload(self, *, caller: Caller, upload: NewUpload) -> UploadedFile:
        """Announce a file; it waits (PENDING) for its content."""
        violations = Violations()
        filename = _CONTROL.sub("", upload.filename).strip()
        kind = upload.format.strip().lower()
        if not kind and "." in filename:
            kind = filename.rsplit(".", 1)[1].lower()
        if kind not in FORMATS:
            violations.add("format", f"format must be one of: {', '.join(FORMATS)}")
        if len(filename) > FILENAME_MAX:
            violations.add("filename", f"filename must be at most {FILENAME_MAX} characters")
        columns = [c.strip() for c in upload.expected_columns]
        if len(columns) > COLUMNS_MAX:
            violations.add("expected_columns", f"expected_columns holds at most {COLUMNS_MAX}")
        elif any(not 1 <= len(c) <= COLUMN_NAME_MAX for c in columns):
            violations.add(
                "expected_columns", f"each expected column is 1 to {COLUMN_NAME_MAX} characters"
            )
        batch_id = (
            check_uuid(violations, upload.batch_id, field="batch_id") if upload.batch_id else ""
        )
        device_id = (
            check_uuid(violations, upload.device_id, field="device_id") if upload.device_id else ""
        )
        if upload.metric_name and not METRIC_NAME.match(upload.metric_name):
            violations.add(
                "metric_name", "metric_name must be 1 to 64 letters, digits, '_', '.' or '-'"
            )
        if upload.checksum and not _MD5.fullmatch(upload.checksum):
            violations.add("checksum", "checksum must be an MD5 digest: 32 hexadecimal digits")
        violations.raise_if_any()

        batch = None
        if batch_id:
            batch = await self._owned_batch(caller, batch_id)
            if batch.status != ACTIVE:
                raise _not_active(batch, "accepts files")
        device_id = device_id or (batch.device_id if batch else None) or ""
        device_owner = None
        if device_id:
            device_owner = await self._devices.owner(token=caller.token, device_id=device_id)
            if device_owner is None:
                raise NotFound("Device not found", reason=reasons.DEVICE_NOT_FOUND)
        file_id = str(uuid.uuid4())
        filename = filename or f"upload.{kind}"
        prefix = batch_prefix(batch.id) if batch else "uploads/"
        key = f"{prefix}{file_id}/{safe_filename(filename, fallback=f'upload.{kind}')}"
        return await self._store.add_file(
            file=UploadedFile(
                id=file_id,
                owner_id=caller.subject,
                batch_id=batch.id if batch else None,
                format=kind,
                filename=filename,
                object_key=key,
                device_id=device_id or None,
                device_owner_id=device_owner,
                metric_name=upload.metric_name or None,
                expected_columns=columns,
                expected_checksum=upload.checksum.lower() or None,
                checksum=None,
                file_size=0,
                status=PENDING,
                message="Waiting for the content",
                rows_total=0,
                rows_imported=0,
                rows_rejected=0,
                rows_duplicate=0,
                created_at=self._clock(),
            )
        )

    async def get_upload(self, *, caller: Caller, file_id: str) -> UploadedFile:
        """One of the caller's files with its status and progress."""
        return await self._owned_file(caller, file_id)

    async def receive_content(
        self, *, caller: Caller, file_id: str, chunks: AsyncIterator[bytes]
    ) -> UploadedFile:
        """Store a PENDING file's content while it streams in, check it, and queue its import.

        The bytes go straight to object storage (never all in memory) while
        their size and MD5 are computed. A checksum other than the one
        announced fails the file: nothing of it is imported.
        """
        file = await self._owned_file(caller, file_id)
        batch = await self._store.batch(batch_id=file.batch_id) if file.batch_id else None
        if batch is not None and batch.status != ACTIVE:
            raise _not_active(batch, "accepts files")
        if not await self._store.move_file(
            file_id=file.id, from_statuses=(PENDING,), status=UPLOADING
        ):
            raise FailedPrecondition(
                "This file's content has already been uploaded (or is being uploaded); "
                "announce a new upload to send it again",
                reason=reasons.CONTENT_ALREADY_UPLOADED,
                metadata={"status": file.status},
            )
        digest = hashlib.md5(usedforsecurity=False)
        limit = self._limits.max_file_bytes

        async def measured() -> AsyncIterator[bytes]:
            size = 0
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise ValidationFailed(
                        [FieldViolation("data", f"The file exceeds {limit // (1024 * 1024)} MiB")],
                        "File too large",
                    )
                digest.update(chunk)
                yield chunk

        try:
            size = await self._objects.put(file.object_key, measured())
            checksum = digest.hexdigest()
            mismatch = bool(file.expected_checksum) and checksum != file.expected_checksum
            message = (
                f"Checksum mismatch: the content's MD5 is {checksum}, "
                f"the upload announced {file.expected_checksum}; nothing was imported"
                if mismatch
                else "Queued for import"
            )
            recorded = await self._store.record_content(
                file_id=file.id,
                size=size,
                checksum=checksum,
                status=FAILED if mismatch else UPLOADED,
                message=message,
                now=self._clock(),
            )
        except BaseException:
            # The client gave up, the file was too large, or we are stopping: it may be sent
            # again (a no-op when the content was recorded after all).
            await self._store.move_file(file_id=file.id, from_statuses=(UPLOADING,), status=PENDING)
            raise
        if recorded is None:
            # The batch was closed while the bytes were arriving; they will never be imported.
            await self._objects.delete(file.object_key)
            raise FailedPrecondition(
                "The batch was closed while the file was uploading", reason=reasons.BATCH_NOT_ACTIVE
            )
        if mismatch:
            await self._log_file(recorded, "ERROR", "checksum", message)
            await self._fail_batch_if_completed(recorded)
            raise ValidationFailed([FieldViolation("checksum", message)], "Checksum mismatch")
        if recorded.batch_id:
            await self._note_same_content(recorded)
        self._files.submit(recorded.id, caller.token)
        return await self._owned_file(caller, recorded.id)

    # Helpers

    async def _note_same_content(self, file: UploadedFile) -> None:
        assert file.batch_id is not None and file.checksum is not None
        same = await self._store.same_content(
            batch_id=file.batch_id, checksum=file.checksum, other_than=file.id
        )
        if same is None:
            return
        await self._store.set_duplicate_of(file_id=file.id, duplicate_of=same.id)
        await self._log_file(
            file,
            "WARN",
            "checksum",
            f"Same content (MD5 {file.checksum}) as {same.filename!r} ({same.id}) already in "
            "this batch; readings already stored are not stored twice",
        )

    async def _log_file(self, file: UploadedFile, severity: str, source: str, message: str) -> None:
        await self._store.add_errors(
            entries=[
                error_entry(
                    owner_id=file.owner_id,
                    batch_id=file.batch_id,
                    file_id=file.id,
                    filename=file.filename,
                    severity=severity,
                    source=source,
                    message=message,
                    now=self._clock(),
                )
            ]
        )

    async def _fail_batch_if_completed(self, file: UploadedFile) -> None:
        if file.batch_id:
            await self._store.fail_completed_batch(batch_id=file.batch_id)

    async def _errors(self, query: ErrorQuery, request: PageRequest) -> Page[ErrorLog]:
        rows, total = await self._store.errors(query=query)
        return Page(rows, total, request)

    async def _owned_batch(self, caller: Caller, batch_id: str) -> Batch:
        violations = Violations()
        batch_id = check_uuid(violations, batch_id, field="batch_id")
        violations.raise_if_any()
        # Imports are their uploader's alone: an admin gets no view of other users' batches.
        return owned(
            await self._store.batch(batch_id=batch_id),
            caller,
            message="Batch not found",
            reason=reasons.BATCH_NOT_FOUND,
            admin_sees_all=False,
        )

    async def _owned_file(self, caller: Caller, file_id: str) -> UploadedFile:
        violations = Violations()
        file_id = check_uuid(violations, file_id, field="file_id")
        violations.raise_if_any()
        return owned(
            await self._store.file(file_id=file_id),
            caller,
            message="Upload not found",
            reason=reasons.UPLOAD_NOT_FOUND,
            admin_sees_all=False,
        )


def upload_url(file_id: str) -> str:
    """Where the gateway takes a file's content."""
    return f"/v1/uploads/{file_id}/content"


def upload_fields(kind: str) -> dict[str, str]:
    """How to send a file's content (seed 000 FileUploadResponseDTO ``fields``)."""
    return {"method": "PUT", "content-type": CONTENT_TYPES.get(kind, "application/octet-stream")}
