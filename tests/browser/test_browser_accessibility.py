"""What an accessibility audit (axe-core, and by hand) found, held in place: live updates
announced without flooding (a live chart by its state, live anomalies together), charts
named and described by their text, status badges readable (4.5:1), a focus ring that
stands out (3:1), tables that scroll sideways reachable by keyboard, and no sideways
scroll on a 320 px page."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

from playwright.async_api import expect

from tests.browser.conftest import Console
from tests.browser.steps import device_token, new_account, new_device, sign_in
from tests.browser.test_browser_chart import upload as upload_with_spike
from tests.browser.test_browser_chart_edges import (
    BATCH,
    HISTORY,
    readings,
    signed_in_with_history,
)
from tests.browser.test_browser_live import upload

# WCAG's relative luminance of a CSS colour and the contrast of two luminances.
WCAG_JS = """
  const rgb = (text) => text.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = (c) => {
    const [r, g, b] = c.map((v) => v / 255)
      .map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const ratio = (a, b) => (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
"""

# The contrast of an element's text on its own background (both opaque).
CONTRAST_JS = f"""(element) => {{{WCAG_JS}
  const style = getComputedStyle(element);
  return ratio(lum(rgb(style.color)), lum(rgb(style.backgroundColor)));
}}"""

# The contrast of the element's focus ring on the page and on a card, the lower
# (WCAG 2.1 1.4.11 asks 3:1 of a focus indicator).
FOCUS_RING_CONTRAST_JS = f"""(element) => {{{WCAG_JS}
  const ring = lum(rgb(getComputedStyle(element).outlineColor));
  const page = lum(rgb(getComputedStyle(document.body).backgroundColor));
  return Math.min(ratio(ring, page), ratio(ring, lum([255, 255, 255])));
}}"""


async def in_live_region(console: Console, selector: str) -> bool:
    """Whether the element, or one around it, is a live region."""
    return bool(
        await console.page.locator(selector).evaluate(
            "(e) => Boolean(e.closest('[aria-live], [role=status], [role=log], [role=alert]'))"
        )
    )


async def test_a_live_chart_announces_its_state_not_each_batch_and_is_described(
    console: Console,
) -> None:
    page = console.page
    who, device_id, stream_id, times = await signed_in_with_history(console)
    await console.open(f"/streams/{stream_id}?range=1h")
    await page.locator(f"#stream-chart[data-points='{HISTORY}']").wait_for()

    # The chart is a figure named after its metric and described by the window and stats.
    chart = page.get_by_role("figure", name="Chart of temperature")
    await expect(chart).to_have_attribute("aria-describedby", "shown-window stream-stats")
    await expect(page.locator("#stream-stats")).to_contain_text(f"Readings{HISTORY}")

    announcer = page.get_by_role("status").and_(page.locator("#live-announcer"))
    await expect(announcer).to_have_text("")
    await page.get_by_label("Live").check()
    await expect(announcer).to_have_text("Live: new readings are being added to the chart")
    await expect(chart).to_have_accessible_description(re.compile(r"\(live\)"))
    # The count of new readings changes with every batch: shown, not announced.
    assert not await in_live_region(console, "#live-state")
    said: list[str] = []
    await page.expose_function("said", lambda text: said.append(text))
    await page.evaluate(
        "() => new MutationObserver(() => window.said(document.getElementById('live-announcer')"
        ".textContent)).observe(document.getElementById('live-announcer'),"
        " { childList: true, characterData: true, subtree: true })"
    )
    start = times[-1] + timedelta(seconds=60)
    for round_ in range(3):
        first = start + timedelta(seconds=round_ * BATCH)
        await upload(console, who, device_id, readings(first, BATCH))
        await expect(page.locator("#live-state")).to_contain_text(f"{(round_ + 1) * BATCH} new")
    assert said == []
    await page.get_by_label("Live").uncheck()
    await expect(announcer).to_have_text("Live off")

    # The wheel's hint (invisible until the wheel turns) may not widen a 320 px page.
    await page.set_viewport_size({"width": 320, "height": 640})
    await asyncio.sleep(0.3)
    assert await page.evaluate(
        "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )


async def test_live_anomalies_are_announced_together_and_badges_are_readable(
    console: Console,
) -> None:
    page = console.page
    email = await new_account(console)
    who, kiln = await new_device(console, email, "Kiln", "temperature")
    await sign_in(console, email)
    # The status badge of an active device: 4.5:1 at its small size (it was 4.3).
    badge = page.locator("#device-table .badge.status-active").first
    await badge.wait_for()
    assert await badge.evaluate(CONTRAST_JS) >= 4.5

    await page.get_by_role("link", name="Anomalies").click()
    await page.get_by_text("live", exact=True).wait_for()
    assert await page.locator(".badge.live-live").evaluate(CONTRAST_JS) >= 4.5
    said = page.locator("#live-anomalies-said")
    await expect(said).to_have_attribute("role", "status")
    await expect(said).to_have_text("")
    await upload_with_spike(console, kiln, await device_token(console, who, kiln))
    await page.locator("#live-anomalies li").first.wait_for()
    # The list itself is no live region (each item, and each name filled in, would be
    # read as it came); the summary names the newest, by its device's name.
    assert not await in_live_region(console, "#live-anomalies")
    await expect(said).to_have_text(
        re.compile(r"^(New anomaly: |\d+ new anomalies; the latest: )\w+ on Kiln at ")
    )


async def test_a_table_that_scrolls_sideways_is_a_named_region_reached_by_keyboard(
    console: Console,
) -> None:
    page = console.page
    await page.set_viewport_size({"width": 390, "height": 844})
    await console.open("/status")
    box = page.locator("#status-checks .table-scroll")
    await box.locator("tbody tr").first.wait_for()
    await expect(box).to_have_attribute("role", "region")
    await expect(box).to_have_accessible_name(re.compile(r"\S \(scrolls sideways\)$"))
    await expect(box).to_have_attribute("tabindex", "0")
    # Reached by Tab, and scrolled by the arrow keys.
    for _ in range(30):
        await page.keyboard.press("Tab")
        if await box.evaluate("(e) => e === document.activeElement"):
            break
    else:
        raise AssertionError("Tab never reaches the table that scrolls")
    assert await box.evaluate(FOCUS_RING_CONTRAST_JS) >= 3  # the yellow ring was 1.8:1
    await page.keyboard.press("ArrowRight")
    await page.wait_for_function(
        "() => document.querySelector('#status-checks .table-scroll').scrollLeft > 0"
    )
    # Where the table fits, it is no Tab stop of its own.
    await page.set_viewport_size({"width": 1280, "height": 900})
    await page.locator("h1 a").focus()
    await expect(box).not_to_have_attribute("tabindex", "0")
    await expect(page.get_by_role("region", name="(scrolls sideways)")).to_have_count(0)
