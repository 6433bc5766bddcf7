"""Run the REST gateway: ``python -m gateway``. Wiring only.

uvicorn stops cleanly on SIGTERM and SIGINT (it finishes requests in flight,
then the lifespan closes the gRPC channels).
"""

from __future__ import annotations

import logging

import uvicorn

from gateway.app import build_app
from gateway.serve import uvicorn_config
from gateway.settings import GatewaySettings
from iotkit import tracing
from iotkit.logs import configure_logging


def main() -> None:
    """Read settings, build the app and serve it until signalled."""
    settings = GatewaySettings.load()
    configure_logging("gateway", settings.log_level)
    tracing.configure_tracing("gateway")
    app = build_app(settings)
    logging.getLogger("gateway").info(
        "starting gateway", extra={"host": settings.gateway_host, "port": settings.gateway_port}
    )
    try:
        uvicorn.Server(uvicorn_config(app, settings.gateway_host, settings.gateway_port)).run()
    finally:
        tracing.shutdown()


if __name__ == "__main__":
    main()
