"""Running the gateway under uvicorn, separately from building it.

:func:`start_gateway` serves an app on a port (0 picks a free one) and answers
the bound port, so tests and end-to-end runs need no fixed ports.
"""

from __future__ import annotations

import asyncio
import resource
from typing import Any

import uvicorn
from starlette.applications import Starlette

from gateway.app import build_app
from gateway.overload import GatewayProtocol
from gateway.settings import DEFAULT_MAX_CONNECTIONS, gateway_settings
from iotkit.config import Settings
from iotkit.event_loop import loop_name

KEEP_ALIVE_SECONDS = 5
"""How long an idle keep-alive connection stays open between requests (uvicorn's default,
set here so that it stays short: each open connection holds a file)."""

RESERVED_FILES = 128
"""Files a gateway process keeps for its own use besides connections: gRPC channels, Redis,
logs, the static files it serves."""


def connection_limit(wanted: int) -> int:
    """``wanted``, or fewer when the process may not open that many files besides its own."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - RESERVED_FILES))


def uvicorn_options(
    host: str, port: int, *, max_connections: int = DEFAULT_MAX_CONNECTIONS
) -> dict[str, Any]:
    """The uvicorn settings of the gateway, one process or several.

    Logging is left to the process (the gateway writes its own access line);
    ``proxy_headers`` is off because the gateway itself appends the peer to
    ``X-Forwarded-For``, and uvicorn's rewrite of the peer would duplicate it.
    The loop is the suite's (:mod:`iotkit.event_loop`: uvloop unless turned off), and
    HTTP is parsed by httptools (a dependency), through :class:`GatewayProtocol`:
    a fraction of the CPU of the pure-Python h11 on every request.

    uvicorn bounds neither the connections it holds nor the time a client takes to send
    its request. ``limit_concurrency`` (``IOT_GATEWAY_MAX_CONNECTIONS``, kept within the
    process's file limit) answers a request 503 at once while that many connections are
    open, rather than taking on more work (with the envelope: :mod:`gateway.overload`); the
    app bounds the wait for a body (``IOT_GATEWAY_BODY_TIMEOUT``), and the protocol
    (:mod:`gateway.head_timeout`) closes a connection whose request line and headers are
    not in within its ``head_timeout`` (10 s).
    """
    return {
        "host": host,
        "port": port,
        "loop": loop_name(),
        "http": GatewayProtocol,
        "lifespan": "on",
        "log_config": None,
        "access_log": False,
        "proxy_headers": False,
        "server_header": False,
        "limit_concurrency": connection_limit(max_connections),
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
    }


def uvicorn_config(
    app: Starlette, host: str, port: int, *, max_connections: int = DEFAULT_MAX_CONNECTIONS
) -> uvicorn.Config:
    """The uvicorn settings of the gateway serving ``app`` in this process."""
    return uvicorn.Config(app, **uvicorn_options(host, port, max_connections=max_connections))


async def _serve(server: uvicorn.Server) -> None:
    try:
        await server.serve()
    except SystemExit as exc:
        # uvicorn exits the process when it cannot bind or start; here it is an ordinary error.
        raise RuntimeError("the gateway could not start") from exc


async def start_gateway(
    settings: Settings,
    host: str | None = None,
    port: int = 0,
    *,
    app: Starlette | None = None,
) -> tuple[uvicorn.Server, int, asyncio.Task[None]]:
    """Serve the gateway (``app``, or ``build_app(settings)``) and wait until it listens.

    Answers the server, the bound port and the serving task; stop with
    :func:`stop_gateway`. ``host`` defaults to ``settings.gateway_host``.
    """
    server = uvicorn.Server(
        uvicorn_config(
            app or build_app(settings),
            host or settings.gateway_host,
            port,
            max_connections=gateway_settings(settings).gateway_max_connections,
        )
    )
    task = asyncio.create_task(_serve(server))
    while not server.started:
        if task.done():
            await task  # Raises the startup failure.
            raise RuntimeError("the gateway stopped before it started")
        await asyncio.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    return server, int(bound), task


async def stop_gateway(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    """Ask ``server`` to shut down (finishing requests in flight) and wait for it."""
    server.should_exit = True
    await task
