"""The account's and the signed-out screens' forms in a real browser: field errors beside
their fields (registration, reset, profile, two-factor), what registering says, the reset
landing page with a token, the MFA step of sign-in and the two-factor buttons moving focus
into what they show, the profile's time zone and the data download, the security log's
bad links, and "Sign out here" signing out like "Log out"."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.async_api import expect

from tests.browser.conftest import Console
from tests.browser.steps import access_header, new_account, sign_in
from tests.service.auth_support import totp_code
from tests.support import PASSWORD, new_email

# Long enough for the form's checks, short of the rules: no uppercase, digit or symbol.
WEAK = "weakpassword"


async def expect_beside(console: Console, field: str, text: str) -> None:
    """The envelope's error about ``field`` stands beside it, the field is marked invalid
    and described by it, and the message under the form does not list it again."""
    page = console.page
    error = page.locator(f"#error-{field}")
    await expect(error).to_contain_text(text)
    control = page.locator(f"[name={field}][aria-invalid=true]")
    await expect(control).to_have_count(1)
    assert f"error-{field}" in (await control.get_attribute("aria-describedby") or "")
    await expect(page.locator(".message li", has_text=f"{field}:")).to_have_count(0)


async def account_page(console: Console, email: str) -> None:
    """Sign ``email`` in and open the Account page."""
    await sign_in(console, email)
    await console.page.get_by_role("link", name="Account").click()


async def test_register_shows_field_errors_beside_fields_and_says_what_happens_next(
    console: Console,
) -> None:
    page = console.page
    email = new_email()
    await console.open("/register")
    form = page.locator("#register-form")
    await form.get_by_label("Email").fill(email)
    await form.get_by_label("Password").fill(WEAK)
    await form.get_by_role("button", name="Register").click()
    await expect_beside(console, "password", "uppercase")
    await console.screenshot("register-field-error")
    console.forgive(400)

    await form.get_by_label("Password").fill(PASSWORD)
    await form.get_by_label("Turn on two-factor login").check()
    await form.get_by_role("button", name="Register").click()
    ok = page.locator(".message-ok")
    await expect(ok).to_contain_text(f"We sent a verification link to {email}")
    await expect(ok).to_contain_text("You can log in now")
    await expect(ok).to_contain_text("Account page")
    await expect(page.locator("#error-password")).to_have_count(0)
    await console.screenshot("registered-with-two-factor")

    # The same address again: a 409 that names no field, shown beside the email all the same.
    await form.get_by_label("Email").fill(email)
    await form.get_by_label("Password").fill(PASSWORD)
    await form.get_by_role("button", name="Register").click()
    await expect_beside(console, "email", "already registered")
    console.forgive(409)

    # Signed in, the account reminds the user of the two-factor login they asked for.
    await account_page(console, email)
    await expect(page.locator("#mfa-requested")).to_be_visible()


async def test_a_reset_link_lands_without_an_error_and_shows_field_errors(
    console: Console,
) -> None:
    page = console.page
    await console.open("/reset-password?token=a-token-from-the-email")
    form = page.locator("#reset-form")
    await form.wait_for()
    await page.wait_for_function("!location.hash.includes('token')")
    await expect(page.get_by_text("holds no token")).to_have_count(0)
    await expect(page.locator(".message-error")).to_have_count(0)
    await expect(form.get_by_role("button", name="Set the password")).to_be_enabled()
    await console.screenshot("reset-landing")
    # Password rules are checked before the token: the error stands beside the field.
    await form.get_by_label("New password").fill(WEAK)
    await form.get_by_role("button", name="Set the password").click()
    await expect_beside(console, "password", "uppercase")
    console.forgive(400)

    # A link that truly holds no token says so.
    await console.open("/reset-password")
    await page.reload()
    await expect(page.get_by_text("This reset link holds no token")).to_be_visible()
    await expect(form.get_by_role("button", name="Set the password")).to_be_disabled()


async def test_two_factor_focus_field_errors_and_the_mfa_step_of_sign_in(
    console: Console,
) -> None:
    page = console.page
    email = await new_account(console)
    await account_page(console, email)
    await page.get_by_role("button", name="Set up two-factor login").click()
    scan = page.get_by_role("heading", name="Scan the code with an authenticator app")
    await expect(scan).to_be_focused()
    secret = await page.locator("#mfa-secret").text_content()
    assert secret
    enable = page.locator("#mfa-enable-form")
    await enable.get_by_label("Code from the app").fill("12345")
    await enable.get_by_role("button", name="Turn on").click()
    await expect_beside(console, "code", "")
    console.forgive(400)
    await console.screenshot("mfa-code-error")
    await enable.get_by_label("Code from the app").fill(totp_code(secret))
    await enable.get_by_role("button", name="Turn on").click()
    await expect(page.locator("#recovery-codes li")).to_have_count(10)
    await expect(page.get_by_role("heading", name="Recovery codes")).to_be_focused()
    await page.get_by_role("button", name="I have stored them").click()
    await expect(page.locator("#recovery-codes")).to_have_count(0)
    await expect(page.get_by_role("heading", name="Two-factor login")).to_be_focused()

    # On: Enter in the code field says what to do instead of doing nothing.
    manage = page.locator("#mfa-manage-form")
    await manage.get_by_label("Code from the app").fill("123456")
    await manage.get_by_label("Code from the app").press("Enter")
    await expect(page.locator("#mfa-hint")).to_contain_text("New recovery codes")

    # Sign-in's MFA step: the prompt is an instruction, and focus is in the new field.
    await page.locator("#logout-button").click()
    await page.locator("#login-form").wait_for()
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    code = page.get_by_label("MFA code")
    await expect(code).to_be_focused()
    await expect(page.locator("#mfa-prompt")).to_contain_text("authenticator app")
    await expect(page.locator("#login-form ~ .message .message-error")).to_have_count(0)
    await console.screenshot("sign-in-mfa-step")
    await code.fill(totp_code(secret, steps_ahead=1))
    await code.press("Enter")
    # Back where the user logged out.
    await page.locator("#logout-button").wait_for()


async def test_time_zone_is_saved_beside_other_metadata_and_data_downloads(
    console: Console, tmp_path: Path
) -> None:
    page = console.page
    email = await new_account(console)
    who = await access_header(console, email)
    theme = {"metadata": {"theme": "dark"}}
    kept = await console.http.patch("/v1/profile", headers=who, json=theme)
    assert kept.status_code == 200, kept.text
    await account_page(console, email)
    form = page.locator("#profile-form")
    zone = form.get_by_label("Time zone")
    # None saved: this browser's zone is suggested.
    browser_zone = await page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")
    await expect(zone).to_have_value(browser_zone)
    assert await zone.locator("option").count() > 300

    # A blank display name is refused beside its field.
    await form.get_by_label("Display name").fill("   ")
    await form.get_by_role("button", name="Save").click()
    await expect_beside(console, "display_name", "")
    console.forgive(400)

    await form.get_by_label("Display name").fill("Ann")
    await zone.select_option("Asia/Tokyo")
    await form.get_by_role("button", name="Save").click()
    await page.locator("#profile-form ~ .message .message-ok").wait_for()
    await page.reload()
    await expect(form.get_by_label("Time zone")).to_have_value("Asia/Tokyo")
    profile = (await console.http.get("/v1/profile", headers=who)).json()["data"]
    assert profile["metadata"] == {"theme": "dark", "timezone": "Asia/Tokyo"}
    await console.screenshot("profile-time-zone")

    # The data, as a file named as the link names it.
    async with page.expect_download() as downloading:
        await page.get_by_role("button", name="Download my data").click()
    download = await downloading.value
    assert download.suggested_filename.startswith("iotsuite-")
    assert download.suggested_filename.endswith(".json")
    saved = tmp_path / download.suggested_filename
    await download.save_as(saved)
    assert json.loads(saved.read_text())["user"]["email"] == email
    await expect(page.locator("#data-download-form ~ .message .message-ok")).to_contain_text(
        download.suggested_filename
    )


async def test_security_log_links_with_bad_values_and_sign_out_here(console: Console) -> None:
    page = console.page
    email = await new_account(console)
    who = await access_header(console, email)
    # 45 profile changes and the sign-ins: three pages of 20.
    for number in range(45):
        changed = await console.http.patch("/v1/profile", headers=who, json={"tags": [str(number)]})
        assert changed.status_code == 200, changed.text
    await sign_in(console, email)
    log = page.locator("#security-log tbody tr")

    await console.open("/account?action=bogus")
    action = page.get_by_label("Action")
    await expect(action).to_have_value("")
    await expect(action.locator("option:checked")).to_have_text("All")
    await expect(page.locator("#unknown-action")).to_contain_text("bogus")
    await expect(log).to_have_count(20)
    await action.select_option("login_failed")
    await page.wait_for_url("**action=login_failed*")
    await page.get_by_text("Nothing recorded.").wait_for()
    await action.select_option("")
    await expect(log).to_have_count(20)
    await expect(action).to_have_value("")
    assert "action=" not in page.url

    for bad in ("abc", "-1", "1.5"):
        await console.open("/account?log_page=2")
        await expect(page.get_by_text("Page 2 of 3")).to_be_visible()
        async with page.expect_response("**/v1/security/logs?page=1&*") as answered:
            await console.open(f"/account?log_page={bad}")
        assert (await answered.value).status == 200
        await expect(page.get_by_text("Page 1 of 3")).to_be_visible()

    await console.open("/account?log_page=999")
    await page.wait_for_url("**log_page=3*")
    await expect(page.get_by_text("Page 3 of 3")).to_be_visible()
    await expect(log).not_to_have_count(0)
    await expect(page.get_by_text("Nothing recorded.")).to_have_count(0)
    await console.screenshot("security-log-last-page")

    await page.get_by_role("button", name="Sign out here").click()
    await page.locator("#login-form").wait_for()
    await expect(page.get_by_text("You are signed out.")).to_be_visible()
    await expect(page.get_by_text("Your session has ended")).to_have_count(0)
    await console.screenshot("signed-out-here")
