"""The intent classifier: TF-IDF over words and characters into a linear SVM, temperature-scaled.

Word uni- and bigrams carry the meaning ("how many", "talk to"); character
n-grams within words (2-5) carry the rest, and absorb typos and inflections
("devcies", "readings"). Numbers are read as one token ("sensor 3" and
"sensor 12" are the same kind of question).

A linear SVM separates the intents as well as a logistic regression on these
utterances (5-fold cross-validation: within a point either way) and fits
several times faster. Its scores become probabilities by temperature scaling
(Guo et al., 2017): a softmax of the scores times one factor, fitted to the
scores of held-out folds, so that the top probability, the confidence, means
what it says. Prediction is one sparse product and a softmax in numpy, about a
millisecond.

Training takes a few hundred milliseconds and is deterministic (fixed folds,
fixed seed), so the process trains at start-up instead of shipping a pickled
model. It runs on one BLAS thread: on a busy two-core machine more threads only
wait on each other.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.optimize import minimize_scalar
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits

Floats = npt.NDArray[np.float64]

_DIGITS = re.compile(r"\d+")
_SPACE = re.compile(r"\s+")
MAX_CHARS = 4000
"""Characters of a message the classifier reads."""
FOLDS = 3
"""Held-out folds whose scores fit the temperature."""


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled utterance."""

    text: str
    intent: str


def load_examples(path: Path | None = None) -> list[Example]:
    """The labelled utterances of ``path`` (JSON lines), by default the packaged ones."""
    if path is None:
        raw = resources.files("services.chat.chat.nlu").joinpath("data/train.jsonl").read_text()
    else:
        raw = path.read_text()
    examples = []
    for line in raw.splitlines():
        if line.strip():
            item = json.loads(line)
            examples.append(Example(text=item["text"], intent=item["intent"]))
    return examples


def prepare(text: str) -> str:
    """``text`` as the vectorisers read it: lowercase, numbers as 0, one space between words."""
    return _SPACE.sub(" ", _DIGITS.sub("0", text[:MAX_CHARS].lower())).strip()


def _vectorisers() -> tuple[TfidfVectorizer, TfidfVectorizer]:
    words = TfidfVectorizer(
        analyzer="word", ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b"
    )
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)
    return words, chars


def _softmax(scores: Floats) -> Floats:
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return np.asarray(exp / exp.sum(axis=1, keepdims=True), dtype=np.float64)


def _fit_temperature(scores: Floats, truth: npt.NDArray[np.int64]) -> float:
    """The factor on ``scores`` that minimises the log-loss of their softmax."""

    def loss(factor: float) -> float:
        p = _softmax(scores * factor)[np.arange(truth.size), truth]
        return float(-np.log(np.clip(p, 1e-12, 1.0)).mean())

    return float(minimize_scalar(loss, bounds=(0.1, 50.0), method="bounded").x)


class IntentClassifier:
    """Answers the probability of each intent for an utterance."""

    def __init__(
        self,
        *,
        vectorisers: tuple[TfidfVectorizer, TfidfVectorizer],
        weights: Floats,
        bias: Floats,
        factor: float,
        intents: Sequence[str],
    ) -> None:
        self._vectorisers = vectorisers
        self._weights = weights  # (features, intents)
        self._bias = bias
        self.factor = factor
        """The temperature's factor on the SVM scores."""
        self.intents: tuple[str, ...] = tuple(intents)

    @classmethod
    def train(cls, examples: Sequence[Example], *, c: float = 1.0) -> IntentClassifier:
        """A classifier fitted on ``examples``; ``c`` is the SVM's inverse regularisation."""
        texts = [prepare(e.text) for e in examples]
        intents = sorted({e.intent for e in examples})
        truth = np.array([intents.index(e.intent) for e in examples], dtype=np.int64)
        with threadpool_limits(limits=1):
            # The vocabulary and IDF are fitted once on every utterance: they use no labels,
            # so the held-out folds still say how the SVM does on sentences it never saw.
            vectorisers = _vectorisers()
            matrix = sp.hstack([v.fit_transform(texts) for v in vectorisers]).tocsr()
            held_out = np.zeros((len(texts), len(intents)))
            folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=0)
            for train, test in folds.split(texts, truth):
                svm = LinearSVC(C=c, random_state=0).fit(matrix[train], truth[train])
                # A fold may lack a rare intent: its column stays very unlikely.
                held_out[test] = -10.0
                held_out[np.ix_(test, svm.classes_)] = svm.decision_function(matrix[test])
            factor = _fit_temperature(held_out, truth)
            svm = LinearSVC(C=c, random_state=0).fit(matrix, truth)
        return cls(
            vectorisers=vectorisers,
            weights=np.asarray(svm.coef_.T, dtype=np.float64),
            bias=np.asarray(svm.intercept_, dtype=np.float64),
            factor=factor,
            intents=intents,
        )

    def vocabulary(self) -> frozenset[str]:
        """The single words of the training utterances."""
        return frozenset(w for w in self._vectorisers[0].vocabulary_ if " " not in w)

    def probabilities_many(self, texts: Sequence[str]) -> Floats:
        """The probabilities of many texts, one row each, columns in ``intents`` order."""
        features = _features(self._vectorisers, [prepare(t) for t in texts])
        scores = np.asarray(features @ self._weights) + self._bias
        return _softmax(scores * self.factor)

    def probabilities(self, text: str) -> dict[str, float]:
        """The probability of each intent for ``text``."""
        row = self.probabilities_many([text])[0]
        return {intent: float(p) for intent, p in zip(self.intents, row, strict=True)}


def _features(vectorisers: Sequence[TfidfVectorizer], texts: Sequence[str]) -> sp.csr_matrix:
    return sp.hstack([v.transform(texts) for v in vectorisers]).tocsr()
