"""gRPC <-> domain translation for ``iot.auth.v1.DataService``."""

from __future__ import annotations

from google.api import httpbody_pb2

from iot.auth.v1 import data_pb2, data_pb2_grpc
from iotkit.context import current_caller
from iotkit.convert import timestamp
from services.auth.core.servicer import Context
from services.auth.data.service import DataExportService


class DataServicer(data_pb2_grpc.DataServiceServicer):
    """Each RPC reads its message, calls the export logic and builds the answer."""

    def __init__(self, exports: DataExportService) -> None:
        self._exports = exports

    async def RequestDataDownload(
        self, request: data_pb2.RequestDataDownloadRequest, context: Context
    ) -> data_pb2.DataDownload:
        """Prepare the caller's data as JSON, CSV or XML."""
        prepared = await self._exports.download(caller=current_caller(), format=request.format)
        return data_pb2.DataDownload(
            download_url=prepared.download_url,
            expires_at=timestamp(prepared.expires_at),
            file_size=prepared.file_size,
            format=prepared.format,
        )

    async def RequestOfflineData(
        self, request: data_pb2.RequestOfflineDataRequest, context: Context
    ) -> data_pb2.OfflineData:
        """Prepare the caller's data for offline use."""
        prepared, summary = await self._exports.offline(
            caller=current_caller(), format=request.format
        )
        return data_pb2.OfflineData(
            download_url=prepared.download_url,
            expires_at=timestamp(prepared.expires_at),
            data_summary=data_pb2.OfflineDataSummary(
                profile_data=summary.profile_data,
                security_logs=summary.security_logs,
                user_preferences=summary.user_preferences,
            ),
            file_size=prepared.file_size,
            format=prepared.format,
        )

    async def DownloadExport(
        self, request: data_pb2.DownloadExportRequest, context: Context
    ) -> httpbody_pb2.HttpBody:
        """The file behind a signed link, as raw bytes with its content type."""
        export = await self._exports.fetch(
            export_id=request.export_id,
            file_name=request.file_name,
            expires=request.expires,
            signature=request.signature,
        )
        return httpbody_pb2.HttpBody(content_type=export.content_type, data=export.content)
