"""Prometheus metrics of one process: its own registry and its ``/metrics`` endpoint.

Each process's wiring owns one :class:`ProcessMetrics`, and everything it
measures is registered there, never in prometheus_client's global default
registry: tests build several services in one Python process, and a global
registry would refuse their second set of series (or mix their counts).

The endpoint is prometheus_client's own HTTP server, in a thread of its own:
a scrape then answers even while the event loop is busy, and reading a
counter needs no lock the loop holds. It runs only where the process was
given an address (``IOT_<PROCESS>_METRICS_ADDR``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)
from sqlalchemy import QueuePool
from sqlalchemy.ext.asyncio import AsyncEngine

from iotkit.config import ConfigError, metrics_variable
from iotkit.tasks import cancel

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
"""Histogram buckets of call and request durations, in seconds: unary calls take
milliseconds; a stream lasts as long as its client keeps it, and lands in +Inf."""


ALTERNATE_STEP = 10
"""How far apart the metrics ports of one process's workers are (as replicas' are)."""


@dataclass(slots=True)
class MetricsEndpoint:
    """A running ``/metrics`` HTTP server."""

    server: WSGIServer
    thread: Thread

    @property
    def port(self) -> int:
        """The bound port (useful when asked for port 0)."""
        return int(self.server.server_port)

    def close(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def split_host_port(address: str) -> tuple[str, int]:
    """``host:port`` (an IPv6 host in brackets) as its host and port."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def serve_metrics(registry: CollectorRegistry, address: str) -> MetricsEndpoint:
    """Serve ``registry`` at ``http://address/metrics`` (port 0 picks a free one)."""
    host, port = split_host_port(address)
    server, thread = start_http_server(port, addr=host or "0.0.0.0", registry=registry)
    return MetricsEndpoint(server, thread)


@dataclass(slots=True)
class _Sampler:
    """An async reading of gauges, taken every ``period`` seconds."""

    name: str
    sample: Callable[[], Awaitable[None]]
    period: float


@dataclass(slots=True)
class ProcessMetrics:
    """One process's registry, its samplers and, when served, its endpoint."""

    process: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    endpoint: MetricsEndpoint | None = None
    _samplers: list[_Sampler] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # CPU, memory and open files of the OS process (the same for several wirings in one
        # test process, which is harmless).
        ProcessCollector(registry=self.registry)

    @property
    def port(self) -> int | None:
        """Where ``/metrics`` is served, or None when it is not."""
        return self.endpoint.port if self.endpoint is not None else None

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        """A counter in this process's registry."""
        return Counter(name, documentation, labels, registry=self.registry)

    def gauge(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
        """A gauge in this process's registry."""
        return Gauge(name, documentation, labels, registry=self.registry)

    def histogram(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Histogram:
        """A latency histogram (seconds, :data:`LATENCY_BUCKETS`) in this registry."""
        return Histogram(
            name, documentation, labels, registry=self.registry, buckets=LATENCY_BUCKETS
        )

    def gauge_of(self, name: str, documentation: str, read: Callable[[], float]) -> Gauge:
        """A gauge whose value is ``read()`` at each scrape.

        ``read`` runs in the endpoint's thread, so it may only read plain values
        (a length, an attribute); anything that needs the event loop is a sampler.
        """
        gauge = self.gauge(name, documentation)
        gauge.set_function(read)
        return gauge

    def sampled_gauge(
        self, name: str, documentation: str, read: Callable[[], Awaitable[float]], *, period: float
    ) -> Gauge:
        """A gauge set to ``await read()`` every ``period`` seconds once served, for values
        that need the event loop (a query); a failed read keeps the last value."""
        gauge = self.gauge(name, documentation)

        async def sample() -> None:
            gauge.set(await read())

        self._samplers.append(_Sampler(name, sample, period))
        return gauge

    def watch_pool(self, engine: AsyncEngine) -> None:
        """Gauges of ``engine``'s connection pool: connections checked out and its size."""
        pool = engine.pool
        if not isinstance(pool, QueuePool):
            return  # a pool without bookkeeping (NullPool, StaticPool) has nothing to show
        self.gauge_of(
            "iot_db_pool_checked_out",
            "Database connections in use (checked out of the pool).",
            pool.checkedout,
        )
        self.gauge_of("iot_db_pool_size", "Connections the pool keeps open.", pool.size)

    def start(self, address: str | None, *, alternates: int = 1) -> None:
        """Serve the registry at ``address`` and start the samplers (inside the loop); with no
        address, nothing: no one would read what the samplers' queries found.

        With ``alternates`` above 1 (workers of one process sharing its setting), the first
        free of the address's port + :data:`ALTERNATE_STEP` * k for k below it."""
        if address is None:
            return
        host, port = split_host_port(address)
        tried = [address] + [
            f"{host}:{port + ALTERNATE_STEP * k}" for k in range(1, alternates) if port
        ]
        for n, where in enumerate(tried):
            try:
                self.endpoint = serve_metrics(self.registry, where)
                break
            except OSError as exc:
                if n + 1 < len(tried):
                    continue  # another worker has it
                # Exits with one line naming the variable, as a bad setting does.
                raise ConfigError(
                    f"{metrics_variable(self.process)}: cannot serve metrics on {where}: "
                    f"{exc.strerror or exc}"
                ) from exc
        for sampler in self._samplers:
            self._tasks.append(asyncio.create_task(self._sample(sampler), name=sampler.name))
        log.info("serving metrics", extra={"metrics_of": self.process, "port": self.port})

    async def aclose(self) -> None:
        """Stop the samplers and the endpoint."""
        for task in self._tasks:
            await cancel(task)
        self._tasks.clear()
        if self.endpoint is not None:
            await asyncio.to_thread(self.endpoint.close)
            self.endpoint = None

    async def _sample(self, sampler: _Sampler) -> None:
        while True:
            try:
                await sampler.sample()
            except Exception as exc:  # a database that is down: the gauge keeps its last value
                log.debug("metrics sample failed", extra={"sampler": sampler.name, "error": exc})
            await asyncio.sleep(sampler.period)
