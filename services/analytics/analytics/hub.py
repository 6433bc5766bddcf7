"""In-process fan-out of newly found anomalies to live watchers.

Each watcher gets a bounded queue; a watcher that falls behind loses the
oldest anomalies rather than slowing analysis (they stay listable).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence

from services.analytics.analytics.values import Anomaly

QUEUE_SIZE = 1000


class AnomalyHub:
    """Publishes anomalies to whoever watches."""

    def __init__(self) -> None:
        self._watchers: set[tuple[asyncio.Queue[Anomaly], Callable[[Anomaly], bool]]] = set()

    def publish(self, anomalies: Sequence[Anomaly]) -> None:
        """Hand new anomalies to every watcher whose filter takes them."""
        for queue, accepts in list(self._watchers):
            for anomaly in anomalies:
                if not accepts(anomaly):
                    continue
                if queue.full():
                    with contextlib.suppress(asyncio.QueueEmpty):
                        queue.get_nowait()
                queue.put_nowait(anomaly)

    async def watch(self, accepts: Callable[[Anomaly], bool]) -> AsyncIterator[Anomaly]:
        """Anomalies as they are published, until the caller stops iterating."""
        queue: asyncio.Queue[Anomaly] = asyncio.Queue(maxsize=QUEUE_SIZE)
        entry = (queue, accepts)
        self._watchers.add(entry)
        try:
            while True:
                yield await queue.get()
        finally:
            self._watchers.discard(entry)

    @property
    def watchers(self) -> int:
        """How many watchers are listening."""
        return len(self._watchers)
