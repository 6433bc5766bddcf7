"""Which section of the right article answers: the one whose own words match, and the
article's first (its overview) when only the article's keywords do
(services/chat/chat/help/library.py); phrasings of our own, not the probe's."""

from __future__ import annotations

import pytest

from services.chat.chat.help.library import HelpLibrary


@pytest.mark.parametrize(
    ("question", "slug", "section"),
    [
        # Only the article's keywords match: its first section, not its shortest.
        ("totp", "two-factor-authentication", "How do I turn on two-factor authentication?"),
        ("switch on two-step verification", "two-factor-authentication",
         "How do I turn on two-factor authentication?"),
        # A signed-out visitor cannot change a password: resetting is the forgotten one.
        ("I need to reset a password I can't remember", "password-reset",
         "I forgot my password: how do I reset it?"),
        ("what are the steps to bring a csv of old readings in", "importing-files",
         "How do I import a file of old readings?"),
        ("renew the credential of a sensor", "device-credentials",
         "How do I rotate or replace a device credential?"),
        ("add 500 sensors in one go from a csv file", "registering-devices",
         "How do I register many devices at once?"),
        ("can my gateway publish readings to an mqtt broker", "streaming-readings",
         "Can a device send readings over MQTT?"),
        ("my login keeps saying too many attempts", "signing-in",
         "My account is locked after failed logins"),
    ],
)  # fmt: skip
def test_the_section_that_answers(
    library: HelpLibrary, question: str, slug: str, section: str
) -> None:
    best = library.search(question, limit=1)
    assert best, question
    assert (best[0].slug, best[0].section) == (slug, section)


def test_a_named_section_still_wins_over_the_overview(library: HelpLibrary) -> None:
    best = library.search("turn off two-factor", limit=1)[0]
    assert best.section == "How do I turn off two-factor authentication?"
