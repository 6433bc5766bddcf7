"""A stand-in for the REST gateway, for launcher tests.

Serves ``GET /healthz`` with 200 on ``IOT_GATEWAY_HOST``:``IOT_GATEWAY_PORT``
using only the standard library, and exits cleanly on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType


class Handler(BaseHTTPRequestHandler):
    """Answers /healthz; everything else is 404."""

    def do_GET(self) -> None:
        """200 with a tiny JSON body on /healthz."""
        if self.path != "/healthz":
            self.send_error(404)
            return
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet: the probes would fill the test output."""


def _exit(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def main() -> None:
    """Serve until SIGTERM."""
    directory = os.environ.get("FAKE_PID_DIR")
    if directory:  # written whole or not at all, as the services' fakes do
        written = Path(directory, "gateway.pid.tmp")
        written.write_text(str(os.getpid()))
        os.replace(written, Path(directory, "gateway.pid"))
    signal.signal(signal.SIGTERM, _exit)
    host = os.environ.get("IOT_GATEWAY_HOST", "127.0.0.1")
    port = int(os.environ.get("IOT_GATEWAY_PORT", "8080"))
    with ThreadingHTTPServer((host, port), Handler) as server:
        server.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    main()
