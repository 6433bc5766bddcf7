"""The background importer: stored files become readings, bad rows become error log entries.

Files are imported one at a time, in the order their content arrived. A
file is read in a worker thread a chunk of rows at a time (10,000 by
default), each chunk goes through the same ingest path as streaming (so the
same checks and the same de-duplication apply: importing a file twice stores
nothing twice; ingest reports the devices' activity), and progress is saved
after each chunk. A file left
unfinished when the process stopped is imported again at the next start.

An outage (the database, or the devices service, away for a moment) neither
fails a file nor strands it: the import is tried again, from its start (what
was stored is recognised as already stored), with backoff until it goes
through, and the unfinished files a process finds as it starts are looked
for again until the database answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO

import numpy as np

from iotkit.convert import epoch_micros
from iotkit.errors import DomainError, Unavailable
from iotkit.outages import is_passing
from iotkit.sqltypes import utcnow
from iotkit.tasks import cancel
from services.telemetry.imports.access import DeviceWriteCheck
from services.telemetry.imports.parsing import (
    Defaults,
    FileProblem,
    Item,
    Reading,
    RowProblem,
    read_file,
)
from services.telemetry.imports.store import ImportStore, Progress
from services.telemetry.imports.values import (
    CANCELLED,
    COMPLETED,
    FAILED,
    PROCESSING,
    UPLOADED,
    ErrorLog,
    UploadedFile,
    error_entry,
)
from services.telemetry.objects import ObjectStore
from services.telemetry.telemetry.ingest import (
    FUTURE_TOLERANCE_US,
    OLDEST_US,
    EntryIn,
    IngestService,
)

log = logging.getLogger(__name__)

CHUNK_ROWS = 10_000
MAX_LOGGED_ROWS = 1000
RETRY_FIRST = 1.0
"""Seconds before a file (or the search for unfinished files) that met an outage is tried
again; doubled after each failure, up to :data:`RETRY_MAX`."""
RETRY_MAX = 30.0
# Entries written while receiving a file; an import that starts over keeps them.
RECEIVING_SOURCES = ("checksum",)


@dataclass
class _Run:
    """One file's import in progress."""

    file: UploadedFile
    token: str
    owners: dict[str, str | None] = field(default_factory=dict)
    rows_total: int = 0
    rows_imported: int = 0
    rows_rejected: int = 0
    rows_duplicate: int = 0
    logged: int = 0
    unlogged: int = 0

    def progress(self) -> Progress:
        """The counts so far."""
        return Progress(
            self.rows_total, self.rows_imported, self.rows_rejected, self.rows_duplicate
        )


def _take(rows: Iterator[Item], count: int) -> tuple[list[Item], FileProblem | None]:
    # The rows read before a problem with the file are still imported.
    taken: list[Item] = []
    try:
        taken.extend(itertools.islice(rows, count))
    except FileProblem as problem:
        return taken, problem
    return taken, None


def _passing(exc: BaseException) -> bool:
    """An outage the import should wait out rather than fail the file for."""
    return isinstance(exc, Unavailable) or is_passing(exc)


def _close(rows: Iterator[Item] | None, stream: BinaryIO | None) -> None:
    # The reader may still be running in a thread if we were cancelled; then it cannot close.
    if rows is not None:
        with contextlib.suppress(Exception):
            rows.close()  # type: ignore[attr-defined]
    if stream is not None:
        with contextlib.suppress(Exception):
            stream.close()


class FileImporter:
    """Imports queued files in the background; see the module docstring."""

    def __init__(
        self,
        *,
        store: ImportStore,
        objects: ObjectStore,
        ingest: IngestService,
        devices: DeviceWriteCheck,
        clock: Callable[[], datetime] = utcnow,
        chunk_rows: int = CHUNK_ROWS,
        max_logged_rows: int = MAX_LOGGED_ROWS,
    ) -> None:
        self._store = store
        self._objects = objects
        self._ingest = ingest
        self._devices = devices
        self._clock = clock
        self._chunk_rows = chunk_rows
        self._max_logged_rows = max_logged_rows
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._queued: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start importing (inside the serving event loop): unfinished files first."""
        self._task = asyncio.create_task(self._run(), name="telemetry-file-import")

    async def stop(self) -> None:
        """Stop; a file being imported is left PROCESSING and imported again at the next start."""
        if self._task is None:
            return
        await cancel(self._task)
        self._task = None

    def submit(self, file_id: str, token: str) -> None:
        """Queue a file whose content arrived; ``token`` checks devices its rows name."""
        if file_id not in self._queued:
            self._queued.add(file_id)
            self._queue.put_nowait((file_id, token))

    async def _run(self) -> None:
        await self._until_through(self._resume, "could not resume unfinished imports")
        while True:
            file_id, token = await self._queue.get()
            try:
                await self._until_through(
                    functools.partial(self.import_file, file_id=file_id, token=token),
                    "file import failed",
                    file_id=file_id,
                )
            finally:
                self._queued.discard(file_id)

    async def _resume(self) -> None:
        await self._store.reset_interrupted_uploads()
        for file_id in await self._store.files_to_import():
            # The uploader's token is gone: rows naming another device than the file's fail.
            self.submit(file_id, "")

    @staticmethod
    async def _until_through(
        work: Callable[[], Awaitable[None]], message: str, **extra: str
    ) -> None:
        """Run ``work``, again after a pause for as long as it meets an outage; log what else
        it raises (a bug: the traceback) and give up on it."""
        pause = RETRY_FIRST
        while True:
            try:
                await work()
                return
            except Exception as exc:
                if not _passing(exc):
                    log.exception(message, extra=extra)
                    return
                log.warning(
                    f"{message}: a dependency is unavailable; retrying",
                    extra={**extra, "error": type(exc).__name__, "retry_in": pause},
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_MAX)

    async def import_file(self, *, file_id: str, token: str) -> None:
        """Import one file whose content is stored; its status tells how it went."""
        file = await self._store.file(file_id=file_id)
        if file is None or file.status not in (UPLOADED, PROCESSING):
            return
        if file.batch_id:
            batch = await self._store.batch(batch_id=file.batch_id)
            if batch is not None and batch.status == CANCELLED:
                await self._finish(
                    file, FAILED, "The batch was cancelled before this file was imported"
                )
                return
        if file.status == PROCESSING:
            await self._store.forget_import_errors(file_id=file.id, keep_sources=RECEIVING_SOURCES)
        await self._store.move_file(
            file_id=file.id,
            from_statuses=(UPLOADED, PROCESSING),
            status=PROCESSING,
            values={"message": "Importing", **_zero_progress()},
        )
        run = _Run(file=file, token=token)
        try:
            await self._read_and_store(run)
        except FileProblem as problem:
            await self._file_problem(run, problem)
        except Exception as exc:
            if _passing(exc):
                raise  # left PROCESSING, and tried again (see _run)
            if isinstance(exc, DomainError):
                await self._fatal(run, exc.message)
                return
            log.exception("unexpected failure importing a file", extra={"file_id": file.id})
            await self._fatal(run, "The file could not be imported because of an internal error")
        else:
            await self._complete(run)

    async def _read_and_store(self, run: _Run) -> None:
        file = run.file
        rows: Iterator[Item] | None = None
        stream: BinaryIO | None = None
        try:
            stream = await asyncio.to_thread(self._objects.open, file.object_key)
            rows = read_file(
                file.format,
                stream,
                expected_columns=list(file.expected_columns or []),
                defaults=Defaults(file.metric_name or "", file.device_id or ""),
            )
            while True:
                chunk, problem = await asyncio.to_thread(_take, rows, self._chunk_rows)
                if chunk:
                    await self._store_chunk(run, chunk)
                    await self._store.save_progress(file_id=file.id, progress=run.progress())
                if problem is not None:
                    raise problem
                if len(chunk) < self._chunk_rows:
                    return
        finally:
            await asyncio.to_thread(_close, rows, stream)

    async def _store_chunk(self, run: _Run, chunk: list[Item]) -> None:
        problems: list[RowProblem] = []
        # (owner, device, metric) -> the readings of that stream in this chunk
        groups: dict[tuple[str, str, str], list[Reading]] = {}
        now_us = epoch_micros(self._clock())
        for item in chunk:
            run.rows_total += 1
            if isinstance(item, RowProblem):
                problems.append(item)
            elif item.timestamp_us > now_us + FUTURE_TOLERANCE_US:
                problems.append(
                    RowProblem(item.row, "timestamp", "timestamp is more than 5 minutes ahead")
                )
            elif item.timestamp_us < OLDEST_US:
                problems.append(RowProblem(item.row, "timestamp", "timestamp is before 2000-01-01"))
            else:
                owner = await self._owner(run, item.device_id)
                if owner is None:
                    problems.append(RowProblem(item.row, "device_id", _device_refused(run)))
                else:
                    groups.setdefault((owner, item.device_id, item.metric_name), []).append(item)
        entries: list[ErrorLog] = [
            self._entry(run, "ERROR", "validation", f"Row {p.row}: {p.message}", p.row, p.column)
            for p in problems
        ]
        run.rows_rejected += len(problems)
        by_owner: dict[str, list[EntryIn]] = {}
        for (owner, device_id, metric_name), readings in groups.items():
            by_owner.setdefault(owner, []).append(
                EntryIn(
                    stream_id="",
                    device_id=device_id,
                    metric_name=metric_name,
                    timestamps=np.fromiter(
                        (r.timestamp_us for r in readings), dtype=np.int64, count=len(readings)
                    ),
                    values=np.fromiter(
                        (r.value for r in readings), dtype=np.float64, count=len(readings)
                    ),
                )
            )
        for owner, stream_entries in by_owner.items():
            result = await self._ingest.ingest(
                caller=None, token="", entries=stream_entries, trusted_owner=owner
            )
            # rows_imported counts rows already stored too (its proto comment); accepted does not.
            run.rows_imported += result.accepted + result.duplicates
            run.rows_duplicate += result.duplicates
            run.rows_rejected += result.rejected
            for rejection in result.rejections:
                entry = stream_entries[rejection.index]
                entries.append(
                    self._entry(
                        run,
                        "ERROR",
                        "ingest",
                        f"{_readings(rejection.count)} of {entry.metric_name} "
                        f"{'was' if rejection.count == 1 else 'were'} refused: "
                        f"{rejection.message}",
                        reason=rejection.reason,
                        rows=rejection.count,
                    )
                )
        await self._log_rows(run, entries)

    async def _owner(self, run: _Run, device_id: str) -> str | None:
        if device_id == run.file.device_id and run.file.device_owner_id:
            return run.file.device_owner_id  # checked when the upload was announced
        if device_id not in run.owners:
            run.owners[device_id] = await self._devices.owner(token=run.token, device_id=device_id)
        return run.owners[device_id]

    async def _file_problem(self, run: _Run, problem: FileProblem) -> None:
        source = "validation" if problem.column else "parse"
        message = problem.message
        entry = self._entry(run, "ERROR", source, message, problem.row, problem.column)
        await self._store.add_errors(entries=[*self._summary(run), entry])
        if run.rows_imported:
            message += f" ({run.rows_imported} rows before it were imported)"
        await self._finish(run.file, FAILED, message, run)

    async def _fatal(self, run: _Run, message: str) -> None:
        entry = self._entry(run, "FATAL", "processing", message)
        await self._store.add_errors(entries=[*self._summary(run), entry])
        await self._finish(run.file, FAILED, message, run)

    def _summary(self, run: _Run) -> list[ErrorLog]:
        if not run.unlogged:
            return []
        message = (
            f"{run.unlogged} more rows were rejected; "
            f"only the first {self._max_logged_rows} are listed"
        )
        return [self._entry(run, "WARN", "validation", message, rows=run.unlogged)]

    async def _complete(self, run: _Run) -> None:
        await self._store.add_errors(entries=self._summary(run))
        if run.rows_total and not run.rows_imported:
            await self._finish(run.file, FAILED, "No row could be imported; see the error log", run)
            return
        parts = [f"Imported {run.rows_imported} of {run.rows_total} rows"]
        if run.rows_duplicate:
            verb = "was" if run.rows_duplicate == 1 else "were"
            parts.append(f"{run.rows_duplicate} {verb} already stored")
        if run.rows_rejected:
            parts.append(f"{run.rows_rejected} rejected (see the error log)")
        message = "; ".join(parts)
        if run.file.duplicate_of:
            message = f"Same content as another file of this batch. {message}"
        await self._finish(run.file, COMPLETED, message, run)

    async def _finish(
        self, file: UploadedFile, status: str, message: str, run: _Run | None = None
    ) -> None:
        progress = run.progress() if run else Progress()
        await self._store.move_file(
            file_id=file.id,
            from_statuses=(UPLOADED, PROCESSING),
            status=status,
            values={
                "message": message[:500],
                "finished_at": self._clock(),
                "rows_total": progress.rows_total,
                "rows_imported": progress.rows_imported,
                "rows_rejected": progress.rows_rejected,
                "rows_duplicate": progress.rows_duplicate,
            },
        )
        if status == FAILED and file.batch_id:
            await self._store.fail_completed_batch(batch_id=file.batch_id)

    def _entry(
        self,
        run: _Run,
        severity: str,
        source: str,
        message: str,
        row: int | None = None,
        column: str = "",
        *,
        reason: str = "",
        rows: int | None = None,
    ) -> ErrorLog:
        return error_entry(
            owner_id=run.file.owner_id,
            batch_id=run.file.batch_id,
            file_id=run.file.id,
            filename=run.file.filename,
            severity=severity,
            source=source,
            message=message,
            now=self._clock(),
            row=row,
            column=column,
            reason=reason,
            rows=rows,
        )

    async def _log_rows(self, run: _Run, entries: list[ErrorLog]) -> None:
        # A file of a million bad rows must not make a million entries: the first ones tell.
        room = max(self._max_logged_rows - run.logged, 0)
        kept = entries[:room]
        run.logged += len(kept)
        run.unlogged += len(entries) - len(kept)
        await self._store.add_errors(entries=kept)


def _device_refused(run: _Run) -> str:
    if run.token:
        return "no such device, or you may not write its data"
    # An import resumed after a restart no longer has the uploader's token to ask with.
    return "this device could not be checked after telemetry restarted; upload the file again"


def _zero_progress() -> dict[str, int]:
    return {"rows_total": 0, "rows_imported": 0, "rows_rejected": 0, "rows_duplicate": 0}


def _readings(count: int) -> str:
    """ "1 reading", "2 readings"."""
    return f"{count} reading{'' if count == 1 else 's'}"
