"""Run the REST gateway: ``python -m gateway``. Wiring only.

uvicorn stops cleanly on SIGTERM and SIGINT (it finishes requests in flight,
then the lifespan closes the gRPC channels). With ``IOT_GATEWAY_WORKERS``
above 1, uvicorn's supervisor binds the port once and runs that many worker
processes on it, each building its own app (:func:`worker_app`); it stops
them on SIGTERM and starts again one that dies.
"""

from __future__ import annotations

import logging
import socket

import uvicorn
from starlette.applications import Starlette
from uvicorn.supervisors import Multiprocess

from gateway.app import build_app
from gateway.serve import uvicorn_config, uvicorn_options
from gateway.settings import GatewaySettings
from iotkit import tracing
from iotkit.logs import configure_logging
from iotkit.process import end_process


def worker_app() -> Starlette:
    """The app of one worker process (uvicorn's factory): settings, logs and traces of its
    own, as a single gateway process has."""
    settings = GatewaySettings.load()
    configure_logging("gateway", settings.log_level)
    tracing.configure_tracing("gateway")
    return build_app(settings)


def listening_socket(host: str, port: int) -> socket.socket:
    """The port the workers share, bound here rather than by ``Config.bind_socket``: that
    one leaves the socket's protocol at 0, which the accepted connections inherit, and
    asyncio then leaves Nagle's algorithm on, so every keep-alive request after the first
    waited ~40 ms for a delayed ACK (uvicorn issue #3149; 700 requests/s instead of
    4,000 on /healthz here)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def main() -> None:
    """Read settings, build the app and serve it until signalled."""
    settings = GatewaySettings.load()
    configure_logging("gateway", settings.log_level)
    logging.getLogger("gateway").info(
        "starting gateway",
        extra={
            "host": settings.gateway_host,
            "port": settings.gateway_port,
            "workers": settings.gateway_workers,
        },
    )
    if settings.gateway_workers > 1:
        config = uvicorn.Config(
            # Each worker imports the factory by name (run as a script, this module is
            # __main__ in the supervisor only).
            "gateway.__main__:worker_app",
            factory=True,
            workers=settings.gateway_workers,
            **uvicorn_options(
                settings.gateway_host,
                settings.gateway_port,
                max_connections=settings.gateway_max_connections,
            ),
        )
        sockets = [listening_socket(settings.gateway_host, settings.gateway_port)]
        Multiprocess(config, sockets=sockets).run()
        return
    tracing.configure_tracing("gateway")
    app = build_app(settings)
    try:
        config = uvicorn_config(
            app,
            settings.gateway_host,
            settings.gateway_port,
            max_connections=settings.gateway_max_connections,
        )
        server = uvicorn.Server(config)
        server.run()
    finally:
        tracing.shutdown()
    # uvicorn returns quietly when it could not start (the port taken): say so by the status.
    end_process(0 if server.started else 3)


if __name__ == "__main__":
    main()
