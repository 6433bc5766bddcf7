"""A stand-in for one gRPC service of the suite, for launcher tests.

Run as ``python health_server.py NAME [options]``: listens on
``IOT_LISTEN_ADDR`` (else ``IOT_<NAME>_ADDR``) like the real service, serves
only the standard health service, and on SIGTERM reports NOT_SERVING and stops, as the real ones do.
Options make it misbehave in the ways the launcher must handle.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from pathlib import Path

from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


def write_pid(name: str) -> None:
    """Leave this process's id where the test can check that it is gone; written whole
    or not at all (a rename), since the test reads it while a restarted child writes it."""
    directory = os.environ.get("FAKE_PID_DIR")
    if directory:
        written = Path(directory, f"{name}.pid.tmp")
        written.write_text(str(os.getpid()))
        os.replace(written, Path(directory, f"{name}.pid"))


def listen_address(name: str) -> tuple[str, int]:
    """Where this fake listens, and which replica (from 1) of its service that makes it."""
    listed = os.environ[f"IOT_{name.upper()}_ADDR"].split(",")
    address = os.environ.get("IOT_LISTEN_ADDR") or listed[0]
    return address, listed.index(address) + 1 if address in listed else 1


async def serve(args: argparse.Namespace) -> int:
    """Serve health until SIGTERM/SIGINT (or ``--exit-after``); answers the exit status."""
    address, _ = listen_address(args.name)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await asyncio.sleep(args.delay)
    server = aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    server.add_insecure_port(address)
    await server.start()
    status = health_pb2.HealthCheckResponse.NOT_SERVING
    if not args.not_serving:
        status = health_pb2.HealthCheckResponse.SERVING
    await servicer.set("", status)
    try:
        await asyncio.wait_for(stop.wait(), timeout=args.exit_after)
    except TimeoutError:
        await server.stop(0)
        return 7
    await servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    await server.stop(0.5)
    return 0


def main() -> int:
    """Parse the options and serve."""
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before listening")
    parser.add_argument("--exit-after", type=float, default=None, help="crash after serving")
    parser.add_argument("--ignore-term", action="store_true", help="ignore SIGTERM")
    parser.add_argument("--not-serving", action="store_true", help="never report SERVING")
    args = parser.parse_args()
    # A replica after the first is named as the launcher names it.
    _, replica = listen_address(args.name)
    write_pid(args.name if replica == 1 else f"{args.name}-{replica}")
    return asyncio.run(serve(args))


if __name__ == "__main__":
    raise SystemExit(main())
