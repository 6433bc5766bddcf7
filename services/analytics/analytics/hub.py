"""In-process fan-out of newly found anomalies to live watchers (:class:`iotkit.hub.Hub`)."""

from __future__ import annotations

from iotkit.hub import Hub
from services.analytics.analytics.values import Anomaly


class AnomalyHub(Hub[Anomaly]):
    """Publishes anomalies to whoever watches."""
