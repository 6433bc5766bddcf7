"""In-process fan-out of new items (anomalies, alert messages) to live watchers.

Each watcher gets a bounded queue; a watcher that falls behind loses the
oldest items rather than slowing whoever publishes (they stay listable).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Generic, TypeVar

from iotkit.streams import Watch

QUEUE_SIZE = 1000

ItemT = TypeVar("ItemT")


class Hub(Generic[ItemT]):
    """Publishes items to whoever watches."""

    def __init__(self) -> None:
        self._watchers: set[tuple[asyncio.Queue[ItemT], Callable[[ItemT], bool]]] = set()
        self._onward: list[Hub[ItemT]] = []

    def forward_to(self, other: Hub[ItemT]) -> None:
        """Publish everything published here in ``other`` too."""
        self._onward.append(other)

    def publish(self, items: Sequence[ItemT]) -> None:
        """Hand new items to every watcher whose filter takes them (and to the hubs
        forwarded to)."""
        for other in self._onward:
            other.publish(items)
        for queue, accepts in list(self._watchers):
            for item in items:
                if not accepts(item):
                    continue
                if queue.full():
                    with contextlib.suppress(asyncio.QueueEmpty):
                        queue.get_nowait()
                queue.put_nowait(item)

    def watch(self, accepts: Callable[[ItemT], bool]) -> Watch[ItemT]:
        """Items published from now on (watched when this returns, so a servicer that then
        tells its client the watch is open misses none), until the answer is closed."""
        queue: asyncio.Queue[ItemT] = asyncio.Queue(maxsize=QUEUE_SIZE)
        entry = (queue, accepts)
        self._watchers.add(entry)
        return Watch(_items(queue), lambda: self._watchers.discard(entry))

    @property
    def watchers(self) -> int:
        """How many watchers are listening."""
        return len(self._watchers)


async def _items(queue: asyncio.Queue[ItemT]) -> AsyncGenerator[ItemT, None]:
    while True:
        yield await queue.get()
