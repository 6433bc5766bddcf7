"""Analytics' own Prometheus series: chunks analysed and how far behind the readings it is.

Each replica exports its own lag (Prometheus tells replicas apart by the
scraped ``instance``): a replica whose streams fall behind shows alone.
Telemetry's ``iot_telemetry_forward_lag_chunks`` is the other half: what
is stored but not yet acknowledged.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from iotkit.metrics import ProcessMetrics
from services.analytics.analytics.analysis import ChunkIn


class AnalysisMetrics:
    """``iot_analytics_chunks_analyzed_total`` and ``iot_analytics_lag_seconds``."""

    def __init__(self, metrics: ProcessMetrics) -> None:
        self._analyzed = metrics.counter(
            "iot_analytics_chunks_analyzed_total", "Chunks received from telemetry and analysed."
        )
        self._lag = metrics.gauge(
            "iot_analytics_lag_seconds",
            "At the last analysis: its time minus the newest reading analysed.",
        )

    def analyzed(self, chunks: Sequence[ChunkIn], at: datetime) -> None:
        """Count ``chunks``, analysed at ``at``, and note how old their newest reading was."""
        self._analyzed.inc(len(chunks))
        newest_us = max((int(c.timestamps[-1]) for c in chunks if c.timestamps.size), default=None)
        if newest_us is not None:
            # A file of old readings raises it until live readings come again: the gauge
            # cannot tell history from a backlog, so dashboards read it beside the import rate.
            self._lag.set(max(0.0, at.timestamp() - newest_us / 1_000_000))
