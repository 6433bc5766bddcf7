"""One traced request through the gateway, auth and devices, run in a process of its own.

``python -m tests.service.trace_run DIR [KIND]`` installs a tracer provider that keeps
spans in memory, starts auth and devices (with their real wiring) and a gateway, asks
the gateway for the system status (auth asks devices for its diagnostics), and prints
one JSON object: every span and every ``iotkit.rpc`` log line as the JSON formatter
writes it. A process of its own because OpenTelemetry's tracer provider is global and
set once: the other tests of a run must not trace.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from iotkit import tracing
from iotkit.logs import JsonFormatter

REQUEST_ID = "trace-run-1"


async def run(directory: Path, kind: str) -> dict[str, Any]:
    """Make the request; answers the spans and log lines."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonFormatter("trace-run"))
    logging.getLogger("iotkit.rpc").addHandler(handler)
    logging.getLogger("iotkit.rpc").setLevel(logging.INFO)

    # Imported after the provider is installed, as a process's __main__ would configure it.
    from gateway.app import build_app
    from gateway.serve import start_gateway, stop_gateway
    from tests.conftest import open_backend, start_suite

    with open_backend(kind, directory) as backend:
        suite = await start_suite(backend, ("auth", "devices"))
        app = build_app(suite.settings)
        server, port, task = await start_gateway(suite.settings, "127.0.0.1", 0, app=app)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                answer = await http.get("/v1/system/status", headers={"X-Request-Id": REQUEST_ID})
                answer.raise_for_status()
        finally:
            await stop_gateway(server, task)
            await suite.aclose()
    spans = [
        {
            "name": span.name,
            "kind": span.kind.name,
            "trace_id": format(span.context.trace_id, "032x"),
            "span_id": format(span.context.span_id, "016x"),
            "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
        }
        for span in exporter.get_finished_spans()
    ]
    logs = [json.loads(line) for line in lines.getvalue().splitlines() if line.strip()]
    return {"spans": spans, "logs": logs}


if __name__ == "__main__":
    print(
        json.dumps(
            asyncio.run(run(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "sqlite"))
        )
    )
