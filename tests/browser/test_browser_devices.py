"""The console in a real browser: sign-in (with its MFA step), the device list, registering
a device and issuing its credential, deep links and the back button, importing from a file."""

from __future__ import annotations

from tests.browser.conftest import Console
from tests.browser.steps import new_account, sign_in
from tests.service.auth_support import totp_code
from tests.support import PASSWORD


async def test_sign_in_register_a_device_and_issue_its_credential(console: Console) -> None:
    page = console.page
    email = await new_account(console)
    await console.open("/")
    await console.screenshot("sign-in")
    await sign_in(console, email)
    await page.get_by_role("button", name="Register a device…").click()
    form = page.locator("#register-device-form")
    await form.get_by_label("Name", exact=True).fill("Boiler <b>room</b>")
    await form.get_by_label("Type").select_option("pressure")
    await form.get_by_role("button", name="Register", exact=True).click()
    await page.wait_for_url("**/#/devices/*")
    # Server text is text: the name's markup shows as typed, it is not parsed.
    await page.get_by_role("heading", name="Boiler <b>room</b>").wait_for()
    device_id = page.url.rsplit("/", 1)[1]
    edit = page.locator("#edit-device-form")
    await edit.get_by_label("Status").select_option("maintenance")
    await edit.get_by_label("Latitude").fill("52.52")
    await edit.get_by_label("Longitude").fill("13.405")
    await edit.get_by_role("button", name="Save").click()
    await page.locator(".facts .badge", has_text="maintenance").wait_for()
    await page.get_by_text("52.52, 13.405").wait_for()

    await page.get_by_role("button", name="Issue a credential").click()
    token = page.locator("#issued-token code")
    await token.wait_for()
    assert (await token.text_content() or "").count(".") == 2  # a JWT
    await page.get_by_role("button", name="Copy the token").wait_for()
    await page.get_by_role("button", name="Rotate the credential").wait_for()
    await console.screenshot("device")
    await page.get_by_role("button", name="Revoke…").click()
    await page.get_by_role("button", name="Yes, revoke it").click()
    await page.get_by_role("button", name="Issue a credential").wait_for()
    assert await token.count() == 0

    # The list: a filter lands in the URL, and Back undoes it.
    await page.get_by_role("link", name="Devices").first.click()
    await page.wait_for_url("**/#/devices")
    await page.locator("#device-table").get_by_role("link", name="Boiler <b>room</b>").wait_for()
    await page.locator("form.filters").get_by_label("Type").select_option("temperature")
    await page.wait_for_url("**/#/devices?*type=temperature*")
    await page.get_by_text("No device matches.").wait_for()
    await page.go_back()
    await page.locator("#device-table").get_by_role("link", name="Boiler <b>room</b>").wait_for()
    # A column header sorts: by name, then the other way.
    await page.get_by_role("button", name="Name").click()
    await page.wait_for_url("**sort=name*")
    await (
        page.get_by_role("columnheader", name="Name")
        .and_(page.locator("[aria-sort=ascending]"))
        .wait_for()
    )
    await page.get_by_role("button", name="Name").click()
    await page.wait_for_url("**sort=-name*")
    await page.get_by_label("Name contains").fill("oiler")
    await page.wait_for_url("**/#/devices?*search=oiler*")
    await page.locator("#device-table").get_by_role("link", name="Boiler <b>room</b>").wait_for()
    await console.screenshot("devices")
    await page.set_viewport_size({"width": 390, "height": 844})
    await console.screenshot("devices-phone")
    await page.set_viewport_size({"width": 1280, "height": 900})

    # A deep link opens the device directly; decommissioning asks first.
    await console.open(f"/devices/{device_id}")
    await page.get_by_role("button", name="Decommission…").click()
    await page.get_by_role("button", name="Yes, decommission “Boiler <b>room</b>”").click()
    await page.wait_for_url("**/#/devices")
    await page.get_by_text("No device matches.").wait_for()


async def test_sign_in_with_the_mfa_step(console: Console) -> None:
    email = await new_account(console)
    login = (
        await console.http.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    ).json()["data"]
    who = {"authorization": f"Bearer {login['access_token']}"}
    setup = (await console.http.post("/v1/auth/mfa/setup", json={}, headers=who)).json()["data"]
    enabled = await console.http.post(
        "/v1/auth/mfa/enable", json={"code": totp_code(setup["secret"])}, headers=who
    )
    assert enabled.status_code == 200, enabled.text
    await sign_in(console, email, mfa_secret=setup["secret"])
    await console.page.get_by_text(email).wait_for()


async def test_import_devices_from_a_csv_file_with_a_bad_row(console: Console) -> None:
    page = console.page
    await sign_in(console, await new_account(console))
    await page.get_by_role("button", name="Import from a file…").click()
    csv = "name,type,latitude,longitude\nPump 1,pressure,52.5,13.4\n,motion,,\nPump 2,generic,,\n"
    await page.get_by_label("CSV (name,type,latitude,longitude) or JSON file").set_input_files(
        files=[{"name": "devices.csv", "mimeType": "text/csv", "buffer": csv.encode()}]
    )
    await page.get_by_role("button", name="Import", exact=True).click()
    await page.get_by_text("2 created, 1 rejected.").wait_for()
    results = page.locator("#import-results tbody tr")
    assert await results.count() == 3
    assert "name" in (await results.nth(1).text_content() or "")
    await page.locator("#device-table").get_by_role("link", name="Pump 2").wait_for()
    await console.screenshot("import")
