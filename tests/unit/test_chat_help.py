"""The chat's help library: articles load whole, questions find the right passage.

The questions here are held out from the calibration set
(``services/chat/chat/help/calibration.py``) that chose the relevance
threshold, so they test the ranking rather than repeat its tuning.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.chat.chat.help import calibration
from services.chat.chat.help.library import (
    ARTICLES_DIR,
    MIN_SCORE,
    HelpLibrary,
    normalize,
    parse_article,
)

TOPICS = {
    "registering-devices",
    "device-credentials",
    "streaming-readings",
    "viewing-readings",
    "importing-files",
    "two-factor-authentication",
    "password-reset",
    "email-verification",
    "signing-in",
    "sessions",
    "security-log",
    "downloading-your-data",
    "anomalies",
    "reviewing-anomalies",
    "exports",
    "correlations",
    "site-credentials",
    "system-status",
    "profile-and-settings",
    "alerts",
}

# Written as users write: curt or polite, lower case, typos, no punctuation.
QUESTIONS: list[tuple[str, str]] = [
    ("how can i get an email when the cellar gets too warm", "alerts"),
    ("webhook isnt being called", "alerts"),
    ("notify my on call phone through pagerduty", "alerts"),
    ("How do I register a new device?", "registering-devices"),
    ("add tempature sensor", "registering-devices"),
    ("how can i put my sensor in maintenance mode", "registering-devices"),
    ("delete a device i dont use anymore", "registering-devices"),
    ("where do I get the device token", "device-credentials"),
    ("a sensor was stolen, how do i revoke its credential", "device-credentials"),
    ("my sensor needs an api key", "device-credentials"),
    ("how should my device send measurements", "streaming-readings"),
    ("what does BATCH_TOO_LARGE mean", "streaming-readings"),
    ("readings rejected because timestamp in the future??", "streaming-readings"),
    ("is there a simulator to test without hardware", "streaming-readings"),
    ("how do i get readings between two dates for a graph", "viewing-readings"),
    ("data retention", "viewing-readings"),
    ("how to upload a csv of old readings", "importing-files"),
    ("import historical data from a json file", "importing-files"),
    ("my upload is stuck in PROCESSING, how do i check the status", "importing-files"),
    ("how many batches can i have open", "importing-files"),
    ("how do i turn on two factor", "two-factor-authentication"),
    ("enable mfa pls", "two-factor-authentication"),
    ("authenticator code not accepted", "two-factor-authentication"),
    ("how to switch off two-step verification", "two-factor-authentication"),
    ("forgot my pasword", "password-reset"),
    ("I can't remember my password, what do I do?", "password-reset"),
    ("password requirements", "password-reset"),
    ("didnt receive verification mail", "email-verification"),
    ("resend the confirmation link", "email-verification"),
    ("how do i login", "signing-in"),
    ("too many failed login attempts now im locked out", "signing-in"),
    ("what is a refresh token", "signing-in"),
    ("sign out from all devices", "sessions"),
    ("list my active sessions", "sessions"),
    ("someone else is logged into my account on another computer, kick them out", "sessions"),
    ("where can i see failed login attempts", "security-log"),
    ("audit log", "security-log"),
    ("I want a copy of all the personal data you hold on me", "downloading-your-data"),
    ("download my data as xml", "downloading-your-data"),
    ("what kinds of anomalies do you detect", "anomalies"),
    ("what's a spike vs a dip", "anomalies"),
    ("how do I see anomalies as they happen", "anomalies"),
    ("how do i mark an anomaly as a false positive", "reviewing-anomalies"),
    ("change the detection threshold for a stream", "reviewing-anomalies"),
    ("export anomalies as json", "exports"),
    ("how can i get a csv of my anomalies", "exports"),
    ("what does p value mean in correlations", "correlations"),
    ("what is best lag seconds", "correlations"),
    ("is my correlation significant", "correlations"),
    ("pearson or spearman which one", "correlations"),
    ("how do upload sites authenticate", "site-credentials"),
    ("i lost the client secret of my site", "site-credentials"),
    ("create an account and site for a partner", "site-credentials"),
    ("is everything running ok", "system-status"),
    ("are you having an outage", "system-status"),
    ("set time zone to europe/berlin", "profile-and-settings"),
    ("how do I update my profile", "profile-and-settings"),
]

OFF_TOPIC = [
    "best pizza in rome",
    "what time is it in tokyo",
    "who is the president of the united states",
    "sing me a song",
    "how do i cook pasta",
    "xyzzy plugh",
    "what's your favourite colour",
    "is it going to rain this weekend",
    "how many legs does a spider have",
    "order me a taxi",
    "?",
    "...",
]


def test_every_topic_has_an_article(library: HelpLibrary) -> None:
    assert {article.slug for article in library.articles()} == TOPICS
    assert len(library.articles()) >= 12


def test_every_article_has_a_title_sections_and_its_url(library: HelpLibrary) -> None:
    for article in library.articles():
        assert article.title and not article.title.startswith("#")
        assert article.markdown.startswith(f"# {article.title}\n")
        assert article.url == f"/v1/chat/help/{article.slug}"
        assert article.markdown.count("\n## ") >= 2, article.slug
        # Keyword comments index the article but are not shown.
        assert "<!--" not in article.markdown, article.slug
        assert library.article(article.slug) == article


def test_every_section_is_short_and_found_by_its_own_heading(library: HelpLibrary) -> None:
    for article in library.articles():
        headings = [line[3:] for line in article.markdown.splitlines() if line.startswith("## ")]
        for heading in headings:
            found = library.search(heading, limit=3)
            assert found, heading
            assert found[0].slug == article.slug, (heading, found[0])
            assert heading in [p.section for p in found], heading
            assert len(next(p.text for p in found if p.section == heading)) < 900, heading


def test_unknown_article_is_none(library: HelpLibrary) -> None:
    assert library.article("no-such-article") is None


@pytest.mark.parametrize(("question", "slug"), QUESTIONS)
def test_a_users_question_finds_the_right_article(
    library: HelpLibrary, question: str, slug: str
) -> None:
    passages = library.search(question)
    assert passages, question
    assert passages[0].slug == slug, [(p.slug, p.section, p.score) for p in passages]


def test_every_topic_is_asked_at_least_twice() -> None:
    asked = [slug for _, slug in QUESTIONS]
    assert all(asked.count(slug) >= 2 for slug in TOPICS)


@pytest.mark.parametrize(("question", "slug"), calibration.ON_TOPIC)
def test_calibration_questions_still_rank_their_article_first(
    library: HelpLibrary, question: str, slug: str
) -> None:
    passages = library.search(question, limit=1)
    assert [p.slug for p in passages] == [slug]


@pytest.mark.parametrize("question", OFF_TOPIC + list(calibration.OFF_TOPIC))
def test_off_topic_questions_find_nothing(library: HelpLibrary, question: str) -> None:
    assert library.search(question) == []


def test_the_threshold_separates_on_from_off_topic(library: HelpLibrary) -> None:
    on_topic = [library.scores(q).max() for q, _ in QUESTIONS]
    off_topic = [library.scores(q).max(initial=0.0) for q in OFF_TOPIC]
    assert min(on_topic) >= MIN_SCORE > max(off_topic)


def test_passages_carry_article_title_text_url_and_descending_scores(
    library: HelpLibrary,
) -> None:
    passages = library.search("how do i turn on two factor", limit=3)
    assert len(passages) == 3
    top = passages[0]
    assert top.slug == "two-factor-authentication"
    assert top.title == "Two-factor authentication (MFA)"
    assert top.section == "How do I turn on two-factor authentication?"
    assert "/v1/auth/mfa/setup" in top.text and "/v1/auth/mfa/enable" in top.text
    assert not top.text.startswith("#")
    assert top.url == "/v1/chat/help/two-factor-authentication"
    scores = [p.score for p in passages]
    assert scores == sorted(scores, reverse=True)
    assert all(p.score >= MIN_SCORE for p in passages)


def test_limit_bounds_the_answer(library: HelpLibrary) -> None:
    assert len(library.search("password", limit=1)) == 1
    assert len(library.search("password", limit=5)) == 5
    assert library.search("password", limit=0) == []


@pytest.mark.parametrize("question", ["", "   ", "\n\t", "the and of", "how do I?"])
def test_blank_or_empty_questions_find_nothing(library: HelpLibrary, question: str) -> None:
    assert library.search(question) == []


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_answered_without_error(question: str) -> None:
    passages = _shared_library().search(question, limit=2)
    assert len(passages) <= 2
    assert all(p.score >= MIN_SCORE and p.url.startswith("/v1/chat/help/") for p in passages)


_LIBRARY: list[HelpLibrary] = []


def _shared_library() -> HelpLibrary:
    # Hypothesis tests cannot take function-scoped fixtures; index once.
    if not _LIBRARY:
        _LIBRARY.append(HelpLibrary.load())
    return _LIBRARY[0]


def test_normalize_folds_case_accents_endings_and_filler() -> None:
    assert normalize("How do I IMPORT Files?") == "import file"
    assert normalize("Réglages") == "reglage"
    assert normalize("where am i logged in") == "log in"
    assert normalize("devices' anomalies") == "device anomaly"


def test_a_directory_of_articles_loads_and_is_searched(tmp_path: Path) -> None:
    (tmp_path / "watering.md").write_text(
        "# Watering plants\n\n<!-- keywords: irrigation -->\n\n"
        "## How often should I water?\n\nOnce a week in winter.\n\n"
        "## What about cactus?\n\nHardly ever.\n",
        encoding="utf-8",
    )
    (tmp_path / "pruning.md").write_text(
        "# Pruning\n\n## When do I prune roses?\n\nIn early spring.\n", encoding="utf-8"
    )
    library = HelpLibrary.load(tmp_path)
    assert [a.slug for a in library.articles()] == ["pruning", "watering"]
    assert {p.slug for p in library.search("irigation")} == {"watering"}
    top = library.search("how often do i water")[0]
    assert (top.slug, top.section, top.text) == (
        "watering",
        "How often should I water?",
        "Once a week in winter.",
    )
    assert library.search("when to prune my roses")[0].slug == "pruning"


@pytest.mark.parametrize(
    ("slug", "source", "problem"),
    [
        ("no-title", "Just text\n\n## A\n\nb\n", "first line"),
        ("no-sections", "# Title\n\nText without sections.\n", "no '## ' section"),
        ("empty-section", "# Title\n\n## Empty\n\n## Full\n\ntext\n", "is empty"),
        ("Bad_Name", "# Title\n\n## A\n\nb\n", "file name"),
    ],
)
def test_a_broken_article_is_refused_with_its_name(slug: str, source: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_article(slug=slug, source=source)


def test_an_empty_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no article"):
        HelpLibrary.load(tmp_path)


def test_the_articles_ship_with_the_package() -> None:
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"services.chat.chat.help" = ["articles/*.md"]' in pyproject
    assert ARTICLES_DIR.is_dir()
