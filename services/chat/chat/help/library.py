"""The help library: Markdown articles split into passages, ranked for a question.

Each article is a Markdown file ``<slug>.md`` whose first line is ``# Title``;
its ``## `` sections are the passages, each meant to answer one question.
An HTML comment ``<!-- keywords: ... -->`` (invisible when the Markdown is
rendered) adds words users say but the prose does not ("2fa", "locked
out"); one before the first section applies to every passage of the article,
one inside a section to that passage only. Keyword comments are stripped from
what is shown.

Ranking is TF-IDF with cosine similarity (scikit-learn) over two views of the
same text: word unigrams and bigrams, which reward the exact terms, and
character n-grams within words, which still match when a user mistypes
("pasword", "two factr"). Both views see the text after light normalisation
(lower case, accents folded, filler words dropped, plural and -ing/-ed
endings trimmed), so "importing files" meets "import a file", and a question
word no article uses is replaced by the closest article word (difflib), so
"pasword" reads as "password". The score of a passage is the weighted mean of
the two similarities, scaled down when most of the question (by IDF weight)
is words no article uses: "write me a poem" is not about devices however
well "write" matches.

Within an article, the section is chosen by its own words (heading, text and
its own keywords, without the title and the article's keywords): every section
carries the article's keywords, so on them alone the shortest section won
("2fa" answered how to turn it *off*). A section then scores its article's
best score, scaled between :data:`SECTION_FLOOR` and 1 by how well its own words
match; when none of them match, the article's first section, its overview, is
the answer. Below :data:`MIN_SCORE` nothing is relevant and
:meth:`HelpLibrary.search` answers ``[]`` (how the threshold was chosen is
written beside it).
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

ARTICLES_DIR = Path(__file__).resolve().parent / "articles"
URL_PREFIX = "/v1/chat/help/"

# Weight of the word view in the score; the character view takes the rest.
# Words are the sharper signal, characters the safety net for typos.
WORD_WEIGHT = 0.6

# A question word the articles never use is replaced by the articles' word it
# most resembles (difflib's ratio at least this), if it has this many letters:
# "pasword" reads as "password", while short words ("rome", "cats") are left
# alone, since at that length one letter makes another word.
SPELLING_CUTOFF = 0.85
MIN_CORRECTABLE = 5
MAX_CACHED_CORRECTIONS = 50_000

# Share of the score kept by a question none of whose words the articles use;
# the rest grows with the square of the (IDF-weighted) share of its words that
# they do use, so one familiar word among strange ones counts for little.
COVERAGE_FLOOR = 0.4
COVERAGE_POWER = 2.0

# A section's share of its article's score when none of its own words match the
# question (its first section's when no section's own words match at all).
SECTION_FLOOR = 0.5
# Own-word similarities below this are noise (a shared character trigram), not a
# preference for one section.
SECTION_NOISE = 0.05

# Particles that change a phrase's sense ("log in", "turn off") but say
# nothing about whether a question is on topic.
PARTICLES = frozenset({"in", "out", "on", "off", "up", "down"})

# Calibrated with `python -m services.chat.chat.help.calibration`, which
# prints the best score of each of its on-topic and off-topic questions: the
# lowest on-topic best score is 0.167 there (0.112 over the held-out questions
# of tests/unit/test_chat_help.py), while off-topic ones ("best pizza in
# rome", "who is the president of the united states", "what time is it in
# tokyo") stay at or below 0.089. The threshold sits between the two.
MIN_SCORE = 0.1

# Words that carry no topic: question scaffolding and politeness. Kept short
# on purpose: "down", "off", "in", "two", "first" and the like are topics here
# ("is the system down", "turn off two-factor", "where am I logged in"),
# unlike in generic stop lists.
_STOP_WORDS_TEXT = """
    a an the and or but if then so of to at by for from with about as into
    i me my mine myself we us our you your yours he she it its they them their
    is are was were be been being am do does did doing done have has had having
    can could would should will shall may might must
    how what when where which who whom whose why
    this that these those there here
    please pls plz thanks thank thx hi hello hey ok okay just also
    want wanna need needs like know tell explain help
    whats hows wheres whys dont doesnt didnt cant cannot wont im ive id
    mean means meaning whether
    some any all very really much many
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())

_TITLE = re.compile(r"\A#[ \t]+(?P<title>[^\n]+?)[ \t]*(?:\n|\Z)")
_SECTION = re.compile(r"^##[ \t]+(?P<heading>[^\n]+?)[ \t]*$", re.MULTILINE)
_KEYWORDS = re.compile(r"<!--\s*keywords:(?P<words>.*?)-->[ \t]*\n?", re.DOTALL | re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9]+")
_SLUG = re.compile(r"\A[a-z0-9]+(?:-[a-z0-9]+)*\Z")


@dataclass(frozen=True, slots=True)
class Passage:
    """One section of an article, scored against a question."""

    slug: str
    title: str
    text: str
    url: str
    score: float
    # The section's heading (the question it answers); last and defaulted so
    # that the shared contract's five fields keep their order.
    section: str = ""


@dataclass(frozen=True, slots=True)
class Article:
    """A help article as shown to users (keyword comments removed)."""

    slug: str
    title: str
    markdown: str
    url: str


@dataclass(frozen=True, slots=True)
class _Section:
    slug: str
    title: str
    heading: str
    text: str
    url: str
    index_text: str
    own_text: str  # the heading, the text and the section's own keywords


def article_url(slug: str) -> str:
    """The chat API's address of an article."""
    return f"{URL_PREFIX}{slug}"


def normalize(text: str) -> str:
    """Lower-case, fold accents, drop filler words and trim common endings.

    Both the passages and the questions go through this, so the two meet on
    the same terms whatever the inflection.
    """
    # "car's" and "don't" become one word ("cars", "dont") rather than two.
    folded = unicodedata.normalize("NFKD", text.lower()).replace("'", "").replace("\u2019", "")
    ascii_text = folded.encode("ascii", "ignore").decode("ascii")
    return " ".join(_stem(word) for word in _WORD.findall(ascii_text) if word not in STOP_WORDS)


def _stem(word: str) -> str:
    # A deliberately light stemmer: enough to merge "devices"/"device",
    # "importing"/"import", "logged"/"log", not a linguistic one.
    if word.isdigit() or len(word) <= 3:
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            root = word[: -len(suffix)]
            # "logged" -> "logg" -> "log"; "installed" keeps its "ll".
            if root[-1] == root[-2] and root[-1] not in "lsz":
                root = root[:-1]
            return root
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def parse_article(*, slug: str, source: str) -> tuple[Article, list[_Section]]:
    """Split one article's Markdown into the article and its sections.

    Raises ``ValueError`` when the slug is not lower-case words joined by
    hyphens, the first line is not ``# Title`` or the article has no
    ``## `` section, so a broken article stops start-up instead of
    silently vanishing from the answers.
    """
    if not _SLUG.match(slug):
        raise ValueError(f"help article {slug!r}: the file name must be lower-case-words.md")
    source = source.replace("\r\n", "\n")
    title_match = _TITLE.match(source)
    if title_match is None:
        raise ValueError(f"help article {slug!r}: the first line must be '# Title'")
    title = title_match.group("title")
    body = source[title_match.end() :]
    headings = list(_SECTION.finditer(body))
    if not headings:
        raise ValueError(f"help article {slug!r}: no '## ' section")
    preamble = body[: headings[0].start()]
    shared_keywords = _keywords(preamble)
    url = article_url(slug)
    sections = []
    for position, heading in enumerate(headings):
        end = headings[position + 1].start() if position + 1 < len(headings) else len(body)
        raw = body[heading.end() : end]
        text = _KEYWORDS.sub("", raw).strip()
        if not text:
            raise ValueError(f"help article {slug!r}: section {heading['heading']!r} is empty")
        name = heading.group("heading")
        # The heading is the question the passage answers, so it counts twice.
        index_text = " ".join((title, name, name, text, shared_keywords, _keywords(raw)))
        own_text = " ".join((name, name, text, _keywords(raw)))
        sections.append(
            _Section(
                slug=slug,
                title=title,
                heading=name,
                text=text,
                url=url,
                index_text=index_text,
                own_text=own_text,
            )
        )
    markdown = _KEYWORDS.sub("", source).strip() + "\n"
    markdown = re.sub(r"\n{3,}", "\n\n", markdown)
    return Article(slug=slug, title=title, markdown=markdown, url=url), sections


def _keywords(text: str) -> str:
    return " ".join(match.group("words").strip() for match in _KEYWORDS.finditer(text))


class HelpLibrary:
    """The help articles, indexed once, searched per question."""

    def __init__(self, articles: Iterable[tuple[Article, list[_Section]]]) -> None:
        """Index parsed articles; use :meth:`load` to read them from files."""
        self._articles: dict[str, Article] = {}
        self._sections: list[_Section] = []
        for article, sections in articles:
            if article.slug in self._articles:
                raise ValueError(f"help article {article.slug!r} appears twice")
            self._articles[article.slug] = article
            self._sections.extend(sections)
        if not self._sections:
            raise ValueError("the help library has no article")
        corpus = [normalize(section.index_text) for section in self._sections]
        self._words = TfidfVectorizer(
            analyzer="word",
            ngram_range=(1, 2),
            sublinear_tf=True,
            token_pattern=r"\S+",
            lowercase=False,
        )
        self._chars = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=(3, 5),
            sublinear_tf=True,
            lowercase=False,
        )
        # TfidfVectorizer rows are L2-normalised, so a dot product is the cosine.
        self._word_matrix = self._words.fit_transform(corpus)
        self._char_matrix = self._chars.fit_transform(corpus)
        own = [normalize(section.own_text) for section in self._sections]
        self._own_word_matrix = self._words.transform(own)
        self._own_char_matrix = self._chars.transform(own)
        # Each section's article, as an index, and whether it is the article's first.
        slugs = list(dict.fromkeys(section.slug for section in self._sections))
        self._article_of = np.array([slugs.index(section.slug) for section in self._sections])
        self._first = np.array(
            [i == 0 or self._sections[i - 1].slug != s.slug for i, s in enumerate(self._sections)]
        )
        self._idf: dict[str, float] = {
            term: float(idf)
            for term, idf in zip(self._words.get_feature_names_out(), self._words.idf_, strict=True)
            if " " not in term
        }
        self._unknown_idf = max(self._idf.values())
        self._vocabulary = frozenset(self._idf)
        self._corrections: dict[str, str] = {}
        # Spelling candidates by length: a typo changes the length by at most one.
        self._by_length: dict[int, list[str]] = {}
        for word in sorted(self._vocabulary):
            if not word.isdigit():
                self._by_length.setdefault(len(word), []).append(word)

    @classmethod
    def load(cls, directory: Path | None = None) -> HelpLibrary:
        """Read and index every ``*.md`` article of ``directory`` (default: the packaged ones)."""
        folder = directory if directory is not None else ARTICLES_DIR
        paths = sorted(folder.glob("*.md"))
        return cls(
            parse_article(slug=path.stem, source=path.read_text(encoding="utf-8")) for path in paths
        )

    def search(self, query: str, *, limit: int = 3) -> list[Passage]:
        """The passages that answer ``query``, best first; ``[]`` when nothing is relevant."""
        if limit <= 0:
            return []
        scores = self.scores(query)
        if scores.size == 0:
            return []
        ranked = np.argsort(-scores, kind="stable")[:limit]
        return [
            _passage(self._sections[index], float(scores[index]))
            for index in ranked
            if scores[index] >= MIN_SCORE
        ]

    def scores(self, query: str) -> np.ndarray:
        """Every passage's score for ``query``, in index order (empty for a blank query).

        Public for calibration and diagnostics; :meth:`search` is the way to ask.
        """
        tokens = [self._correct(token) for token in normalize(query).split()]
        if not tokens:
            return np.zeros(0)
        text = " ".join(tokens)
        word_query = self._words.transform([text]).T
        char_query = self._chars.transform([text]).T
        words = (self._word_matrix @ word_query).toarray().ravel()
        chars = (self._char_matrix @ char_query).toarray().ravel()
        similarity = WORD_WEIGHT * words + (1.0 - WORD_WEIGHT) * chars
        # A question whose words the articles mostly never use is about
        # something else, however well its one familiar word matches
        # ("write me a poem" shares only "write" with the device articles).
        full = similarity * self._coverage(tokens)
        own_words = (self._own_word_matrix @ word_query).toarray().ravel()
        own_chars = (self._own_char_matrix @ char_query).toarray().ravel()
        own = WORD_WEIGHT * own_words + (1.0 - WORD_WEIGHT) * own_chars
        result: np.ndarray = np.zeros_like(full)
        for article in np.unique(self._article_of):
            members = self._article_of == article
            best_own = own[members].max()
            if best_own < SECTION_NOISE:
                share = np.where(self._first[members], 1.0, SECTION_FLOOR)
            else:
                share = SECTION_FLOOR + (1.0 - SECTION_FLOOR) * own[members] / best_own
            result[members] = full[members].max() * share
        return result

    def _correct(self, token: str) -> str:
        """The library's own spelling of a mistyped word, else the word as given."""
        if token in self._vocabulary or len(token) < MIN_CORRECTABLE or token.isdigit():
            return token
        cached = self._corrections.get(token)
        if cached is not None:
            return cached
        nearby = self._by_length.get(len(token) - 1, []) + self._by_length.get(len(token), [])
        nearby += self._by_length.get(len(token) + 1, [])
        match = difflib.get_close_matches(token, nearby, n=1, cutoff=SPELLING_CUTOFF)
        corrected = match[0] if match else token
        # difflib is the slow part of a search; the same strange words recur.
        if len(self._corrections) < MAX_CACHED_CORRECTIONS:
            self._corrections[token] = corrected
        return corrected

    def _coverage(self, tokens: list[str]) -> float:
        # Words weigh by their rarity (IDF), a word the articles never use by
        # the highest: "unit" and "state" do not make "the president of the
        # united states" a question about system status.
        content = [token for token in tokens if token not in PARTICLES]
        if not content:
            return 1.0
        weights = [self._idf.get(token, self._unknown_idf) for token in content]
        known = sum(w for token, w in zip(content, weights, strict=True) if token in self._idf)
        share = known / sum(weights)
        return COVERAGE_FLOOR + (1.0 - COVERAGE_FLOOR) * share**COVERAGE_POWER

    def article(self, slug: str) -> Article | None:
        """The article named ``slug``, or None."""
        return self._articles.get(slug)

    def articles(self) -> list[Article]:
        """Every article, by slug."""
        return [self._articles[slug] for slug in sorted(self._articles)]


def _passage(section: _Section, score: float) -> Passage:
    return Passage(
        slug=section.slug,
        title=section.title,
        text=section.text,
        url=section.url,
        score=round(score, 4),
        section=section.heading,
    )
