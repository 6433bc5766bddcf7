"""Correlation in a real browser: two streams of a device picked in the form, a window
without readings refused with the error beside its field, then the result of the last
hour with its scatter, reached again by its deep link."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from tests.browser.conftest import Console
from tests.browser.steps import new_account, new_device, sign_in

READINGS = 300


async def upload(console: Console, device_id: str, token: str, metric: str, scale: float) -> None:
    """Readings at 1 Hz ending a minute ago: a slow wave, times ``scale`` plus a wobble."""
    first = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=READINGS + 60)
    readings = [
        {
            "timestamp": (first + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
            "value": scale * math.sin(i / 20) + 0.05 * ((i * 7) % 5),
        }
        for i in range(READINGS)
    ]
    stored = await console.http.post(
        f"/v1/devices/{device_id}/readings",
        headers={"authorization": f"Bearer {token}"},
        json={"metric_name": metric, "readings": readings},
    )
    assert stored.status_code == 200, stored.text


async def test_two_streams_are_correlated_with_a_scatter(console: Console) -> None:
    page = console.page
    email = await new_account(console)
    who, device_id = await new_device(console, email, "Boiler", "temperature")
    issued = await console.http.post(f"/v1/devices/{device_id}/credentials", headers=who, json={})
    token = issued.json()["data"]["token"]
    await upload(console, device_id, token, "temperature", 3.0)
    await upload(console, device_id, token, "pressure", 1.5)
    await sign_in(console, email)

    await page.get_by_role("link", name="Correlations").click()
    form = page.locator("#correlation-form")
    await form.get_by_label("First stream").select_option(label="Boiler · temperature")
    await form.get_by_label("Second stream").select_option(label="Boiler · pressure")
    # A window without readings: the error is told beside the field it is about.
    await form.locator("select[name=window]").select_option("custom")
    last_year = datetime.now() - timedelta(days=365)
    local = "%Y-%m-%dT%H:%M"
    await form.get_by_label("From", exact=True).fill(last_year.strftime(local))
    await form.get_by_label("To", exact=True).fill((last_year + timedelta(hours=1)).strftime(local))
    await form.get_by_role("button", name="Correlate").click()
    await form.locator(".field-error").first.wait_for()
    assert await form.locator("[aria-invalid=true]").count() >= 1
    await console.screenshot("correlation-refused")
    console.forgive(400)

    await form.locator("select[name=window]").select_option("1h")
    await form.get_by_label("Algorithm").select_option("pearson")
    await form.get_by_role("button", name="Correlate").click()
    await page.wait_for_url("**/#/correlations/*")
    coefficient = page.locator("#coefficient")
    await coefficient.wait_for()
    assert float(await coefficient.text_content() or "0") > 0.9
    scatter = page.locator("#scatter[data-points] canvas")
    await scatter.wait_for()
    assert int(await page.locator("#scatter").get_attribute("data-points") or "0") >= 10
    both = "Boiler · temperature \N{MULTIPLICATION SIGN} Boiler · pressure"
    await page.get_by_role("heading", name=both).wait_for()
    await console.screenshot("correlation")
    await page.set_viewport_size({"width": 390, "height": 844})
    await console.screenshot("correlation-phone")
    await page.set_viewport_size({"width": 1280, "height": 900})

    # Back returns to the form, whose list of past results links the result again.
    result_url = page.url
    await page.go_back()
    await page.locator("#correlation-table").get_by_role("link").first.click()
    await page.wait_for_url(result_url)
    await coefficient.wait_for()
