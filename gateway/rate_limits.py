"""Requests to the API per client address and per bearer token, in fixed one-minute windows.

A pure ASGI middleware in front of the dispatcher: a request over either limit
is answered 429 ``RATE_LIMITED`` in the envelope, with ``Retry-After`` (the
seconds left in the window), before it reaches a service. Only ``/v1/`` paths
count: the console's files, ``/healthz`` and the API document do not. Tokens
are counted by a digest, never by their text. Windows live in Redis when
``IOT_REDIS_URL`` is set (every replica shares them) and in the process
otherwise; when Redis cannot be reached the request is served uncounted, since
an outage of a limit's store should not take the API down with it. An outage
is logged when it begins and when it ends (with how many requests went
uncounted), not once per request, and Redis is asked again at most every
:data:`RETRY_SECONDS` meanwhile, so that requests do not each wait on it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.exceptions import RedisError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.envelope import error_response
from gateway.errors import GatewayError
from iotkit.limits import LocalWindowCounter, RedisWindowCounter, WindowCount, WindowCounter

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60.0
COUNTED_PREFIX = "/v1/"
RETRY_SECONDS = 1.0
"""While the store is unreachable, how long requests go uncounted before it is tried again."""


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Requests per window allowed to one client address and to one token (0: no limit)."""

    per_client: int
    per_token: int

    @property
    def active(self) -> bool:
        """True when either limit is on."""
        return self.per_client > 0 or self.per_token > 0


def window_counter(redis_url: str | None) -> WindowCounter:
    """The counter of the gateway's windows: shared in Redis when configured."""
    if redis_url:
        return RedisWindowCounter(redis_url, namespace="iot:gateway:rate", window=WINDOW_SECONDS)
    return LocalWindowCounter(window=WINDOW_SECONDS)


def _bearer(headers: Headers) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class RateLimitMiddleware:
    """Refuses API requests over their client's or their token's limit."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: RateLimits,
        counter: WindowCounter,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self._limits = limits
        self._counter = counter
        self._clock = clock
        self._down_since: float | None = None  # when the store stopped answering
        self._retry_at = 0.0
        self._uncounted = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection."""
        if (
            scope["type"] != "http"
            or not self._limits.active
            or not scope.get("path", "").startswith(COUNTED_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        refused = await self._over_limit(scope)
        if refused is None:
            await self.app(scope, receive, send)
            return
        kind, count = refused
        error = GatewayError(
            status=429,
            code="RATE_LIMITED",
            message=f"Too many requests from this {kind}; retry after "
            f"{count.retry_after_seconds} s",
            details={"limit": kind},
            headers={"Retry-After": str(count.retry_after_seconds)},
        )
        await error_response(error, path=scope.get("path", ""))(scope, receive, send)

    async def _over_limit(self, scope: Scope) -> tuple[str, WindowCount] | None:
        keys: list[tuple[str, str, int]] = []
        client = scope.get("client")
        if self._limits.per_client and client:
            keys.append(("client", f"client:{client[0]}", self._limits.per_client))
        token = _bearer(Headers(scope=scope))
        if self._limits.per_token and token:
            digest = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:32]
            keys.append(("token", f"token:{digest}", self._limits.per_token))
        if not keys:
            return None
        now = self._clock()
        if self._down_since is not None and now < self._retry_at:
            self._uncounted += 1
            return None
        try:
            # Every limit counts the request, in one round trip to a shared store.
            counts = await self._counter.hit_many([key for _, key, _ in keys])
        except (OSError, RedisError) as exc:
            self._store_failed(now, exc)
            return None
        if self._down_since is not None:
            log.warning(
                "rate limits counted again after %.1f s; %d requests were served uncounted",
                now - self._down_since,
                self._uncounted,
            )
            self._down_since, self._uncounted = None, 0
        for (kind, _, limit), count in zip(keys, counts, strict=True):
            if count.count > limit:
                return kind, count
        return None

    def _store_failed(self, now: float, exc: Exception) -> None:
        if self._down_since is None:
            self._down_since = now
            log.warning(
                "rate limits not counted: their store is unreachable (%s); requests are "
                "served uncounted until it answers",
                type(exc).__name__,
            )
        self._uncounted += 1
        self._retry_at = now + RETRY_SECONDS
