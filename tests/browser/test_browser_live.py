"""A stream's chart in live mode, in a real browser: with Live on, readings uploaded
batch after batch are appended to the chart as they are stored, and leaving the screen
ends the watch."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.browser.conftest import Console
from tests.browser.steps import new_account, new_device, sign_in

HISTORY = 60
BATCHES, PER_BATCH = 5, 20


def readings(first: datetime, start: int, count: int) -> list[dict[str, Any]]:
    """``count`` readings one second apart from ``first`` + ``start`` seconds."""
    return [
        {
            "timestamp": (first + timedelta(seconds=start + i)).isoformat().replace("+00:00", "Z"),
            "value": 20.0 + (start + i) % 10,
        }
        for i in range(count)
    ]


async def upload(
    console: Console, who: dict[str, str], device_id: str, readings: list[dict[str, Any]]
) -> str:
    """Store readings as the device's owner; answers the stream id."""
    stored = await console.http.post(
        f"/v1/devices/{device_id}/readings",
        headers=who,
        json={"metric_name": "temperature", "readings": readings},
    )
    assert stored.status_code == 200, stored.text
    return str(stored.json()["data"]["stream_ids"][0])


async def test_live_mode_appends_stored_readings_and_stops_with_the_screen(
    console: Console,
) -> None:
    first = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=300)
    email = await new_account(console)
    who, device_id = await new_device(console, email, "Oven", "temperature")
    page = console.page
    stream_id = await upload(console, who, device_id, readings(first, 0, HISTORY))
    await sign_in(console, email)
    await console.open(f"/streams/{stream_id}?range=1h")
    chart = page.locator("#stream-chart")
    await page.locator(f"#stream-chart[data-points='{HISTORY}']").wait_for()

    watches: list[Any] = []
    page.on("request", lambda r: watches.append(r) if "readings:watch" in r.url else None)
    aborted: list[str] = []
    page.on("requestfailed", lambda r: aborted.append(r.url) if "readings:watch" in r.url else None)
    await page.get_by_label("Live").check()
    await page.locator("#live-state", has_text="live").wait_for()
    # The watch resumes after the newest reading drawn: nothing between is lost.
    assert len(watches) == 1 and "last_event_id=" in watches[0].url

    for n in range(BATCHES):
        await upload(console, who, device_id, readings(first, HISTORY + n * PER_BATCH, PER_BATCH))
        await asyncio.sleep(0.2)
    total = HISTORY + BATCHES * PER_BATCH
    await page.locator(f"#stream-chart[data-points='{total}']").wait_for()
    await page.locator("#live-state", has_text=f"{BATCHES * PER_BATCH} new").wait_for()
    assert await chart.get_attribute("data-points") == str(total)
    await console.screenshot("chart-live")

    # Leaving the screen ends the watch: its request is aborted, no new one starts.
    await page.get_by_role("link", name="Devices").first.click()
    await page.wait_for_url("**/#/devices")
    for _ in range(50):
        if aborted:
            break
        await asyncio.sleep(0.1)
    assert aborted and len(watches) == 1
