"""Running one service process: settings, logging, wiring, serving, closing.

Each service's ``wiring.build`` assembles its server; ``run`` is what its
``__main__`` calls. :func:`build_service` is the wiring shared by services
that verify tokens with keys fetched from auth.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from grpc import aio

from iotkit import event_loop, tracing
from iotkit.checks import DependencyCheck, database_check, redis_check
from iotkit.config import ConfigError, Settings
from iotkit.db import Database, DatabaseUnavailable, open_database
from iotkit.jwks import remote_jwks
from iotkit.logs import configure_logging
from iotkit.metrics import ProcessMetrics
from iotkit.migrations import History, MigrationRefused
from iotkit.revocation import RevocationFollower, remote_revocations
from iotkit.server import Registrar, ServiceProcess, build_server, channel, serve_until_signal
from iotkit.service_tokens import ServiceTokenSource
from iotkit.tokens import KeySet, TokenVerifier

Builder = Callable[..., Awaitable[ServiceProcess]]
"""``build(settings, *, address, schema=None)`` of a service's wiring module; ``settings`` is
of the class given to :func:`run`."""


@dataclass(frozen=True, slots=True)
class Parts:
    """What the kit built for a service, handed to the service's registrar."""

    settings: Settings
    database: Database
    verifier: TokenVerifier
    auth_channel: aio.Channel
    service_tokens: ServiceTokenSource
    # The process's Prometheus registry: the registrar adds the service's own series.
    metrics: ProcessMetrics
    # What the service's own wiring opened, closed after the server stops (last first).
    closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)


def open_metrics(service: str, settings: Settings, database: Database) -> ProcessMetrics:
    """The process's metrics, with its database pool's gauges; :meth:`ProcessMetrics.start`
    serves them where ``IOT_<SERVICE>_METRICS_ADDR`` says, once the rest is wired."""
    metrics = ProcessMetrics(service)
    metrics.watch_pool(database.engine)
    return metrics


def standard_checks(
    database: Database, settings: Settings, *, service: str, cache_required: bool = False
) -> list[DependencyCheck]:
    """The checks every process runs: its database and the shared cache.

    Only a process that keeps state in the cache (auth's login counters) needs
    it; the others follow revocations through auth while Redis is down.
    """
    return [
        database_check(database, service=service),
        redis_check(settings.redis_url, service=service, optional=not cache_required),
    ]


async def build_service(
    settings: Settings,
    *,
    history: History,
    address: str,
    register: Callable[[Parts], Registrar] | None = None,
    schema: str | None = None,
    extra_checks: Sequence[DependencyCheck] = (),
) -> ServiceProcess:
    """Wire a service that owns a database (migrated to ``history``'s head) and trusts the
    keys auth publishes."""
    service = history.service
    # A database that is down does not stop the start: the process serves health
    # (NOT_SERVING) and its diagnostics until the database answers.
    database = await open_database(
        service=service, settings=settings, tables=history, schema=schema, wait=False
    )
    auth_channel = channel(settings.address("auth"))
    keys = KeySet(remote_jwks(auth_channel))
    verifier = TokenVerifier(keys)
    tokens = ServiceTokenSource(
        channel=auth_channel, service=service, secret=settings.service_secret
    )
    follower = RevocationFollower(
        poll=remote_revocations(auth_channel, tokens), redis_url=settings.redis_url
    )
    metrics = open_metrics(service, settings, database)
    parts = Parts(settings, database, verifier, auth_channel, tokens, metrics)
    built = build_server(
        service=service,
        register=register(parts) if register else _no_domain_services,
        verifier=verifier,
        session_check=follower.session_is_live,
        checks=[*standard_checks(database, settings, service=service), *extra_checks],
        address=address,
        ready=database.ready,
        metrics=metrics,
    )
    follower.start()
    metrics.start(settings.metrics_address(service))
    return ServiceProcess(
        built,
        [metrics.aclose, database.close, auth_channel.close, follower.stop, *parts.closers],
        metrics,
    )


def _no_domain_services(server: object) -> list[str]:
    return []


async def _serve(service: str, build: Builder, kind: type[Settings]) -> None:
    settings = kind.load()
    configure_logging(service, settings.log_level)
    tracing.configure_tracing(service)
    process = await build(settings, address=settings.listen_address(service))
    try:
        await serve_until_signal(process.built, service=service, grace=settings.grace_seconds)
    finally:
        await process.close_resources()
        tracing.shutdown()


def run(service: str, build: Builder, settings: type[Settings] = Settings) -> None:
    """Serve ``service`` until SIGTERM or SIGINT; a configuration error exits with status 2,
    a database that stayed unreachable for ``IOT_STARTUP_TIMEOUT`` with status 3, one at a
    schema revision this code cannot migrate with status 4.

    ``settings`` is the service's own settings class when it has one (``AuthSettings``).
    """
    try:
        event_loop.run(_serve(service, build, settings))
    except ConfigError as exc:
        print(f"{service}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    except DatabaseUnavailable as exc:
        # One line, no traceback: the cause is outside the process.
        print(f"{service}: cannot start: {exc}", file=sys.stderr)
        raise SystemExit(3) from exc
    except MigrationRefused as exc:
        # Running on a schema this code does not know could lose data: refuse, in one line.
        print(f"{service}: cannot start: {exc}", file=sys.stderr)
        raise SystemExit(4) from exc
    end_process(0)


def end_process(status: int) -> NoReturn:
    """End a process whose work is closed (server stopped, connections and files closed)
    at once, with ``status``, after flushing its logs and standard streams.

    What the interpreter would do next, free every module and let gRPC's core shut
    down, took 1 to 2 s after a service had logged "stopped" on a quiet machine and
    past the launcher's 10 s on a loaded one, which then killed the process. None of
    it matters to a process that ends.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        # A closed or broken pipe: nothing left to say there.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)
