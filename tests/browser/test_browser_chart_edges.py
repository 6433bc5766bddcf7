"""A stream's chart and a device's chart at their edges, in a real browser: live mode and
a zoom (the zoom turns live off; the text, the stats and the chart show one window), an
empty window, the detector's bounds emptied, bad windows in the link, and the wheel."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from playwright.async_api import expect

from tests.browser.conftest import Console
from tests.browser.steps import new_account, new_device, sign_in
from tests.browser.test_browser_chart import window_of
from tests.browser.test_browser_live import upload

# A reading every 30 s over most of the last hour, ending 5 minutes ago.
HISTORY, HISTORY_STEP_S = 100, 30
BATCH = 20
# Between the ends of the window the console shows (an en dash).
DASH = "\u2013"


def stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def readings(first: datetime, count: int, step_s: float = 1.0) -> list[dict[str, Any]]:
    """``count`` readings ``step_s`` apart from ``first``."""
    return [
        {"timestamp": stamp(first + timedelta(seconds=i * step_s)), "value": 20.0 + i % 7}
        for i in range(count)
    ]


async def signed_in_with(
    console: Console, kind: str, batch: list[dict[str, Any]]
) -> tuple[dict[str, str], str, str]:
    """An account signed in with one device of ``kind`` whose stream holds ``batch``;
    answers the owner's header, the device and the stream."""
    email = await new_account(console)
    who, device_id = await new_device(console, email, "Oven", kind)
    stream_id = await upload(console, who, device_id, batch)
    await sign_in(console, email)
    return who, device_id, stream_id


async def signed_in_with_history(
    console: Console,
) -> tuple[dict[str, str], str, str, list[datetime]]:
    """The same with HISTORY readings of a temperature over the last hour; answers the
    reading times too."""
    now = datetime.now(UTC).replace(microsecond=0)
    first = now - timedelta(minutes=5, seconds=(HISTORY - 1) * HISTORY_STEP_S)
    who, device_id, stream_id = await signed_in_with(
        console, "temperature", readings(first, HISTORY, HISTORY_STEP_S)
    )
    times = [first + timedelta(seconds=i * HISTORY_STEP_S) for i in range(HISTORY)]
    return who, device_id, stream_id, times


def stat(console: Console, name: str) -> Any:
    """The value of one statistic beside the chart."""
    return console.page.locator(".stats dt", has_text=name).locator(
        "xpath=following-sibling::dd[1]"
    )


def window_in(url: str) -> tuple[int, int]:
    """The from and to (ms) of the console's address."""
    asked = parse_qs(urlsplit(url).fragment.split("?", 1)[1])
    return int(asked["from"][0]), int(asked["to"][0])


async def local_time(console: Console, ms: int) -> str:
    """A time as the console writes it (the browser's locale)."""
    return str(await console.page.evaluate("(ms) => new Date(ms).toLocaleString()", ms))


async def test_zooming_a_live_chart_turns_live_off_and_shows_one_window(console: Console) -> None:
    page = console.page
    who, device_id, stream_id, times = await signed_in_with_history(console)
    await console.open(f"/streams/{stream_id}?range=1h")
    chart = page.locator("#stream-chart")
    await page.locator(f"#stream-chart[data-points='{HISTORY}']").wait_for()

    watches: list[Any] = []
    page.on("request", lambda r: watches.append(r) if "readings:watch" in r.url else None)
    ended: list[str] = []
    page.on("requestfailed", lambda r: ended.append(r.url) if "readings:watch" in r.url else None)
    live = page.get_by_label("Live")
    await live.check()
    await page.locator("#live-state", has_text="live").wait_for()

    # Live readings grow the chart, the stats and the window shown alike.
    start = times[-1] + timedelta(seconds=60)
    await upload(console, who, device_id, readings(start, BATCH))
    await page.locator(f"#stream-chart[data-points='{HISTORY + BATCH}']").wait_for()
    await expect(stat(console, "Readings")).to_have_text(str(HISTORY + BATCH))
    await expect(page.locator("#live-state")).to_contain_text(f"{BATCH} new")
    await expect(page.locator("#shown-window")).to_contain_text("(live)")
    await console.screenshot("live")

    # Zoom in: live mode ends, and the text, the stats and the chart show the zoomed window.
    async with page.expect_response("**/data?*"):
        await page.get_by_role("button", name="Zoom in").click()
    await page.wait_for_url("**from=*")
    await expect(live).not_to_be_checked()
    for _ in range(50):
        if ended:
            break
        await asyncio.sleep(0.1)
    assert ended, "the watch goes on after the zoom"
    low, high = window_in(page.url)
    inside = [t for t in times if low <= t.timestamp() * 1000 < high]
    assert 0 < len(inside) < HISTORY
    await expect(stat(console, "Readings")).to_have_text(str(len(inside)))
    await page.locator(f"#stream-chart[data-points='{len(inside)}']").wait_for()
    shown = f"Showing {await local_time(console, low)} {DASH} {await local_time(console, high)}"
    await expect(page.locator("#shown-window")).to_have_text(shown)
    await console.screenshot("live-zoomed")

    # New readings no longer reach the zoomed chart.
    await upload(console, who, device_id, readings(start + timedelta(seconds=BATCH), BATCH))
    await asyncio.sleep(1.0)
    assert await chart.get_attribute("data-points") == str(len(inside))
    assert len(watches) == 1

    # Ticking Live on the zoomed window goes back to the preset, which ends now.
    await live.check()
    await page.wait_for_function("() => !location.hash.includes('from=')")
    await page.locator("#live-state", has_text="live").wait_for()
    await page.locator(f"#stream-chart[data-points='{HISTORY + 2 * BATCH}']").wait_for()
    await expect(stat(console, "Readings")).to_have_text(str(HISTORY + 2 * BATCH))
    assert len(watches) == 2 and "last_event_id=" in watches[1].url


async def test_an_empty_window_says_so_instead_of_zeros(console: Console) -> None:
    page = console.page
    # Readings of two days ago only: the last hour holds none.
    old = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    _, device_id, stream_id = await signed_in_with(console, "generic", readings(old, 30))

    await console.open(f"/streams/{stream_id}?range=1h")
    await page.locator("#stream-chart[data-points='0']").wait_for()
    await expect(page.locator("#stream-chart .chart-empty")).to_have_text(
        "No readings in this window"
    )
    await expect(stat(console, "Readings")).to_have_text("0")
    for name in ("Min", "Max", "Mean", "Std dev", "First", "Last"):
        await expect(stat(console, name)).to_have_text("—")
    await console.screenshot("stream-empty")

    # All of it has readings: no such message.
    await page.get_by_role("link", name="All", exact=True).click()
    await page.locator("#stream-chart[data-points='30']").wait_for()
    await expect(page.locator(".chart-empty")).to_have_count(0)
    await expect(stat(console, "Readings")).to_have_text("30")

    await console.open(f"/devices/{device_id}/chart?range=1h")
    await page.locator("#device-chart[data-points='0']").wait_for()
    await expect(page.locator("#device-chart .chart-empty")).to_have_text(
        "No readings in this window"
    )
    await expect(page.locator(".stats dd")).to_have_text("no readings")
    await console.screenshot("device-empty")


async def test_emptied_bounds_clear_them_and_field_errors_sit_beside_fields(
    console: Console,
) -> None:
    page = console.page
    _, _, stream_id, _ = await signed_in_with_history(console)
    await console.open(f"/streams/{stream_id}?range=1h")
    detector = page.locator("#detector")
    # A temperature sensor's bounds, -40 to 85, until they are emptied.
    await detector.get_by_text(f"{HISTORY} analysed").wait_for()
    await detector.get_by_text("-40 to 85").wait_for()
    lowest, highest = (
        detector.get_by_label("Lowest possible value"),
        detector.get_by_label("Highest possible value"),
    )
    await lowest.fill("")
    await highest.fill("")
    async with page.expect_request("**/detector") as patched:
        await detector.get_by_role("button", name="Save the detector").click()
    assert (await patched.value).post_data_json == {
        "threshold": 0.5,
        "min_value": "-Infinity",
        "max_value": "Infinity",
    }
    await detector.get_by_text("none to none").wait_for()
    await page.reload()
    await detector.get_by_text("none to none").wait_for()
    await expect(lowest).to_have_value("")
    await expect(highest).to_have_value("")

    # One bound again, then a pair the wrong way round: the error sits beside its field.
    await lowest.fill("-10")
    await detector.get_by_role("button", name="Save the detector").click()
    await detector.get_by_text("-10 to none").wait_for()
    await lowest.fill("50")
    await highest.fill("5")
    await detector.get_by_role("button", name="Save the detector").click()
    beside = detector.locator("label", has_text="Highest possible value").locator(".field-error")
    await expect(beside).to_have_text("max_value must be above min_value")
    await expect(highest).to_have_attribute("aria-invalid", "true")
    await expect(detector.locator(".message li")).to_have_count(0)
    console.forgive(400)
    await console.screenshot("detector-error")


async def test_bad_windows_in_the_link_show_the_default_range(console: Console) -> None:
    page = console.page
    _, device_id, stream_id, _ = await signed_in_with_history(console)
    for query, said, preset in (
        ("from=abc&to=def", "from=abc to=def is not a time window: showing All instead", "All"),
        ("range=1h&from=2000000000000&to=1000000000000", "is not a time window: showing 1h", "1h"),
        ("from=1000", "from=1000 to= is not a time window", "All"),
        ("range=toString", "range=toString is not one of", "All"),
    ):
        await console.open(f"/streams/{stream_id}?{query}")
        await expect(page.locator("#range-note")).to_contain_text(said)
        await page.locator(f"#stream-chart[data-points='{HISTORY}']").wait_for()
        await expect(page.get_by_role("button", name="Zoom in")).to_be_enabled()
        current = page.get_by_role("link", name=preset, exact=True)
        await expect(current).to_have_attribute("aria-current", "true")
    await console.screenshot("stream-bad-window")

    # Zooming from there asks for a good window, and the note goes.
    async with page.expect_response("**/data?*"):
        await page.get_by_role("button", name="Zoom in").click()
    await page.wait_for_url("**from=*")
    await expect(page.locator("#range-note")).to_have_count(0)

    await console.open(f"/devices/{device_id}/chart?from=abc&to=def")
    await expect(page.locator("#range-note")).to_contain_text("is not a time window")
    await page.locator(f"#device-chart[data-points='{HISTORY}']").wait_for()
    await page.locator(".stats").get_by_text("20 to 26").wait_for()
    await console.screenshot("device-bad-window")


async def test_ctrl_and_the_wheel_zoom_about_the_pointer_asking_once(console: Console) -> None:
    page = console.page
    _, _, stream_id, _ = await signed_in_with_history(console)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/data?" in r.url else None)
    await console.open(f"/streams/{stream_id}?range=1h")
    await page.locator(f"#stream-chart[data-points='{HISTORY}']").wait_for()
    plot = page.locator("#stream-chart .chart-values .u-over")
    await plot.scroll_into_view_if_needed()

    # A plain wheel scrolls the page as ever, and the hint says how to zoom.
    box = await plot.bounding_box()
    assert box is not None
    await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await page.mouse.wheel(0, 40)
    await expect(page.locator("#stream-chart .chart-hint")).to_have_class("chart-hint shown")
    await asyncio.sleep(0.5)
    assert "from=" not in page.url and len(asked) == 1

    # Ctrl and three notches towards you, at three quarters of the width: the chart asks
    # the server once, when the wheel pauses, for a window about the pointer.
    before = await page.locator("#shown-window").text_content()
    box = await plot.bounding_box()
    assert box is not None
    await page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2)
    await page.keyboard.down("Control")
    for _ in range(3):
        await page.mouse.wheel(0, -100)
        await asyncio.sleep(0.05)
    await page.keyboard.up("Control")
    await page.wait_for_url("**from=*")
    await page.wait_for_function(
        "() => performance.getEntriesByName('chart:asked-to-drawn').length === 1"
    )
    await asyncio.sleep(0.5)
    assert len(asked) == 2, asked
    low, high = window_in(page.url)
    start, end = (moment.timestamp() * 1000 for moment in window_of(asked[0]))
    pointer = start + 0.75 * (end - start)
    # exp(-300 / 300): about 37 % of the hour, with the pointer's time where it was.
    assert 0.3 < (high - low) / (end - start) < 0.45
    assert abs((pointer - low) / (high - low) - 0.75) < 0.03
    assert await page.locator("#shown-window").text_content() != before
    await console.screenshot("wheel-zoomed")


async def test_a_long_live_view_is_thinned_over_its_whole_window(console: Console) -> None:
    page = console.page
    now = datetime.now(UTC).replace(microsecond=0)
    history = readings(now - timedelta(minutes=55), 3000)
    who, device_id, stream_id = await signed_in_with(console, "temperature", history)
    await console.open(f"/streams/{stream_id}?range=1h")
    await expect(stat(console, "Readings")).to_have_text("3000")
    shown = await page.locator("#shown-window").text_content()
    assert shown
    start = shown.split(f" {DASH} ")[0]
    await page.get_by_label("Live").check()
    await page.locator("#live-state", has_text="live").wait_for()

    # Past 5,000 points the chart halves its resolution instead of dropping the oldest:
    # it still starts where the window starts, and the stats count every reading.
    await upload(console, who, device_id, readings(now - timedelta(minutes=4), 4000, 0.05))
    await expect(stat(console, "Readings")).to_have_text("7000")
    points = int(await page.locator("#stream-chart").get_attribute("data-points") or 0)
    assert 1000 < points < 4000, points
    await expect(page.locator("#shown-window")).to_contain_text(f"{start} {DASH} ")
    await console.screenshot("live-thinned")
