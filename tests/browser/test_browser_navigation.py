"""Moving between screens by their addresses: each lazily loaded screen (alerts,
correlations, imports) opens with its own content when reached straight from another,
by typing its address or following a link, and the back button returns."""

from __future__ import annotations

from tests.browser.conftest import Console
from tests.browser.steps import new_account, sign_in

# Each screen's address and the heading it opens with.
LAZY_SCREENS = [
    ("/imports", "Imports"),
    ("/alerts", "Alert rules"),
    ("/correlations", "Correlate two streams"),
    ("/imports", "Imports"),
]


async def test_one_lazy_screen_after_another_shows_each_ones_content(console: Console) -> None:
    page = console.page
    email = await new_account(console)
    await sign_in(console, email)

    for route, heading in LAZY_SCREENS:
        await console.open(route)  # only the address's fragment changes: no reload
        await page.get_by_role("heading", name=heading).wait_for()
        assert "[object Object]" not in await page.locator("main").inner_text()
    await console.screenshot("navigation-lazy-screens")

    await page.go_back()
    await page.get_by_role("heading", name="Correlate two streams").wait_for()
    await page.go_back()
    await page.get_by_role("heading", name="Alert rules").wait_for()
