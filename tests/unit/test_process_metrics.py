"""A process's metrics endpoint: served only when asked, and a taken port said plainly."""

from __future__ import annotations

import socket
from contextlib import closing

import pytest

from iotkit.config import ConfigError
from iotkit.metrics import ProcessMetrics


async def test_a_taken_metrics_port_is_a_configuration_error_naming_the_variable() -> None:
    with closing(socket.socket()) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        metrics = ProcessMetrics("telemetry")
        with pytest.raises(ConfigError, match=f"IOT_TELEMETRY_METRICS_ADDR: .*127.0.0.1:{port}"):
            metrics.start(f"127.0.0.1:{port}")
        await metrics.aclose()


async def test_no_address_serves_nothing_and_runs_no_sampler() -> None:
    reads = 0

    async def read() -> float:
        nonlocal reads
        reads += 1
        return 1.0

    metrics = ProcessMetrics("auth")
    metrics.sampled_gauge("iot_test_depth", "A depth.", read, period=0.01)
    metrics.start(None)
    assert metrics.port is None
    await metrics.aclose()
    assert reads == 0
