"""The support chat in a real browser: the widget on a screen sends a message and shows
the assistant's reply with links to what it used; asking for a person puts the session in
the agents' queue, where an admin takes it and replies, and the reply reaches the user's
widget live."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import CONSOLE_SERVICES, TIMEOUT_MS, Console
from tests.browser.steps import new_account, new_device, sign_in
from tests.browser.test_browser_admin import WITH_ADMIN, sign_in_as_admin

WITH_CHAT = {"services": (*CONSOLE_SERVICES, "chat"), **WITH_ADMIN}


async def open_chat_and_ask(page: Any, question: str) -> Any:
    """Open the chat widget, wait for its events stream, and send ``question``; answers
    the assistant's replies."""
    await page.get_by_role("button", name="Chat with support").click()
    panel = page.locator("#chat-panel")
    await panel.get_by_text("live", exact=True).wait_for()
    await panel.get_by_label("Your message").fill(question)
    await panel.get_by_role("button", name="Send").click()
    return panel.locator(".chat-message.from-bot")


@pytest.mark.parametrize("console", [WITH_CHAT], indirect=True)
async def test_chat_answers_and_an_agent_replies_live(console: Console, browser: Any) -> None:
    page = console.page
    email = await new_account(console)
    await new_device(console, email, "Greenhouse", "temperature")
    await sign_in(console, email)
    reply = await open_chat_and_ask(page, "how many devices do i have?")
    panel = page.locator("#chat-panel")
    await reply.get_by_text("1 device").wait_for()
    await reply.get_by_role("link", name="The device").wait_for()
    await console.screenshot("chat")

    # The conversation survives a move to another screen.
    await page.get_by_role("link", name="Anomalies").click()
    await panel.get_by_text("how many devices do i have?").wait_for()

    # An admin, in another browser context, watches the queue: the session joins it as the
    # user asks for a person, from the queue's event stream (no polling while it is live).
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    agent_page = await context.new_page()
    agent = Console(agent_page, console.base_url, console.http, console.suite, console.shots)
    try:
        await sign_in_as_admin(agent)
        await agent.open("/admin/chat")
        await expect(agent_page.locator("#queue-state")).to_have_text("live")
        await agent_page.get_by_text("Nobody is waiting.").wait_for()
        await panel.get_by_label("Your message").fill("a human please")
        await panel.get_by_label("Your message").press("Enter")
        await panel.locator("#chat-waiting").wait_for()
        # The agent takes the session from the queue and replies.
        await agent_page.locator("#queue-table").get_by_text("a human please").wait_for()
        await agent.screenshot("chat-queue")
        await agent_page.get_by_role("link", name="Take").click()
        await agent_page.wait_for_url("**/#/admin/chat/*")
        await agent_page.get_by_text("Waiting for a person: you.").wait_for()
        await agent_page.get_by_label("Reply as support").fill("Hello, I am Sam from support.")
        await agent_page.get_by_role("button", name="Send").click()
        await agent_page.locator(".chat-message.from-agent").wait_for()
        await agent.screenshot("chat-agent")
    finally:
        await context.close()

    await panel.locator(".chat-message.from-agent", has_text="Sam from support").wait_for()
    await page.set_viewport_size({"width": 390, "height": 844})
    await console.screenshot("chat-phone")


@pytest.mark.parametrize("console", [{"services": (*CONSOLE_SERVICES, "chat")}], indirect=True)
async def test_a_visitor_chats_before_signing_in(console: Console) -> None:
    page = console.page
    await console.open("/")
    reply = await open_chat_and_ask(page, "how do i reset my password")
    panel = page.locator("#chat-panel")
    await reply.get_by_role("link", name="Help: password reset").click()
    await page.wait_for_url("**/#/help/password-reset")
    article = (await console.http.get("/v1/chat/help/password-reset")).json()["data"]
    await page.get_by_role("heading", name=article["title"]).wait_for()
    # The anonymous session (and its token) lasts for the tab, across screens.
    await panel.get_by_text("how do i reset my password").wait_for()
    await console.screenshot("chat-signed-out")
    # Escape closes the panel and gives the focus back to its button.
    await panel.get_by_label("Your message").press("Escape")
    await expect(page.locator("#chat-toggle")).to_be_focused()
