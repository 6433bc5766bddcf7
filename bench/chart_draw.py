"""How fast the console draws the chart of 1,000,000 readings, from the click.

Auth, devices, telemetry and the gateway run as their own processes on SQLite
(:mod:`bench.services`); 1,000,000 readings of one stream (1 kHz for 1,000 s,
ending a few minutes ago) are stored through ``StreamReadings`` in batches of
1,000 from another process (:mod:`bench.load`). Debian's chromium, headless
and driven by Playwright, signs in through the console and opens the stream's
chart in a 1280x900 window. Each round clicks the "1h" preset (an empty window),
then "All", the whole range; the console marks the click
(``performance.mark``) and uPlot's first draw of the answer's data, and
measures between them (``chart:asked-to-drawn``, see ``gateway/static/js/chart.js``):
the request, the server's query and downsampling, the JSON, the screen's
rendering and uPlot's draw. The baseline, in the same page and run, is the
same request alone: the data URL the chart asked for, fetched with ``fetch``
and parsed, with nothing drawn.

Opt-in (``--only chart``): it needs ``/usr/bin/chromium`` and Playwright (the
dev extras), as the browser tests do.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from bench.fleet import EMAIL, PASSWORD, make_fleet
from bench.load import LoadPlan, run_elsewhere
from bench.report import Figure, JobResult
from bench.services import GATEWAY, running

CHART_TITLE = "15. Console: the chart of 1,000,000 readings, from the click to the draw"
CHROMIUM = Path("/usr/bin/chromium")
READINGS_PER_BATCH = 1_000
BATCHES = 1_000
RATE_HZ = 1_000.0
ROUNDS = 9
TARGET_MS = 300.0
MEASURE = "chart:asked-to-drawn"
TIMEOUT_MS = 60_000

_NEW_MEASURE = f"() => performance.getEntriesByName('{MEASURE}').length > 0"
# The data request the last click made, as the resource timing saw it.
_LAST_DATA = """() => {
  const asked = performance.getEntriesByType('resource').filter((e) => e.name.includes('/data?'));
  const last = asked[asked.length - 1];
  return { url: last.name, ms: last.duration };
}"""
# The same request alone, with the console's token: fetched and parsed, nothing drawn.
_FETCH_ALONE = """async (url) => {
  const started = performance.now();
  const answer = await fetch(url, { headers: {
    Accept: 'application/json',
    Authorization: `Bearer ${sessionStorage.getItem('iot.access_token')}`,
  } });
  const body = await answer.json();
  const ms = performance.now() - started;
  return { ms, points: body.data.data.length, count: body.data.stats.count };
}"""


async def _click_and_measure(page: Any, name: str) -> float:
    """Click the range preset ``name``; answers the console's measure of it, in ms."""
    await page.evaluate("() => performance.clearMeasures()")
    await page.get_by_role("group", name="Range").get_by_role("link", name=name).click()
    await page.wait_for_function(_NEW_MEASURE, timeout=TIMEOUT_MS)
    return float(
        await page.evaluate(f"() => performance.getEntriesByName('{MEASURE}')[0].duration")
    )


async def _in_browser(
    base_url: str, stream_id: str
) -> tuple[list[float], list[float], list[float], dict[str, Any]]:
    """Click-to-draw times, the data request's times within them, the baseline's times,
    and the last answer's shape."""
    from playwright.async_api import async_playwright

    if not CHROMIUM.is_file():
        raise RuntimeError(f"the chart benchmark needs {CHROMIUM} (apt-get install chromium)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
        )
        try:
            page = await (
                await browser.new_context(viewport={"width": 1280, "height": 900})
            ).new_page()
            page.set_default_timeout(TIMEOUT_MS)
            await page.goto(f"{base_url}/#/")
            await page.get_by_label("Email").fill(EMAIL)
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Log in").click()
            await page.wait_for_url("**/#/devices")
            await page.goto(f"{base_url}/#/streams/{stream_id}?range=all")
            await page.locator("#stream-chart[data-points]").wait_for()
            drawn, requests, alone = [], [], []
            shape: dict[str, Any] = {}
            for round_ in range(ROUNDS + 1):  # the first round warms up
                await _click_and_measure(page, "1h")
                took = await _click_and_measure(page, "All")
                last = await page.evaluate(_LAST_DATA)
                shape = await page.evaluate(_FETCH_ALONE, last["url"])
                if round_:
                    drawn.append(took)
                    requests.append(float(last["ms"]))
                    alone.append(float(shape["ms"]))
            shape["points_drawn"] = int(
                await page.locator("#stream-chart").get_attribute("data-points") or 0
            )
        finally:
            await browser.close()
    return drawn, requests, alone, shape


async def measure() -> JobResult:
    """Start the suite, store the readings, chart them; answers the figure."""
    job = JobResult(when="", options="")
    async with running("sqlite", ("auth", "devices", "telemetry", GATEWAY)) as suite:
        fleet = await make_fleet(suite, 1)
        device = fleet.devices[0]
        span_us = int(BATCHES * READINGS_PER_BATCH * 1_000_000 / RATE_HZ)
        plan = LoadPlan(
            address=suite.address("telemetry"),
            devices=(device,),
            batch_size=READINGS_PER_BATCH,
            seconds=0.0,
            warmup=0.0,
            # Ending five minutes ago, so that "All" (first reading to now) is nearly all data.
            start_us=time.time_ns() // 1000 - span_us - 300_000_000,
            rate_hz=RATE_HZ,
            in_flight=8,
            batches=BATCHES,
        )
        loaded = await run_elsewhere(plan)
        if loaded.errors:
            raise RuntimeError(f"storing the readings failed: {loaded.errors[:3]}")
        base_url = f"http://127.0.0.1:{suite.settings.gateway_port}"
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            listed = await http.get(
                f"/v1/devices/{device.device_id}/streams",
                headers={"authorization": f"Bearer {fleet.access_token}"},
            )
            stream_id = str(listed.json()["data"]["streams"][0]["stream_id"])
        drawn, requests, alone, shape = await _in_browser(base_url, stream_id)
    median = statistics.median(drawn)
    job.sections[CHART_TITLE] = [
        Figure(
            'click on "All" to uPlot\'s draw, 1,000,000 readings, median',
            "ms",
            median,
            "the same data request alone in the page (fetch and JSON parse), median",
            statistics.median(alone),
            f"median of {ROUNDS} clicks (after one to warm up), measured in headless chromium "
            f"with performance.mark/measure; {shape['count']:,} readings in the window, "
            f"downsampled by the server to {shape['points']:,} points ({shape['points_drawn']:,} "
            f"drawn); the data request took {statistics.median(requests):.0f} ms of it "
            f"(resource timing); slowest click {max(drawn):.0f} ms",
            lower_is_better=True,
            target=f"< {TARGET_MS:g} ms",
            met=median < TARGET_MS,
        )
    ]
    return job
