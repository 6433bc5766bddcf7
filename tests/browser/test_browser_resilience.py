"""The console where a newcomer strays: a mangled address, a page past the last, Back
after a search, email links opened while signed in, a question answered with the keyboard,
and a phone's narrow screen."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Console
from tests.browser.steps import new_account, sign_in
from tests.browser.test_browser_admin import WITH_ADMIN, sign_in_as_admin
from tests.service.auth_support import ADMIN_EMAIL


async def test_a_mangled_address_says_not_found_and_the_console_stays(console: Console) -> None:
    page = console.page
    await sign_in(console, await new_account(console))
    # A cut-off escape made decodeURIComponent throw, and the whole page went blank.
    await console.open("/devices/%E0%A4%A")
    await page.reload()
    await page.get_by_role("navigation", name="Main").wait_for()
    await page.locator(".message-error").first.wait_for()
    console.forgive(400)
    console.forgive(404)
    await page.get_by_role("link", name="Devices", exact=True).click()
    await page.get_by_role("heading", name="Devices").wait_for()


@pytest.mark.parametrize("console", [WITH_ADMIN], indirect=True)
async def test_back_undoes_a_whole_search_and_a_page_past_the_last_leads_back(
    console: Console,
) -> None:
    page = console.page
    await sign_in_as_admin(console)
    await console.open("/admin/users")
    await page.locator("#user-table").wait_for()
    await page.get_by_label("Email or name contains").press_sequentially("admin", delay=40)
    await page.wait_for_url("**/#/admin/users?*search=admin*")
    await page.go_back()
    # Back leaves the search, to the whole list (it used to leave the users altogether).
    await page.wait_for_url("**/#/admin/users")
    await expect(page.get_by_label("Email or name contains")).to_have_value("")

    await console.open("/admin/users?page=99")
    await page.get_by_text("Page 99 is past the last page").wait_for()
    assert await page.get_by_text("No user matches.").count() == 0
    await page.get_by_role("button", name="Go to page 1").click()
    await page.locator("#user-table").get_by_role("link").first.wait_for()
    # A page that is no number shows the first page, not a refusal of "page=NaN".
    await console.open("/admin/users?page=abc")
    await page.locator("#user-table").get_by_role("link").first.wait_for()


@pytest.mark.parametrize("console", [WITH_ADMIN], indirect=True)
async def test_a_question_answered_by_keyboard_gives_the_focus_back(console: Console) -> None:
    page = console.page
    email = await new_account(console)
    await sign_in_as_admin(console)
    await console.open("/admin/users")
    await page.get_by_label("Email or name contains").fill(email)
    await page.locator("#user-table").get_by_role("link", name=email).click()
    ask = page.get_by_role("button", name="Deactivate…")
    await ask.click()
    await expect(page.get_by_role("button", name="Cancel", exact=True)).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(ask).to_be_focused()
    await ask.press("Enter")
    await page.get_by_role("button", name="Cancel", exact=True).press("Enter")
    await expect(ask).to_be_focused()
    # An admin's own record offers no deactivation the server would refuse.
    await page.get_by_role("link", name="Users", exact=True).first.click()
    await page.get_by_label("Email or name contains").fill(ADMIN_EMAIL)
    await page.locator("#user-table").get_by_role("link", name=ADMIN_EMAIL).click()
    await page.get_by_text("This is you").wait_for()
    await expect(page.get_by_role("button", name="Deactivate…")).to_be_disabled()


async def test_email_links_opened_while_signed_in_are_answered(console: Console) -> None:
    page = console.page
    await sign_in(console, await new_account(console))
    # A verification link: its answer is shown above the screen, the token gone from the URL.
    await console.open("/verify-email?token=not-a-real-token")
    await page.locator("#notice .message-error").wait_for()
    assert "token" not in page.url
    console.forgive(401)
    await page.get_by_role("button", name="Dismiss").click()
    assert await page.locator("#notice").count() == 0
    # A reset link: the form, not a silent jump to the devices.
    await console.open("/reset-password?token=not-a-real-token")
    await page.locator("#reset-form").wait_for()
    assert "token" not in page.url
    await console.screenshot("reset-link-signed-in")
    # A bad link's refusal is about the link: the user stays signed in.
    await page.get_by_role("link", name="Devices", exact=True).click()
    await page.get_by_role("heading", name="Devices").wait_for()


async def test_no_screen_is_wider_than_a_phone(console: Console) -> None:
    page = console.page
    await sign_in(console, await new_account(console))
    await page.set_viewport_size({"width": 390, "height": 844})
    for route in ("/account", "/devices", "/anomalies", "/imports", "/correlations", "/status"):
        await console.open(route)
        await page.locator("main h2").first.wait_for()
        await page.wait_for_load_state("networkidle")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (route, width)
    await console.screenshot("account-phone")
