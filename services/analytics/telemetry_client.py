"""Reading stream ranges from telemetry, and asking whether a caller may read a stream or a
device, with the caller's own token.

Analytics owns no raw readings: it asks telemetry, which checks that the
caller may read the stream (another user's stream is NOT_FOUND there), and
for a device asks the devices service in turn.
"""

from __future__ import annotations

from collections.abc import Awaitable

import grpc
import numpy as np
from grpc import aio

from iot.telemetry.v1 import telemetry_pb2, telemetry_pb2_grpc
from iotkit.context import bearer_metadata
from iotkit.convert import micros_timestamp
from iotkit.errors import Unavailable
from services.analytics.analytics.correlation import Float64s, Int64s

CALL_DEADLINE = 60.0
CHECK_DEADLINE = 5.0
# Telemetry away, slow or overloaded: worth a retry, and not the caller's stream's fault.
_PASSING = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
)
# Telemetry's "no" for this caller: unknown or another user's (NOT_FOUND), a token it does
# not take for the question (UNAUTHENTICATED, PERMISSION_DENIED), an id it cannot read.
_REFUSALS = (
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.INVALID_ARGUMENT,
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

    async def may_read_stream(self, *, token: str, stream_id: str) -> bool:
        """Whether the holder of ``token`` may read ``stream_id`` (telemetry's GetStream)."""
        return await self._allowed(
            self._stub.GetStream(
                telemetry_pb2.GetStreamRequest(stream_id=stream_id),
                metadata=bearer_metadata(token),
                timeout=CHECK_DEADLINE,
            )
        )

    async def may_read_device(self, *, token: str, device_id: str) -> bool:
        """Whether the holder of ``token`` may read ``device_id``: telemetry lists a device's
        streams only to those who may (it asks the devices service), so one is asked for."""
        return await self._allowed(
            self._stub.ListStreams(
                telemetry_pb2.ListStreamsRequest(device_id=device_id, limit=1),
                metadata=bearer_metadata(token),
                timeout=CHECK_DEADLINE,
            )
        )

    @staticmethod
    async def _allowed(call: Awaitable[object]) -> bool:
        """True when the call answers, False when telemetry refuses it for this caller;
        :class:`Unavailable` for any other failure (telemetry away or failing is not the
        caller's fault)."""
        try:
            await call
        except aio.AioRpcError as exc:
            if exc.code() in _REFUSALS:
                return False
            raise Unavailable("Telemetry cannot be reached; try again shortly") from exc
        return True

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
