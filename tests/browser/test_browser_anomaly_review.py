"""Reviewing anomalies while devices stream: a new anomaly arriving live neither clears
the rows ticked for a bulk review nor floods the server, and the export saves what the
filters show."""

from __future__ import annotations

import json
from pathlib import Path

from tests.browser.conftest import Console
from tests.browser.steps import device_token, new_account, new_device, sign_in
from tests.browser.test_browser_chart import upload


async def test_a_live_anomaly_keeps_the_ticked_rows_and_the_export_keeps_the_filters(
    console: Console,
) -> None:
    page = console.page
    email = await new_account(console)
    who, kiln = await new_device(console, email, "Kiln", "temperature")
    _, oven = await new_device(console, email, "Oven", "temperature")
    await upload(console, kiln, await device_token(console, who, kiln))
    await sign_in(console, email)
    await page.get_by_role("link", name="Anomalies").click()
    rows = page.locator("#anomaly-table tbody tr")
    await rows.first.wait_for()
    await page.get_by_text("live", exact=True).wait_for()
    await rows.first.get_by_role("checkbox").check()
    await page.get_by_role("button", name="Confirm selected (1)").wait_for()

    lists: list[str] = []
    page.on("request", lambda r: lists.append(r.url) if "/v1/anomalies?" in r.url else None)
    await upload(console, oven, await device_token(console, who, oven))
    await page.locator("#live-anomalies li").first.wait_for()
    await rows.nth(1).wait_for()  # the table asked again and shows both
    # The tick survived the reload (it used to be cleared by every live anomaly).
    await page.get_by_role("button", name="Confirm selected (1)").wait_for()
    # Each row and live item says which device it is about, by name.
    await rows.filter(has_text="Oven").get_by_role("link", name="Oven").wait_for()
    await rows.filter(has_text="Kiln").get_by_role("link", name="Kiln").wait_for()
    await page.locator("#live-anomalies li", has_text="Oven").wait_for()
    assert len(lists) <= 2, lists
    await console.screenshot("ticked-through-a-live-anomaly")

    # The export saves the filtered rows, not every anomaly of the user.
    await page.locator("form.filters").get_by_label("Type").select_option("gap")
    await page.get_by_text("No anomaly matches.").wait_for()
    async with page.expect_download() as downloading:
        await page.get_by_role("button", name="Export JSON").click()
    assert json.loads(Path(await (await downloading.value).path()).read_text()) == []
    await page.locator("form.filters").get_by_label("Type").select_option("spike")
    await rows.nth(1).wait_for()
    async with page.expect_download() as downloading:
        await page.get_by_role("button", name="Export JSON").click()
    saved = json.loads(Path(await (await downloading.value).path()).read_text())
    assert {row["anomaly_type"] for row in saved} == {"spike"} and len(saved) == 2
