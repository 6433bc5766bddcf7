"""Schemathesis over ``/openapi.json``: every route, signed in and not, with every check.

A real suite on SQLite runs in this test's event loop behind a real gateway;
the ``st`` command line fuzzes it from a subprocess (so that the loop keeps
serving meanwhile), deterministically and with few examples per operation so
that the run is reproducible and bounded. Signed in, a hook (``st_hooks``)
keeps a live token on every request. Any failure of any check fails the test,
with Schemathesis's report (and the curl command reproducing each failure).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from iotkit.config import Settings
from tests.conftest import Backend, suite_with_gateway
from tests.support import PASSWORD, new_email, rest_login

MAX_EXAMPLES = 2
"""Test cases per operation and phase: enough to find disagreements, bounded in time."""

RUN_TIMEOUT_SECONDS = 600

CONFIG = Path(__file__).with_name("schemathesis.toml")
"""The cross-field and state rules no schema can state, each named (see the file)."""


async def _schemathesis(base_url: str, workdir: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run ``st run`` over the gateway's document; answers its exit status and its output."""
    st = Path(sys.executable).with_name("st")
    args = [
        str(st),
        f"--config-file={CONFIG}",
        "run",
        f"{base_url}/openapi.json",
        "--checks=all",
        f"--max-examples={MAX_EXAMPLES}",
        "--generation-deterministic",
        "--workers=1",
        "--no-color",
        "--suppress-health-check=all",
    ]
    process = await asyncio.create_subprocess_exec(
        *args,
        cwd=workdir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false", **env},
    )
    output, _ = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT_SECONDS)
    assert process.returncode is not None
    return process.returncode, output.decode("utf-8", "replace")


# Past the suite's default 120 s: a loaded 2-core machine may take minutes over ~6,500 cases.
@pytest.mark.timeout(RUN_TIMEOUT_SECONDS + 60)
async def test_schemathesis_finds_nothing_signed_in_or_not(tmp_path: Path) -> None:
    backend = Backend("sqlite", Settings(data_dir=tmp_path / "data"), "")
    # Thousands of requests from one client and token in a minute or two: no rate limits.
    async with suite_with_gateway(
        backend, gateway_rate_per_client=0, gateway_rate_per_token=0
    ) as (_, http):
        base_url = str(http.base_url).rstrip("/")
        email = new_email()
        await rest_login(http, email)
        signed_in = {
            "SCHEMATHESIS_HOOKS": "st_hooks",
            "PYTHONPATH": str(Path(__file__).parent),
            "IOT_ST_BASE_URL": base_url,
            "IOT_ST_EMAIL": email,
            "IOT_ST_PASSWORD": PASSWORD,
        }
        # Both runs at once, against the same suite: half the wall time of one after the other.
        (tmp_path / "anonymous").mkdir()
        (tmp_path / "signed_in").mkdir()
        runs = await asyncio.gather(
            _schemathesis(base_url, tmp_path / "anonymous", {}),
            _schemathesis(base_url, tmp_path / "signed_in", signed_in),
        )
    report = os.environ.get("IOT_TEST_SCHEMATHESIS_REPORT")
    for name, (_, output) in zip(("anonymous", "signed_in"), runs, strict=True):
        if report:  # where to keep the whole report, for a developer fixing what it found
            Path(report).with_suffix(f".{name}.txt").write_text(output)
    for status, output in runs:
        assert status == 0, output
