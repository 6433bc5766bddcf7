"""Counting attempts in fixed windows: in the process, or in Redis when replicas share them.

A window opens with the first hit on a key and lasts ``window`` seconds;
every hit inside it adds one. Lockouts and rate limits read the count and how
long the window has left (the ``Retry-After`` of a refusal).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from iotkit.redis_client import redis_client

_MAX_LOCAL_KEYS = 100_000

# INCR and PEXPIRE in one step, so that a crash between them cannot leave a
# counter without expiry (a lockout that never ends); every key given, in one round trip.
_HIT_SCRIPT = """
local out = {}
for _, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('PEXPIRE', key, ARGV[1]) end
  out[#out + 1] = count
  out[#out + 1] = redis.call('PTTL', key)
end
return out
"""


@dataclass(frozen=True, slots=True)
class WindowCount:
    """Hits counted in the current window of a key, and the seconds until it closes."""

    count: int
    retry_after: float

    @property
    def retry_after_seconds(self) -> int:
        """``retry_after`` rounded up to whole seconds, at least 1 (for ``Retry-After``)."""
        return max(1, math.ceil(self.retry_after))


EMPTY = WindowCount(0, 0.0)


class WindowCounter(Protocol):
    """Counts hits per key in fixed windows."""

    async def hit(self, key: str) -> WindowCount:
        """Count one hit on ``key``; answers the count including it."""
        ...

    async def hit_many(self, keys: Sequence[str]) -> list[WindowCount]:
        """Count one hit on each of ``keys`` at once; answers their counts, in order."""
        ...

    async def peek(self, key: str) -> WindowCount:
        """The current count of ``key`` without adding to it."""
        ...

    async def clear(self, key: str) -> None:
        """Forget ``key``'s window."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class LocalWindowCounter:
    """Windows kept in this process: right for one replica, and for tests."""

    def __init__(self, *, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self._clock = clock
        self._windows: dict[str, tuple[int, float]] = {}

    async def hit(self, key: str) -> WindowCount:
        """Count one hit on ``key``."""
        now = self._clock()
        count, closes = self._windows.get(key, (0, 0.0))
        if closes <= now:
            if len(self._windows) >= _MAX_LOCAL_KEYS:
                self._prune(now)
            count, closes = 0, now + self._window
        self._windows[key] = (count + 1, closes)
        return WindowCount(count + 1, closes - now)

    async def hit_many(self, keys: Sequence[str]) -> list[WindowCount]:
        """Count one hit on each of ``keys``."""
        return [await self.hit(key) for key in keys]

    async def peek(self, key: str) -> WindowCount:
        """The current count of ``key``."""
        now = self._clock()
        count, closes = self._windows.get(key, (0, 0.0))
        return WindowCount(count, closes - now) if closes > now else EMPTY

    async def clear(self, key: str) -> None:
        """Forget ``key``."""
        self._windows.pop(key, None)

    async def aclose(self) -> None:
        """Nothing to release."""

    def _prune(self, now: float) -> None:
        # Bounded memory under a flood of distinct keys: drop closed windows,
        # then the oldest half if that was not enough.
        self._windows = {k: v for k, v in self._windows.items() if v[1] > now}
        if len(self._windows) >= _MAX_LOCAL_KEYS:
            kept = sorted(self._windows.items(), key=lambda item: item[1][1])
            self._windows = dict(kept[len(kept) // 2 :])


class RedisWindowCounter:
    """Windows kept in Redis, shared by every replica; keys expire with their window."""

    def __init__(self, url: str, *, namespace: str, window: float) -> None:
        self._redis = redis_client(url)
        self._namespace = namespace
        self._window_ms = int(window * 1000)
        self._hit = self._redis.register_script(_HIT_SCRIPT)

    def _key(self, key: str) -> str:
        return f"{self._namespace}:{key}"

    async def hit(self, key: str) -> WindowCount:
        """Count one hit on ``key``."""
        (counted,) = await self.hit_many([key])
        return counted

    async def hit_many(self, keys: Sequence[str]) -> list[WindowCount]:
        """Count one hit on each of ``keys``, in one round trip."""
        if not keys:
            return []
        raw = await self._hit(keys=[self._key(key) for key in keys], args=[self._window_ms])
        return [
            WindowCount(int(count), max(int(ttl_ms), 0) / 1000)
            for count, ttl_ms in zip(raw[::2], raw[1::2], strict=True)
        ]

    async def peek(self, key: str) -> WindowCount:
        """The current count of ``key``."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(self._key(key))
            pipe.pttl(self._key(key))
            raw, ttl_ms = await pipe.execute()
        if raw is None or int(ttl_ms) <= 0:
            return EMPTY
        return WindowCount(int(raw), int(ttl_ms) / 1000)

    async def clear(self, key: str) -> None:
        """Forget ``key``."""
        await self._redis.delete(self._key(key))

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


def window_counter(redis_url: str | None, *, namespace: str, window: float) -> WindowCounter:
    """A Redis counter when ``redis_url`` is set, otherwise an in-process one."""
    if redis_url:
        return RedisWindowCounter(redis_url, namespace=namespace, window=window)
    return LocalWindowCounter(window=window)
