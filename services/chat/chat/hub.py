"""In-process fan-out of a session's new events to its live watchers, and of the
agents' queue's changes to the agents watching it.

Each watcher gets a bounded queue; one that falls behind loses the oldest
events rather than slowing the chat (they stay in the store, and a client
that reconnects with its last event id gets them back; a queue watcher lists
the queue again).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Generic, TypeVar

from services.chat.chat.values import ChatEvent, QueueChange, queue_change

QUEUE_SIZE = 256
T = TypeVar("T")


def _offer(queue: asyncio.Queue[T], item: T) -> None:
    """Put ``item``, dropping the oldest when the watcher has fallen behind."""
    if queue.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()
    queue.put_nowait(item)


class EventHub:
    """Publishes each session's events to whoever watches that session, and the changes
    they make to the agents' queue to whoever watches the queue."""

    def __init__(self) -> None:
        self._watchers: defaultdict[str, set[asyncio.Queue[ChatEvent]]] = defaultdict(set)
        self._queue_watchers: set[asyncio.Queue[QueueChange]] = set()

    def publish(self, events: Sequence[ChatEvent], *, was_waiting: bool = False) -> None:
        """Hand stored events to every watcher of their session, and what they change in
        the agents' queue to its watchers (``was_waiting``: the session waited before)."""
        for event in events:
            for queue in list(self._watchers.get(event.session_id, ())):
                _offer(queue, event)
            change = queue_change(event, was_waiting=was_waiting)
            if change is not None:
                for waiting in list(self._queue_watchers):
                    _offer(waiting, change)

    def subscribe(self, session_id: str) -> Subscription[ChatEvent]:
        """Start collecting the session's events now; iterate the answer to receive them."""
        queue: asyncio.Queue[ChatEvent] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._watchers[session_id].add(queue)
        return Subscription(queue, lambda: self._remove(session_id, queue))

    def subscribe_queue(self) -> Subscription[QueueChange]:
        """Start collecting the agents' queue's changes now."""
        queue: asyncio.Queue[QueueChange] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._queue_watchers.add(queue)
        return Subscription(queue, lambda: self._queue_watchers.discard(queue))

    def _remove(self, session_id: str, queue: asyncio.Queue[ChatEvent]) -> None:
        watchers = self._watchers.get(session_id)
        if watchers is not None:
            watchers.discard(queue)
            if not watchers:
                del self._watchers[session_id]

    def watchers(self, session_id: str) -> int:
        """How many watch ``session_id``."""
        return len(self._watchers.get(session_id, ()))

    @property
    def queue_watchers(self) -> int:
        """How many watch the agents' queue."""
        return len(self._queue_watchers)


class Subscription(Generic[T]):
    """One watcher's queue; subscribed at once, so nothing published after it is missed
    while the watcher replays what came before."""

    def __init__(self, queue: asyncio.Queue[T], on_close: Callable[[], None]) -> None:
        self._queue = queue
        self._on_close = on_close

    async def events(self) -> AsyncIterator[T]:
        """The events as they are published, until the caller stops or closes."""
        while True:
            yield await self._queue.get()

    def close(self) -> None:
        """Stop receiving."""
        self._on_close()
