"""Telemetry's own Prometheus series: readings stored, chunks forwarded, the forwarding lag
and the writer's queue.

The wiring hands these callbacks to the writer and the forwarder, which
know nothing of Prometheus.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from iotkit.metrics import ProcessMetrics
from services.telemetry.telemetry.writer import Prepared

LAG_SAMPLE_SECONDS = 5.0
"""How often the forwarding lag is read (one indexed ``max(id)`` query)."""


class TelemetryMetrics:
    """The series above, in the process's registry."""

    def __init__(
        self,
        metrics: ProcessMetrics,
        *,
        newest_position: Callable[[], Awaitable[int]],
        acknowledged: Callable[[], int],
        queued: Callable[[], int],
    ) -> None:
        self._readings = metrics.counter(
            "iot_telemetry_readings_stored_total",
            "Readings stored (after de-duplication), from streams and file imports alike.",
        )
        self._forwarded = metrics.counter(
            "iot_telemetry_chunks_forwarded_total", "Stored chunks sent to analytics."
        )
        metrics.gauge_of(
            "iot_telemetry_writer_queue_depth",
            "Batches waiting for the group writer.",
            lambda: float(queued()),
        )
        self._newest_position = newest_position
        self._acknowledged = acknowledged
        metrics.sampled_gauge(
            "iot_telemetry_forward_lag_chunks",
            "Chunk positions stored but not yet acknowledged by analytics.",
            self._lag,
            period=LAG_SAMPLE_SECONDS,
        )

    def stored(self, groups: list[Prepared]) -> None:
        """Count the readings of a committed group."""
        self._readings.inc(sum(int(group.timestamps.size) for group in groups))

    def forwarded(self, chunks: int) -> None:
        """Count chunks written to the analytics stream."""
        self._forwarded.inc(chunks)

    async def _lag(self) -> float:
        return float(max(0, await self._newest_position() - self._acknowledged()))
