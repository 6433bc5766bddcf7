"""The device screens' forms in a real browser: a location needs both coordinates (refused
beside the empty one, nothing sent), field errors beside their fields and the edit's
outcome beside its Save button on a phone, focus moving into the registration and import
forms, rotating and revoking a credential asked first with the copy button starting again
for a new token, a device import's rows as the file's lines and its result within a phone's
width, and the list's bad page links."""

from __future__ import annotations

import json

from playwright.async_api import expect

from tests.browser.conftest import Console
from tests.browser.steps import access_header, new_account, new_device, sign_in

PHONE = {"width": 390, "height": 844}


async def expect_beside(console: Console, field: str, name: str, text: str) -> None:
    """The error about the API's ``field`` stands beside the control named ``name``, which
    is marked invalid and described by it, and the message under the form does not list it
    again."""
    page = console.page
    error_id = "error-" + field.replace(".", "-")
    await expect(page.locator(f"#{error_id}")).to_contain_text(text)
    control = page.locator(f"[name={name}][aria-invalid=true]")
    await expect(control).to_have_count(1)
    assert error_id in (await control.get_attribute("aria-describedby") or "")
    await expect(page.locator(".message li")).to_have_count(0)


async def devices_of(console: Console, who: dict[str, str]) -> list[dict[str, object]]:
    answer = await console.http.get("/v1/devices", headers=who)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"]["devices"])


async def test_register_focus_a_location_needs_both_and_field_errors_beside_fields(
    console: Console,
) -> None:
    page = console.page
    email = await new_account(console)
    who = await access_header(console, email)
    await sign_in(console, email)

    # Enter on the button opens the form with focus in its first field; Cancel gives it back.
    opener = page.get_by_role("button", name="Register a device…")
    await opener.focus()
    await page.keyboard.press("Enter")
    form = page.locator("#register-device-form")
    # By its name: once an error stands beside it, the label holds the error too.
    name = form.locator("[name=name]")
    await expect(name).to_be_focused()
    await form.get_by_role("button", name="Cancel").click()
    await expect(opener).to_be_focused()
    await page.keyboard.press("Enter")

    # A latitude without a longitude is refused beside the longitude, and nothing is sent.
    await name.fill("Roof")
    await form.get_by_label("Latitude").fill("45.5")
    await form.get_by_role("button", name="Register", exact=True).click()
    await expect_beside(console, "location.longitude", "longitude", "Give the longitude too")
    await expect(form.get_by_label("Longitude")).to_be_focused()
    await expect(form.locator(".message-error")).to_contain_text("both latitude and longitude")
    await console.screenshot("register-latitude-only")
    assert await devices_of(console, who) == []

    # The server's errors stand beside their fields too: a blank name.
    await name.fill("   ")
    await form.get_by_label("Longitude").fill("9.2")
    await form.get_by_role("button", name="Register", exact=True).click()
    await expect_beside(console, "name", "name", "Name is required")
    await expect(name).to_be_focused()
    await expect(page.locator("[name=longitude][aria-invalid=true]")).to_have_count(0)
    console.forgive(400)
    await console.screenshot("register-name-error")
    assert await devices_of(console, who) == []

    await name.fill("Roof")
    await form.get_by_role("button", name="Register", exact=True).click()
    await page.wait_for_url("**/#/devices/*")
    await page.get_by_text("45.5, 9.2").wait_for()


async def test_edit_refuses_one_coordinate_and_answers_beside_save_on_a_phone(
    console: Console,
) -> None:
    page = console.page
    email = await new_account(console)
    who, device_id = await new_device(console, email, "Cellar", "temperature")
    located = await console.http.patch(
        f"/v1/devices/{device_id}",
        headers=who,
        json={"location": {"latitude": 52.52, "longitude": 13.405}},
    )
    assert located.status_code == 200, located.text
    await sign_in(console, email)
    await page.set_viewport_size(PHONE)
    await console.open(f"/devices/{device_id}")
    edit = page.locator("#edit-device-form")

    # Clearing one coordinate is refused beside it; the device keeps its location.
    await edit.get_by_label("Longitude").fill("")
    await edit.get_by_role("button", name="Save").click()
    await expect_beside(console, "location.longitude", "longitude", "Give the longitude too")
    await expect(page.locator("#error-location-longitude")).to_be_in_viewport()
    stored = (await console.http.get(f"/v1/devices/{device_id}", headers=who)).json()["data"]
    assert stored["location"] == {"latitude": 52.52, "longitude": 13.405}

    # A blank name: the error beside the name, in view, and the outcome under Save, not in
    # the top card.
    await edit.get_by_label("Longitude").fill("13.405")
    await edit.get_by_label("Name").fill("  ")
    await edit.get_by_role("button", name="Save").click()
    await expect_beside(console, "name", "name", "Name is required")
    await expect(page.locator("#error-name")).to_be_in_viewport()
    await expect(edit.locator(".message-error")).to_be_visible()
    await expect(page.locator("section.card").first.locator(".message")).to_have_count(0)
    console.forgive(400)
    await console.screenshot("edit-name-error-phone")

    # Saved: the outcome stands under Save, in view.
    await edit.get_by_label("Name").fill("Wine cellar")
    await edit.get_by_label("Latitude").fill("")
    await edit.get_by_label("Longitude").fill("")
    await edit.get_by_role("button", name="Save").click()
    await page.get_by_role("heading", name="Wine cellar").wait_for()
    ok = page.locator("#edit-device-form .message-ok")
    await expect(ok).to_be_in_viewport()
    await expect(page.locator("[aria-invalid=true]")).to_have_count(0)
    stored = (await console.http.get(f"/v1/devices/{device_id}", headers=who)).json()["data"]
    assert stored["name"] == "Wine cellar"
    assert not stored.get("location")
    await console.screenshot("edit-saved-phone")


async def test_rotate_and_revoke_ask_first_and_a_new_token_is_copied_afresh(
    console: Console,
) -> None:
    page = console.page
    await page.context.grant_permissions(
        ["clipboard-read", "clipboard-write"], origin=console.base_url
    )
    email = await new_account(console)
    _, device_id = await new_device(console, email, "Gate", "motion")
    await sign_in(console, email)
    await console.open(f"/devices/{device_id}")
    await page.get_by_role("button", name="Issue a credential").click()
    token = page.locator("#issued-token code")
    await token.wait_for()
    first = await token.text_content()
    await expect(page.locator("#issued-token")).to_be_focused()
    copy = page.locator("#issued-token button")
    await copy.click()
    await expect(copy).to_have_text("Copied")
    assert await page.evaluate("navigator.clipboard.readText()") == first

    # Rotating asks first; Cancel keeps the token.
    await page.get_by_role("button", name="Rotate the credential…").click()
    await expect(page.get_by_text("The token in use stops working at once.")).to_be_visible()
    await expect(page.get_by_role("button", name="Cancel")).to_be_focused()
    await console.screenshot("rotate-asks")
    await page.get_by_role("button", name="Cancel").click()
    await expect(page.get_by_role("button", name="Rotate the credential…")).to_be_focused()
    await expect(token).to_have_text(first or "")

    # Rotated: a new token, and its copy button says Copy until it is pressed.
    await page.get_by_role("button", name="Rotate the credential…").click()
    await page.get_by_role("button", name="Yes, rotate it").click()
    await expect(token).not_to_have_text(first or "")
    second = await token.text_content()
    await expect(copy).to_have_text("Copy the token")
    await console.screenshot("rotated")
    await copy.click()
    await expect(copy).to_have_text("Copied")
    assert await page.evaluate("navigator.clipboard.readText()") == second

    # Revoking asks first too.
    await page.get_by_role("button", name="Revoke…").click()
    await expect(page.get_by_text("the device cannot send until a new one")).to_be_visible()
    await page.get_by_role("button", name="Yes, revoke it").click()
    await page.get_by_role("button", name="Issue a credential").wait_for()
    await expect(token).to_have_count(0)
    await expect(page.get_by_role("heading", name="Credential")).to_be_focused()


async def test_import_rows_are_lines_of_the_file_and_fit_a_phone(console: Console) -> None:
    page = console.page
    await sign_in(console, await new_account(console))
    await page.set_viewport_size(PHONE)
    opener = page.get_by_role("button", name="Import from a file…")
    await opener.focus()
    await page.keyboard.press("Enter")
    picker = page.get_by_label("CSV (name,type,latitude,longitude) or JSON file")
    await expect(picker).to_be_focused()
    # A blank line (no row) and a quoted value over two lines: the rows' lines are not
    # their numbers plus one.
    csv = (
        "name,type,latitude,longitude\n"
        "Pump 1 in the north-east boiler house of building seven,pressure,52.5,13.4\n"
        "\n"
        ",motion,,\n"
        'Valve,"gen\neric",,\n'
        "Pump 2,generic,45.5,\n"
    )
    await picker.set_input_files(
        files=[{"name": "devices.csv", "mimeType": "text/csv", "buffer": csv.encode()}]
    )
    await page.get_by_role("button", name="Import", exact=True).click()
    await page.get_by_text("1 created, 3 rejected.").wait_for()
    rows = page.locator("#import-results tbody tr td:first-child")
    await expect(rows).to_have_text(
        ["Data row 1 (line 2)", "Data row 2 (line 4)", "Data row 3 (line 5)", "Data row 4 (line 7)"]
    )
    await page.wait_for_load_state("networkidle")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width
    await console.screenshot("import-phone")

    # A JSON file's rows are its items.
    items = [{"name": "Fan", "type": "generic"}, {"name": "Fan 2", "type": "toaster"}]
    await picker.set_input_files(
        files=[
            {
                "name": "devices.json",
                "mimeType": "application/json",
                "buffer": json.dumps(items).encode(),
            }
        ]
    )
    await page.get_by_role("button", name="Import", exact=True).click()
    await page.get_by_text("1 created, 1 rejected.").wait_for()
    await expect(rows).to_have_text(["Item 1", "Item 2"])
    await page.get_by_role("button", name="Close").click()
    await expect(opener).to_be_focused()


async def test_the_list_answers_a_bad_page_with_page_one_and_a_far_page_with_a_way_back(
    console: Console,
) -> None:
    page = console.page
    email = await new_account(console)
    await new_device(console, email, "Attic", "generic")
    await sign_in(console, email)
    table = page.locator("#device-table")
    await console.open("/devices?page=abc")
    await table.get_by_role("link", name="Attic").wait_for()
    await expect(page.locator(".message-error")).to_have_count(0)
    await console.open("/devices?page=5")
    await expect(page.get_by_text("Page 5 is past the last page (1)")).to_be_visible()
    await page.get_by_role("button", name="Go to page 1").click()
    await page.wait_for_url("**/#/devices?*page=1*")
    await table.get_by_role("link", name="Attic").wait_for()
