"""In-process fan-out of a session's new events to its live watchers.

Each watcher gets a bounded queue; one that falls behind loses the oldest
events rather than slowing the chat (they stay in the store, and a client
that reconnects with its last event id gets them back).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence

from services.chat.chat.values import ChatEvent

QUEUE_SIZE = 256


class EventHub:
    """Publishes each session's events to whoever watches that session."""

    def __init__(self) -> None:
        self._watchers: defaultdict[str, set[asyncio.Queue[ChatEvent]]] = defaultdict(set)

    def publish(self, events: Sequence[ChatEvent]) -> None:
        """Hand stored events to every watcher of their session."""
        for event in events:
            for queue in list(self._watchers.get(event.session_id, ())):
                if queue.full():
                    with contextlib.suppress(asyncio.QueueEmpty):
                        queue.get_nowait()
                queue.put_nowait(event)

    def subscribe(self, session_id: str) -> Subscription:
        """Start collecting the session's events now; iterate the answer to receive them."""
        return Subscription(self, session_id)

    def _add(self, session_id: str, queue: asyncio.Queue[ChatEvent]) -> None:
        self._watchers[session_id].add(queue)

    def _remove(self, session_id: str, queue: asyncio.Queue[ChatEvent]) -> None:
        watchers = self._watchers.get(session_id)
        if watchers is not None:
            watchers.discard(queue)
            if not watchers:
                del self._watchers[session_id]

    def watchers(self, session_id: str) -> int:
        """How many watch ``session_id``."""
        return len(self._watchers.get(session_id, ()))


class Subscription:
    """One watcher's queue; subscribed at once, so nothing published after it is missed
    while the watcher replays what came before."""

    def __init__(self, hub: EventHub, session_id: str) -> None:
        self._hub = hub
        self._session_id = session_id
        self._queue: asyncio.Queue[ChatEvent] = asyncio.Queue(maxsize=QUEUE_SIZE)
        hub._add(session_id, self._queue)

    async def events(self) -> AsyncIterator[ChatEvent]:
        """The events as they are published, until the caller stops or closes."""
        while True:
            yield await self._queue.get()

    def close(self) -> None:
        """Stop receiving."""
        self._hub._remove(self._session_id, self._queue)
