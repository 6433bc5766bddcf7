"""The console's admin screens in a real browser: the users with their filters, one user's
security summary, deactivating a user (asked first) who is then refused at sign-in, and
accounts and sites with a client secret shown once."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Console
from tests.browser.steps import new_account, sign_in
from tests.service.auth_support import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.support import PASSWORD

WITH_ADMIN = {"admin_email": ADMIN_EMAIL, "admin_password": ADMIN_PASSWORD}


async def sign_in_as_admin(console: Console) -> None:
    page = console.page
    await console.open("/")
    await page.get_by_label("Email").fill(ADMIN_EMAIL)
    await page.get_by_label("Password").fill(ADMIN_PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url("**/#/devices")


@pytest.mark.parametrize("console", [WITH_ADMIN], indirect=True)
async def test_an_admin_deactivates_a_user_who_is_then_refused(console: Console) -> None:
    page = console.page
    email = await new_account(console)
    # A user sees no admin link, and a deep link to the admin screens tells them so.
    await sign_in(console, email)
    assert await page.get_by_role("link", name="Admin").count() == 0
    await console.open("/admin/users")
    await page.get_by_role("heading", name="Admins only").wait_for()
    await page.get_by_role("button", name="Log out").click()
    await page.get_by_role("heading", name="Sign in").wait_for()

    await sign_in_as_admin(console)
    await page.get_by_role("link", name="Admin").click()
    await page.wait_for_url("**/#/admin")
    await page.get_by_label("Email or name contains").fill(email.split("@")[0])
    await page.wait_for_url("**/#/admin/users?*search=*")
    await page.locator("#user-table").get_by_role("link", name=email).wait_for()
    await page.locator("form.filters").get_by_label("Role").select_option("admin")
    await page.get_by_text("No user matches.").wait_for()
    await page.go_back()
    await page.locator("#user-table").get_by_role("link", name=email).click()
    await page.get_by_role("heading", name=email).wait_for()
    await page.locator("#security-info").get_by_text("Active sessions").wait_for()
    await console.screenshot("admin-user")

    await page.get_by_role("button", name="Deactivate…").click()
    # The question takes the focus to its safe answer (once it has rendered: expect retries).
    await expect(page.get_by_role("button", name="Cancel", exact=True)).to_be_focused()
    await page.get_by_role("button", name=f"Yes, deactivate {email}").click()
    await page.locator("#user-facts").get_by_text("deactivated").wait_for()
    await page.get_by_role("button", name="Activate…").wait_for()
    await page.get_by_role("link", name="Users", exact=True).first.click()
    await page.locator("form.filters").get_by_label("Status").select_option("false")
    await page.locator("#user-table").get_by_role("link", name=email).wait_for()
    await console.screenshot("admin-users")
    await page.set_viewport_size({"width": 390, "height": 844})
    await console.screenshot("admin-users-phone")
    await page.set_viewport_size({"width": 1280, "height": 900})

    # The deactivated user is refused at sign-in, with the gateway's reason.
    await page.get_by_role("button", name="Log out").click()
    await page.get_by_role("heading", name="Sign in").wait_for()
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.locator(".message-error", has_text="deactivated").wait_for()
    assert "#/devices" not in page.url
    await console.screenshot("deactivated-user-refused")
    console.forgive(403)


@pytest.mark.parametrize("console", [WITH_ADMIN], indirect=True)
async def test_an_admin_adds_a_site_and_rotates_its_secret(console: Console) -> None:
    page = console.page
    await sign_in_as_admin(console)
    await console.open("/admin/accounts")
    await page.get_by_role("button", name="Create an account…").click()
    form = page.locator("#create-account-form")
    await form.get_by_label("Name").fill("Plant Co")
    await form.get_by_label("Contact email").fill("plant@example.com")
    await form.get_by_label("Open batches allowed").fill("3")
    await form.get_by_label("Owner (user id)").fill("nobody")
    await form.get_by_role("button", name="Create").click()
    # The server's refusal is told beside the field it is about.
    owner = form.get_by_role("textbox", name="Owner (user id)")
    await form.locator("#error-owner_user_id").wait_for()
    assert await owner.get_attribute("aria-invalid") == "true"
    console.forgive(400)
    await owner.fill("")
    await form.get_by_role("button", name="Create").click()
    await page.wait_for_url("**/#/admin/accounts/*")
    await page.get_by_role("heading", name="Plant Co").wait_for()

    sites = page.locator("#create-site-form")
    await sites.get_by_label("Domain").fill("line-7.example.com")
    await sites.get_by_label("Site name").fill("Line 7")
    await sites.get_by_role("button", name="Add a site").click()
    secret = page.locator("#site-secret code")
    await secret.wait_for()
    first = await secret.text_content()
    await page.get_by_role("button", name="Copy the secret").wait_for()
    await page.get_by_role("button", name="Rotate the secret of line-7.example.com…").click()
    await page.get_by_role("button", name="Yes, rotate").click()
    await page.wait_for_function(
        "(old) => document.querySelector('#site-secret code')?.textContent !== old", arg=first
    )
    rotated = await secret.text_content()
    await console.screenshot("admin-account")
    # The new secret gets a token; the old one no longer does.
    for value, status in ((rotated, 200), (first, 401)):
        answer = await console.http.post(
            "/v1/sites/token", json={"domain": "line-7.example.com", "client_secret": value}
        )
        assert answer.status_code == status, answer.text
    await page.get_by_role("button", name="I have stored it").click()
    assert await secret.count() == 0
    # The keyboard user stays in the sites, not sent back to the page's top.
    await expect(page.get_by_role("heading", name="Sites")).to_be_focused()
