"""The interactive API documentation at /docs, in a real browser: Swagger UI renders the
gateway's operations from /openapi.json, from the gateway's own files, under its
Content-Security-Policy (the console fixture fails on any logged violation)."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.async_api import expect

from tests.browser.conftest import Console


async def test_the_api_documentation_renders_every_operation_from_local_files(
    console: Console,
) -> None:
    page = console.page
    hosts: set[str] = set()
    page.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))
    # Each page's violations, as the page itself reports them (added by the browser, which
    # the page's policy does not bind).
    await page.add_init_script(
        "window.cspViolations = [];"
        "document.addEventListener('securitypolicyviolation', (event) =>"
        " window.cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`));"
    )
    await console.open("/")
    await page.locator("#api-docs-link").click()
    await page.wait_for_url("**/docs")
    login = page.locator(".opblock-summary-path", has_text="/v1/auth/login").first
    await login.wait_for()
    await expect(page.locator(".opblock").first).to_be_visible()
    assert await page.locator(".opblock").count() > 20
    # Each operation's button holds no link of its own (a second, nameless Tab stop
    # inside a button): Tab goes from the button to its copy button.
    await expect(page.locator(".opblock-summary-control a[href]")).to_have_count(0)
    await page.locator(".opblock-summary-control").first.focus()
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.getAttribute('aria-label')") == (
        "Copy path to clipboard"
    )
    await page.wait_for_load_state("networkidle")
    await console.screenshot("docs")

    # Interactive: "Try it out" calls the gateway from the page and shows its answer.
    status = page.locator(
        ".opblock", has=page.locator(".opblock-summary-path", has_text="/v1/system/status")
    ).first
    await status.locator(".opblock-summary").click()
    await status.get_by_role("button", name="Try it out").click()
    await status.get_by_role("button", name="Execute").click()
    await expect(
        status.locator(".live-responses-table tbody .response-col_status").first
    ).to_have_text("200")
    assert await page.evaluate("window.cspViolations") == []
    assert hosts == {urlsplit(console.base_url).netloc}
