"""The account side of the console in a real browser: tokens refreshed before they
expire, the status page refreshing itself, the profile, two-factor set-up, the security
log, and signing out from the sessions list back to sign-in with a message; and what the
first load costs."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from gateway.compression import MINIMUM_SIZE
from tests.browser.conftest import Console
from tests.browser.steps import new_account, sign_in
from tests.service.auth_support import totp_code

# The console asks for new tokens a minute before expiry: with 62 s tokens, 2 s in.
SHORT_LIVED = {"access_token_ttl": 62}
FIRST_LOAD_BUDGET = 200_000


@pytest.mark.parametrize("console", [SHORT_LIVED], indirect=True)
async def test_tokens_are_refreshed_before_they_expire_and_status_refreshes(
    console: Console,
) -> None:
    page = console.page
    email = await new_account(console)
    async with page.expect_response("**/v1/auth/refresh", timeout=10_000) as refreshed:
        await sign_in(console, email)
    assert (await refreshed.value).status == 200
    await page.get_by_role("link", name="Status").click()
    await page.locator("#status-table").wait_for()
    # The page asks again by itself, every 5 s.
    async with page.expect_request("**/v1/system/status", timeout=10_000):
        pass
    await page.locator("#status-summary").wait_for()
    await page.locator("#status-checks").get_by_text("database").first.wait_for()
    await console.screenshot("status")
    await page.get_by_role("button", name="Pause").click()
    await page.get_by_text("Paused", exact=False).wait_for()
    await page.get_by_role("button", name="Resume").click()
    await page.get_by_text("Refreshed every 5 s", exact=False).wait_for()


async def test_profile_two_factor_set_up_security_log_and_a_revoked_session(
    console: Console,
) -> None:
    page = console.page
    email = await new_account(console)
    await sign_in(console, email)
    await page.get_by_role("link", name="Account").click()
    form = page.locator("#profile-form")
    await form.get_by_label("Display name").fill("Ann <i>Operator</i>")
    await form.get_by_label("Tags").fill("night shift, kiln")
    await form.get_by_role("button", name="Save").click()
    await page.locator(".message-ok").wait_for()
    await expect(form.get_by_label("Tags")).to_have_value("night shift, kiln")
    await expect(form.get_by_label("Display name")).to_have_value("Ann <i>Operator</i>")
    await page.locator("#session-table tbody tr").first.wait_for()

    # Two-factor set-up: the QR code and the key, a code from the app, the recovery codes.
    await page.get_by_role("button", name="Set up two-factor login").click()
    await page.get_by_role("img", name="QR code for an authenticator app").wait_for()
    secret = await page.locator("#mfa-secret").text_content()
    assert secret
    enable = page.locator("#mfa-enable-form")
    await enable.get_by_label("Code from the app").fill(totp_code(secret))
    await enable.get_by_role("button", name="Turn on").click()
    await expect(page.locator("#recovery-codes li")).to_have_count(10)
    await page.locator("#security-log").get_by_text("mfa enabled").wait_for()
    await console.screenshot("account")
    await page.get_by_label("Action").select_option("login_failed")
    await page.wait_for_url("**action=login_failed*")
    await page.get_by_text("Nothing recorded.").wait_for()

    # Ending this tab's own session signs out like "Log out", not by a 401.
    await page.get_by_role("button", name="Sign out here").click()
    await page.locator("#login-form").wait_for()
    await page.get_by_text("You are signed out.").wait_for()
    await console.screenshot("signed-out")


async def test_the_first_load_is_small_and_keeps_the_content_security_policy(
    console: Console,
) -> None:
    page = console.page
    responses: list[Any] = []
    page.on("response", lambda response: responses.append(response))
    answer = await page.goto(f"{console.base_url}/")
    assert answer is not None
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    await page.locator("#login-form").wait_for()
    await page.wait_for_load_state("networkidle")
    # The bytes as the gateway sent them (gzipped where that pays), as the browser counted.
    served: dict[str, int] = {}
    for response in responses:
        served[response.url] = (await response.request.sizes())["responseBodySize"]
        if response.url.endswith(".js") and len(await response.body()) >= MINIMUM_SIZE:
            assert response.headers.get("content-encoding") == "gzip", response.url
    assert not any("uplot" in url for url in served), "the chart library loads with a chart"
    assert sum(served.values()) < FIRST_LOAD_BUDGET, f"{served} bytes as served"
    # On a phone: the same screens, one column.
    await page.set_viewport_size({"width": 390, "height": 844})
    await console.screenshot("sign-in-phone")
