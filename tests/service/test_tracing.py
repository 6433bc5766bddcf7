"""With tracing on, one request is one trace from the gateway through auth to devices,
and the log lines of its calls, in each service, carry that trace's id and the request's id.

Runs ``tests/service/trace_run.py`` in a process of its own (OpenTelemetry's tracer
provider is global: no other test may trace), on SQLite: what is checked is how
context travels, not storage.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from iotkit.tracing import UNTRACED_METHODS
from tests.service.trace_run import REQUEST_ID

ROOT = Path(__file__).resolve().parents[2]
STATUS = "/iot.system.v1.SystemService/GetSystemStatus"
PROBE = "/iot.system.v1.DiagnosticsService/GetProcessStatus"


def traced_run(tmp_path: Path) -> dict[str, Any]:
    """The spans and ``iotkit.rpc`` log lines of one status request (see trace_run)."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.service.trace_run", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_a_request_is_one_trace_across_gateway_and_services(tmp_path: Path) -> None:
    run = traced_run(tmp_path)
    spans = {(s["name"], s["kind"]): s for s in run["spans"]}
    root = spans["GET /v1/system/status", "SERVER"]  # named by route template
    status = spans[STATUS, "SERVER"]
    asked, answered = spans[PROBE, "CLIENT"], spans[PROBE, "SERVER"]
    assert root["parent_id"] is None
    assert status["parent_id"] == root["span_id"]  # the gateway's context reached auth
    assert asked["parent_id"] == status["span_id"]  # auth's call to devices is its child
    assert answered["parent_id"] == asked["span_id"]  # and reached devices
    assert {s["trace_id"] for s in (root, status, asked, answered)} == {root["trace_id"]}
    # Health checks and the revocation poll make no spans.
    assert not [s for s in run["spans"] if s["name"].startswith("/grpc.health.")]
    assert not [s for s in run["spans"] if s["name"] in UNTRACED_METHODS]

    (line,) = [entry for entry in run["logs"] if entry.get("method") == STATUS]
    assert (line["request_id"], line["trace_id"]) == (REQUEST_ID, root["trace_id"])
    probed = [entry for entry in run["logs"] if entry.get("method") == PROBE]
    assert probed
    for entry in probed:  # devices' line of auth's call: the same trace and request
        assert (entry["request_id"], entry["trace_id"]) == (REQUEST_ID, root["trace_id"])
    assert all("trace_id" not in e for e in run["logs"] if e["method"].startswith("/grpc.health."))
