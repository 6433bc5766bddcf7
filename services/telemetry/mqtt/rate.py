"""The per-device rate limit of MQTT ingest: shared by every telemetry replica through Redis.

Telemetry's replicas share the devices' messages (an MQTT shared
subscription), so a count kept in one process would let a device publish
as many times the rate as there are replicas. With ``IOT_REDIS_URL`` set,
each message counts in a fixed window in Redis (one round trip: the Lua
script of ``iotkit.limits``), every replica reading the same count; the
window holds ``ceil(rate)`` messages and lasts as long as ``rate`` takes
to allow them, so the average is the rate and a burst across a window's
edge at most twice it. Without Redis, or while it cannot be reached (an
outage of the limit's store must not stop ingest), a token bucket in the
process counts instead: ``rate`` a second, bursts of twice that.
"""

from __future__ import annotations

import logging
import math
import time

from redis.exceptions import RedisError

from iotkit.limits import RedisWindowCounter

log = logging.getLogger(__name__)

NAMESPACE = "iot:mqtt:rate"
_MAX_DEVICES = 100_000


class LocalBuckets:
    """A token bucket per device, in this process: ``rate`` messages a second, bursts of
    twice that."""

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._burst = max(1.0, 2 * rate)
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, device_id: str) -> bool:
        """Take one message of ``device_id``; False when it is over its rate."""
        now = time.monotonic()
        tokens, since = self._buckets.get(device_id, (self._burst, now))
        tokens = min(self._burst, tokens + (now - since) * self._rate)
        allowed = tokens >= 1.0
        self._buckets[device_id] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > _MAX_DEVICES:  # forget idle devices rather than grow without end
            self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 60}
        return allowed


class DeviceRates:
    """Admits each device's messages at ``rate`` a second; see the module's docstring."""

    def __init__(self, rate: float, *, redis_url: str | None, namespace: str = NAMESPACE) -> None:
        self._local = LocalBuckets(rate)
        self.per_window = math.ceil(rate)
        """Messages one window admits."""
        self.window = self.per_window / rate
        """Seconds a shared window lasts."""
        self._shared = (
            RedisWindowCounter(redis_url, namespace=namespace, window=self.window)
            if redis_url
            else None
        )
        self._redis_down = False

    @property
    def shared(self) -> bool:
        """True when the count is kept in Redis."""
        return self._shared is not None

    async def take(self, device_id: str) -> bool:
        """Count one message of ``device_id``; False when it is over its rate."""
        if self._shared is None:
            return self._local.take(device_id)
        try:
            counted = await self._shared.hit(device_id)
        except RedisError as exc:
            if not self._redis_down:  # once per outage, not once per message
                log.warning(
                    "MQTT rate limit counted in this process only: Redis unreachable (%s)",
                    type(exc).__name__,
                )
            self._redis_down = True
            return self._local.take(device_id)
        if self._redis_down:
            log.info("MQTT rate limit counted in Redis again")
            self._redis_down = False
        return counted.count <= self.per_window

    async def aclose(self) -> None:
        """Close the Redis connections."""
        if self._shared is not None:
            await self._shared.aclose()
