"""Asking analytics for the anomaly scores of a stream range, with the caller's own token.

Telemetry owns the readings, analytics their scores: a chart that wants both
asks analytics (GetScores) as the caller, so analytics decides what the caller
may see. Scores are an extra: when analytics is away, slow or refuses, the
chart is answered without them, never with an error.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
import numpy as np
from grpc import aio

from iot.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from iotkit.codec import Float64s, Int64s
from iotkit.context import bearer_metadata
from iotkit.convert import micros, micros_timestamp

log = logging.getLogger(__name__)

DEADLINE = 5.0
"""Seconds all the calls for one chart may take before it is answered without scores."""
PAGE = 1_000_000
"""Scores asked per call: GetScores' most (about 16 MB a message)."""


class AnalyticsScores:
    """Reads the scores of a stream range from analytics (every page of it)."""

    def __init__(self, channel: aio.Channel) -> None:
        self._stub = analytics_pb2_grpc.AnalyticsServiceStub(channel)

    async def scores(
        self, *, token: str, stream_id: str, start_us: int, end_us: int
    ) -> tuple[Int64s, Float64s] | None:
        """Scores in [start_us, end_us), by time; None when analytics could not answer.

        A stream analytics does not know (NOT_FOUND: nothing of it analysed yet)
        has no scores yet; any other failure is logged and answers None.
        """
        try:
            async with asyncio.timeout(DEADLINE):
                return await self._pages(token, stream_id, start_us, end_us)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
            log.info("scores not available", extra={"code": exc.code().name})
        except TimeoutError:
            log.info("scores not available", extra={"code": "DEADLINE_EXCEEDED"})
        return None

    async def _pages(
        self, token: str, stream_id: str, start_us: int, end_us: int
    ) -> tuple[Int64s, Float64s]:
        times: list[Int64s] = []
        scores: list[Float64s] = []
        start = start_us
        while True:
            answer = await self._stub.GetScores(
                analytics_pb2.GetScoresRequest(
                    stream_id=stream_id,
                    start=micros_timestamp(start),
                    end=micros_timestamp(end_us),
                    limit=PAGE,
                ),
                metadata=bearer_metadata(token),
                timeout=DEADLINE,
            )
            times.append(np.array(answer.timestamps_us, dtype=np.int64))
            scores.append(np.array(answer.scores, dtype=np.float64))
            if not answer.HasField("next_start"):
                return np.concatenate(times), np.concatenate(scores)
            start = micros(answer.next_start)
