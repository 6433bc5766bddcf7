"""Reading stream ranges from telemetry, with the caller's own token.

Analytics owns no raw readings: it asks telemetry, which checks that the
caller may read the stream (another user's stream is NOT_FOUND there).
"""

from __future__ import annotations

import grpc
import numpy as np
from grpc import aio

from iot.telemetry.v1 import telemetry_pb2, telemetry_pb2_grpc
from iotkit.context import bearer_metadata
from iotkit.convert import micros_timestamp
from iotkit.errors import Unavailable
from services.analytics.analytics.correlation import Float64s, Int64s

CALL_DEADLINE = 60.0
# Telemetry away, slow or overloaded: worth a retry, and not the caller's stream's fault.
_PASSING = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
)


class TelemetryReader:
    """Reads every reading of a stream range."""

    def __init__(self, channel: aio.Channel) -> None:
        self._stub = telemetry_pb2_grpc.TelemetryServiceStub(channel)

    async def read(
        self, *, token: str, stream_id: str, start_us: int, end_us: int
    ) -> tuple[Int64s, Float64s]:
        """Readings of ``stream_id`` in [start_us, end_us); raises what telemetry answers.

        :class:`Unavailable` when telemetry cannot answer now; any other failure
        (NOT_FOUND for a stream that is not the caller's) as the call raised it.
        """
        try:
            return await self._read(token, stream_id, start_us, end_us)
        except aio.AioRpcError as exc:
            if exc.code() in _PASSING:
                raise Unavailable("Telemetry cannot be reached; try again shortly") from exc
            raise

    async def _read(
        self, token: str, stream_id: str, start_us: int, end_us: int
    ) -> tuple[Int64s, Float64s]:
        start, end = micros_timestamp(start_us), micros_timestamp(end_us)
        times: list[Int64s] = []
        values: list[Float64s] = []
        call = self._stub.ReadStream(
            telemetry_pb2.ReadStreamRequest(stream_id=stream_id, start=start, end=end),
            metadata=bearer_metadata(token),
            timeout=CALL_DEADLINE,
        )
        async for chunk in call:
            times.append(np.fromiter(chunk.timestamps, dtype=np.int64, count=len(chunk.timestamps)))
            values.append(np.fromiter(chunk.values, dtype=np.float64, count=len(chunk.values)))
        if not times:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        return np.concatenate(times), np.concatenate(values)
