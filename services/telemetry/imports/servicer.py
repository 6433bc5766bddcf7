"""gRPC <-> domain translation for ``iot.telemetry.v1.ImportService``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeAlias

from grpc import aio

from iot.telemetry.v1 import imports_pb2, imports_pb2_grpc
from iotkit.context import current_caller
from iotkit.convert import timestamp
from iotkit.errors import FieldViolation, ValidationFailed
from iotkit.listing import pagination
from services.telemetry.imports.service import (
    ImportService,
    NewUpload,
    Page,
    batch_prefix,
    upload_fields,
    upload_url,
)
from services.telemetry.imports.values import Batch, ErrorLog, UploadedFile

Context: TypeAlias = aio.ServicerContext[Any, Any]


def batch_message(batch: Batch) -> imports_pb2.Batch:
    """A batch as the API shows it (seed 002 BatchResponseDto)."""
    return imports_pb2.Batch(
        id=batch.id,
        batch_id=batch.id,
        site_id=batch.site_id or "",
        status=batch.status,
        s3_path=batch_prefix(batch.id),
        uploaded_files_count=batch.files_count,
        total_size=batch.total_size,
        has_errors=batch.error_count > 0,
        started_at=timestamp(batch.started_at),
        completed_at=timestamp(batch.completed_at),
        device_id=batch.device_id or "",
        error_count=batch.error_count,
        expires_at=timestamp(batch.expires_at),
    )


def file_message(file: UploadedFile) -> imports_pb2.FileUpload:
    """An uploaded file as the API shows it (seed 002 FileUploadResponseDto)."""
    return imports_pb2.FileUpload(
        id=file.id,
        file_id=file.id,
        batch_id=file.batch_id or "",
        filename=file.filename,
        s3_key=file.object_key,
        file_size=file.file_size,
        checksum=file.checksum or "",
        uploaded_at=timestamp(file.uploaded_at),
        status=file.status,
        format=file.format,
        device_id=file.device_id or "",
        metric_name=file.metric_name or "",
        expected_columns=list(file.expected_columns or []),
        expected_checksum=file.expected_checksum or "",
        progress=imports_pb2.ImportProgress(
            rows_total=file.rows_total,
            rows_imported=file.rows_imported,
            rows_rejected=file.rows_rejected,
            rows_duplicate=file.rows_duplicate,
        ),
        message=file.message,
        duplicate_of=file.duplicate_of or "",
        created_at=timestamp(file.created_at),
        finished_at=timestamp(file.finished_at),
    )


def error_message(entry: ErrorLog) -> imports_pb2.ErrorLog:
    """An error log entry as the API shows it (seed 002 ErrorLogResponseDto)."""
    return imports_pb2.ErrorLog(
        id=entry.id,
        batch_id=entry.batch_id or "",
        severity=entry.severity,
        message=entry.message,
        source=entry.source,
        metadata=imports_pb2.ErrorMetadata(
            row=entry.row,
            column=entry.column,
            file_id=entry.file_id or "",
            filename=entry.filename,
            reason=entry.reason,
            rows=entry.rows,
        ),
        occurred_at=timestamp(entry.occurred_at),
        file_id=entry.file_id or "",
    )


def error_page(page: Page[ErrorLog]) -> imports_pb2.ErrorLogPage:
    """A page of the error log, paginated as every list of the suite."""
    return imports_pb2.ErrorLogPage(
        content=[error_message(entry) for entry in page.items],
        pagination=pagination(page.request, page.total),
    )


class ImportServicer(imports_pb2_grpc.ImportServiceServicer):
    """Each RPC reads its message, calls the service and builds the answer."""

    def __init__(self, service: ImportService) -> None:
        self._service = service

    async def CreateBatch(
        self, request: imports_pb2.CreateBatchRequest, context: Context
    ) -> imports_pb2.Batch:
        """Start a batch."""
        batch = await self._service.create_batch(
            caller=current_caller(), device_id=request.device_id, site_id=request.site_id
        )
        return batch_message(batch)

    async def ListBatches(
        self, request: imports_pb2.ListBatchesRequest, context: Context
    ) -> imports_pb2.ListBatchesResponse:
        """A page of batches."""
        page = await self._service.list_batches(
            caller=current_caller(), page=request.page, limit=request.limit, status=request.status
        )
        return imports_pb2.ListBatchesResponse(
            batches=[batch_message(b) for b in page.items],
            pagination=pagination(page.request, page.total),
        )

    async def GetBatch(
        self, request: imports_pb2.GetBatchRequest, context: Context
    ) -> imports_pb2.Batch:
        """One batch."""
        return batch_message(
            await self._service.get_batch(caller=current_caller(), batch_id=request.batch_id)
        )

    async def CompleteBatch(
        self, request: imports_pb2.CompleteBatchRequest, context: Context
    ) -> imports_pb2.Batch:
        """Complete a batch."""
        return batch_message(
            await self._service.complete_batch(caller=current_caller(), batch_id=request.batch_id)
        )

    async def CancelBatch(
        self, request: imports_pb2.CancelBatchRequest, context: Context
    ) -> imports_pb2.Batch:
        """Cancel a batch."""
        return batch_message(
            await self._service.cancel_batch(caller=current_caller(), batch_id=request.batch_id)
        )

    async def ListBatchFiles(
        self, request: imports_pb2.ListBatchFilesRequest, context: Context
    ) -> imports_pb2.ListBatchFilesResponse:
        """The files of a batch."""
        files = await self._service.batch_files(caller=current_caller(), batch_id=request.batch_id)
        return imports_pb2.ListBatchFilesResponse(files=[file_message(f) for f in files])

    async def ListBatchErrors(
        self, request: imports_pb2.ListBatchErrorsRequest, context: Context
    ) -> imports_pb2.ErrorLogPage:
        """A page of a batch's error log."""
        page = await self._service.batch_errors(
            caller=current_caller(),
            batch_id=request.batch_id,
            page=request.page,
            limit=request.limit,
            severity=request.severity,
            file_id=request.file_id,
        )
        return error_page(page)

    async def CreateUpload(
        self, request: imports_pb2.CreateUploadRequest, context: Context
    ) -> imports_pb2.CreateUploadResponse:
        """Announce a file."""
        file = await self._service.create_upload(
            caller=current_caller(),
            upload=NewUpload(
                format=request.format,
                expected_columns=list(request.expected_columns),
                batch_id=request.batch_id,
                device_id=request.device_id,
                metric_name=request.metric_name,
                filename=request.filename,
                checksum=request.checksum,
            ),
        )
        return imports_pb2.CreateUploadResponse(
            file_id=file.id,
            status=file.status,
            upload_url=upload_url(file.id),
            fields=upload_fields(file.format),
            batch_id=file.batch_id or "",
        )

    async def UploadContent(
        self, request_iterator: AsyncIterator[imports_pb2.UploadContentChunk], context: Context
    ) -> imports_pb2.FileUpload:
        """Receive a file's content; the first chunk names the file, the last says it is whole."""
        caller = current_caller()
        chunks = aiter(request_iterator)
        first = await anext(chunks, None)
        if first is None or not first.file_id:
            raise ValidationFailed([FieldViolation("file_id", "file_id is required")])
        file_id = first.file_id

        async def data() -> AsyncIterator[bytes]:
            finished = first.finish_write
            if first.data:
                yield first.data
            async for chunk in chunks:
                if finished:
                    raise ValidationFailed(
                        [FieldViolation("finish_write", "no chunk may follow the last one")]
                    )
                if chunk.file_id and chunk.file_id != file_id:
                    raise ValidationFailed(
                        [FieldViolation("file_id", "every chunk must name the same file")]
                    )
                finished = chunk.finish_write
                if chunk.data:
                    yield chunk.data
            # A client that cancels mid-stream (the gateway, on a body over its limit or a
            # client gone) ends the request stream just as one that finished, and on a busy
            # machine the cancellation lands any time later: only the marker tells them apart.
            if not finished:
                raise ValidationFailed(
                    [
                        FieldViolation(
                            "finish_write",
                            "the stream ended before a chunk with finish_write: the upload "
                            "was cut off and nothing was stored",
                        )
                    ],
                    "Upload cut off",
                )

        file = await self._service.receive_content(caller=caller, file_id=file_id, chunks=data())
        return file_message(file)

    async def GetUpload(
        self, request: imports_pb2.GetUploadRequest, context: Context
    ) -> imports_pb2.FileUpload:
        """One uploaded file."""
        return file_message(
            await self._service.get_upload(caller=current_caller(), file_id=request.file_id)
        )

    async def ListUploadErrors(
        self, request: imports_pb2.ListUploadErrorsRequest, context: Context
    ) -> imports_pb2.ErrorLogPage:
        """A page of a file's error log entries."""
        page = await self._service.file_errors(
            caller=current_caller(),
            file_id=request.file_id,
            page=request.page,
            limit=request.limit,
            severity=request.severity,
        )
        return error_page(page)
