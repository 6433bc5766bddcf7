"""The gateway's per-route series: labelled by route template, never by raw path."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from gw_support import Fakes, Probe, gateway_methods

from gateway.app import build_app
from gateway.metrics import UNMATCHED
from gateway.serve import start_gateway, stop_gateway
from iotkit.config import Settings
from tests.scrape import label_values, scrape, total


@pytest.fixture
async def served(fakes: Fakes, probe: Probe) -> AsyncIterator[tuple[httpx.AsyncClient, int]]:
    """A gateway with its metrics on a free port: a client of it and that port."""
    settings = Settings(
        addresses={"auth": fakes.address, "devices": fakes.address},
        metrics_addresses={"gateway": "127.0.0.1:0"},
    )
    app = build_app(settings, methods=gateway_methods(probe))
    server, port, task = await start_gateway(settings, "127.0.0.1", 0, app=app)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            metrics_port = app.state.metrics.port
            assert metrics_port
            yield http, metrics_port
    finally:
        await stop_gateway(server, task)


async def test_routes_are_labelled_by_template(served: tuple[httpx.AsyncClient, int]) -> None:
    http, metrics_port = served
    for thing in ("abc123", "zzz987"):
        assert (await http.get(f"/v1/things/{thing}")).status_code == 200
    assert (await http.post("/v1/locks/hunter2secret:unlock")).status_code < 500
    assert (await http.get("/no/such/path/qq42")).status_code == 404

    samples = await scrape(metrics_port)
    routes = label_values(samples, "iot_http_requests_total", "route")
    assert "/v1/things/{thing_id}" in routes
    assert UNMATCHED in routes
    assert (
        total(samples, "iot_http_requests_total", route="/v1/things/{thing_id}", status="200") == 2
    )
    assert (
        total(samples, "iot_http_request_duration_seconds_count", route="/v1/things/{thing_id}")
        == 2
    )
    # No raw path, id or path secret becomes a label value.
    for raw in ("abc123", "zzz987", "hunter2secret", "qq42"):
        assert not any(raw in route for route in routes), routes


async def test_metrics_are_off_unless_asked(fakes: Fakes, probe: Probe) -> None:
    settings = Settings(addresses={"auth": fakes.address, "devices": fakes.address})
    app = build_app(settings, methods=gateway_methods(probe))
    server, _, task = await start_gateway(settings, "127.0.0.1", 0, app=app)
    try:
        assert app.state.metrics.port is None
    finally:
        await stop_gateway(server, task)
