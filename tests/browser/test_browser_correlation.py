"""Correlation in a real browser: two streams of a device picked in the form, a window
without readings refused with the error beside its field, then the result of the last
hour with its scatter, reached again by its deep link."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta

from tests.browser.conftest import Console
from tests.browser.steps import device_token, new_account, new_device, sign_in

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
    token = await device_token(console, who, device_id)
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


async def test_a_stream_beyond_the_first_hundred_devices_is_found_by_name(console: Console) -> None:
    page = console.page
    email = await new_account(console)
    who, device_id = await new_device(console, email, "Zulu", "temperature")
    for first in range(0, 100, 20):  # devices whose names sort before it, without streams
        answers = await asyncio.gather(
            *(
                console.http.post(
                    "/v1/devices", headers=who, json={"name": f"Aa {n:03}", "type": "pressure"}
                )
                for n in range(first, first + 20)
            )
        )
        assert all(answer.status_code == 201 for answer in answers)
    token = await device_token(console, who, device_id)
    await upload(console, device_id, token, "temperature", 3.0)
    await upload(console, device_id, token, "pressure", 1.5)
    listed = await console.http.get(f"/v1/devices/{device_id}/streams", headers=who)
    ids = {s["metric_name"]: s["stream_id"] for s in listed.json()["data"]["streams"]}
    await sign_in(console, email)

    await page.get_by_role("link", name="Correlations").click()
    form = page.locator("#correlation-form")
    await page.get_by_text("your first 100 devices by name").wait_for()
    first, second = form.locator("select[name=stream_a]"), form.locator("select[name=stream_b]")
    assert await first.locator("option").count() == 0
    await form.get_by_label("Find a device (first)").fill("zul")
    await first.locator("option", has_text="Zulu · temperature").wait_for(state="attached")
    await first.select_option(label="Zulu · temperature")
    await form.get_by_label("Find a device (second)").fill("Zulu")
    await second.locator("option", has_text="Zulu · pressure").wait_for(state="attached")
    await second.select_option(label="Zulu · pressure")
    await console.screenshot("correlation-picker")
    # Another search leaves the stream chosen before it in its list, still chosen.
    await form.get_by_label("Find a device (first)").fill("Aa 00")
    await form.get_by_text("No streams on devices whose name contains").wait_for()
    assert await first.input_value() == ids["temperature"]
    await form.locator("select[name=window]").select_option("1h")
    await form.get_by_role("button", name="Correlate").click()
    await page.wait_for_url("**/#/correlations/*")
    assert float(await page.locator("#coefficient").text_content() or "0") > 0.9
    await console.screenshot("correlation-search")
    # The past results name streams beyond the lists too.
    await page.go_back()
    both = "Zulu · temperature \N{MULTIPLICATION SIGN} Zulu · pressure"
    await page.locator("#correlation-table").get_by_text(both).wait_for()

    # A deep link to streams beyond the lists keeps them chosen, named.
    await console.open(f"/correlations?a={ids['pressure']}&b={ids['temperature']}")
    await first.locator("option", has_text="Zulu · pressure").wait_for(state="attached")
    assert await first.input_value() == ids["pressure"]
    assert await second.input_value() == ids["temperature"]
