"""Steps the browser tests share: an account made over REST, and signing in through the
console's own form."""

from __future__ import annotations

from tests.browser.conftest import Console
from tests.service.auth_support import totp_code
from tests.support import PASSWORD, new_email


async def new_account(console: Console) -> str:
    """Register an account through the gateway; answers its email."""
    email = new_email()
    answer = await console.http.post(
        "/v1/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert answer.status_code == 201, answer.text
    return email


async def sign_in(console: Console, email: str, *, mfa_secret: str = "") -> None:
    """Sign in through the console's form, answering the MFA step when asked."""
    page = console.page
    await console.open("/")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    if mfa_secret:
        code = page.get_by_label("MFA code")
        await code.wait_for()
        await code.fill(totp_code(mfa_secret, steps_ahead=1))
        await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url("**/#/devices")


async def access_header(console: Console, email: str) -> dict[str, str]:
    """A REST login of ``email``: the header to call the gateway as that user."""
    answer = await console.http.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"authorization": f"Bearer {answer.json()['data']['access_token']}"}


async def new_device(
    console: Console, email: str, name: str, kind: str
) -> tuple[dict[str, str], str]:
    """Register a device of ``email`` over REST; answers the user's header and its id."""
    who = await access_header(console, email)
    answer = await console.http.post("/v1/devices", headers=who, json={"name": name, "type": kind})
    assert answer.status_code == 201, answer.text
    return who, str(answer.json()["data"]["device_id"])


async def device_token(console: Console, who: dict[str, str], device_id: str) -> str:
    """Issue a credential of ``device_id`` over REST as ``who``; answers its token."""
    issued = await console.http.post(f"/v1/devices/{device_id}/credentials", headers=who, json={})
    assert issued.status_code == 201, issued.text
    return str(issued.json()["data"]["token"])
