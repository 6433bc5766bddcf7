"""Today's signed-out flows in the single-page console: registering through the form,
and the landing pages of the emails' links, which take the token out of the address bar
before anything else."""

from __future__ import annotations

from tests.browser.conftest import Console
from tests.browser.steps import sign_in
from tests.support import PASSWORD, new_email


async def test_register_through_the_form_then_sign_in(console: Console) -> None:
    page = console.page
    email = new_email()
    await console.open("/")
    await page.get_by_role("link", name="Create an account…").click()
    await page.wait_for_url("**/#/register")
    form = page.locator("#register-form")
    await form.get_by_label("Email").fill(email)
    await form.get_by_label("Password").fill(PASSWORD)
    await form.get_by_label("Display name").fill("Ann")
    await form.get_by_role("button", name="Register").click()
    await page.get_by_text("You can log in now.").wait_for()
    await console.screenshot("registered")
    await page.go_back()
    await page.locator("#login-form").wait_for()
    await sign_in(console, email)


async def test_email_links_drop_their_token_and_show_the_servers_answer(
    console: Console,
) -> None:
    page = console.page
    await console.open("/reset-password?token=not-a-real-token")
    await page.locator("#reset-form").wait_for()
    assert "token" not in page.url
    await page.get_by_label("New password").fill("An0ther!pass")
    await page.get_by_role("button", name="Set the password").click()
    await page.locator("#reset-form ~ .message .message-error").wait_for()
    await console.screenshot("reset")

    await console.open("/verify-email?token=not-a-real-token")
    await page.locator("#login-form ~ .message .message-error").wait_for()
    assert "token" not in page.url
