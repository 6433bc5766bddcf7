"""Alert rules in a real browser: a rule refused with the error beside its field, then made
with its secret shown once, an alert on the live feed when a reading crosses the value,
acknowledged from its row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.browser.conftest import Console
from tests.browser.steps import new_account, new_device, sign_in


async def test_a_rule_is_made_fires_live_and_is_acknowledged(console: Console) -> None:
    page = console.page
    email = await new_account(console)
    who, device_id = await new_device(console, email, "Kiln", "temperature")
    await sign_in(console, email)

    await page.get_by_role("link", name="Alerts").click()
    await page.get_by_role("button", name="New rule…").click()
    form = page.locator("#rule-form")
    await form.get_by_label("Name").fill("Kiln too hot")
    await form.get_by_label("When").select_option("threshold")
    await form.get_by_label("Device ids").fill(device_id)
    await form.get_by_label("Value", exact=True).fill("80")
    await form.get_by_label("Webhook URL").fill("ftp://example.com/hook")
    await form.get_by_role("button", name="Create the rule").click()
    # Refused: the error is told beside the field it is about.
    await form.locator(".field-error").first.wait_for()
    assert await form.get_by_label("Webhook URL").get_attribute("aria-invalid") == "true"
    console.forgive(400)
    await form.get_by_label("Webhook URL").fill("")
    await form.get_by_role("button", name="Create the rule").click()
    secret = page.locator("#rule-secret code").first
    await secret.wait_for()
    assert (await secret.inner_text()).startswith("whsec_")
    row = page.locator("#rule-table tbody tr", has_text="Kiln too hot")
    await row.wait_for()
    assert "quiet" in await row.inner_text()
    await console.screenshot("alerts-rule-made")

    first = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    readings = [
        {"timestamp": (first + timedelta(seconds=i)).isoformat(), "value": value}
        for i, value in enumerate([70.0, 85.0, 90.0])
    ]
    stored = await console.http.post(
        f"/v1/devices/{device_id}/readings",
        headers=who,
        json={"metric_name": "temperature", "readings": readings},
    )
    assert stored.status_code == 200, stored.text
    live = page.locator("#live-alerts li").first
    await live.wait_for()
    assert "Kiln too hot" in await live.inner_text()
    await row.get_by_role("button", name="Acknowledge").click()
    await row.locator(".alert-acknowledged").wait_for()
    await console.screenshot("alerts-acknowledged")
    assert console.errors == []
