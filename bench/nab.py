"""The Numenta Anomaly Benchmark's scoring, as NAB's own code does it.

NAB (github.com/numenta/NAB, MIT since commit ea702d7) scores a detector
that gives every row of a labelled series an anomaly score in [0, 1]:

- rows in the first 15% of a series (at most 750) are probationary and not scored;
- a detection (score ≥ threshold) in a labelled window earns ``A_TP`` scaled by
  the sigmoid of its position in the window (the window's first row earns all
  of it); each window counts once, at its earliest detection, and a window with
  none costs ``A_FN``;
- a detection outside every window costs ``A_FP`` scaled by the sigmoid of its
  distance past the end of the window before it (in window widths), or the whole
  ``A_FP`` when no window precedes it;
- one threshold for the whole corpus is chosen to maximise the raw score, trying
  every distinct score from the highest down (ties keep the first, the highest);
- the raw score is normalised so that detecting nothing scores 0 and detecting
  every window at its first row scores 100.

This module reproduces that, row for row, with numpy:
``tests/unit/test_nab_scorer.py`` checks it against the reference table of
the development half, and ``bench/nab_bench.py`` scores our detector with it.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

Float64s = npt.NDArray[np.float64]
Int64s = npt.NDArray[np.int64]

PROBATION_SHARE = 0.15
PROBATION_MAX_ROWS = 750  # NAB: 0.15 * 5000
NULL_THRESHOLD = 1.1  # above every score: the threshold at which nothing is detected
WINDOW_SHARE = 0.10  # of a series' rows, shared by its labels' windows


@dataclass(frozen=True, slots=True)
class Profile:
    """A NAB application profile: the weights of true positives, false positives, misses."""

    name: str
    true_positive: float
    false_positive: float
    false_negative: float


PROFILES = (
    Profile("standard", 1.0, 0.11, 1.0),
    Profile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    Profile("reward_low_FN_rate", 1.0, 0.11, 2.0),
)
"""NAB's three profiles, as its ``config/profiles.json`` gives them."""


@dataclass(frozen=True, slots=True)
class Series:
    """One labelled series of the corpus."""

    name: str  # "<category>/<file>.csv", as NAB names it
    timestamps_us: Int64s
    values: Float64s
    windows: tuple[tuple[int, int], ...]  # first and last row of each window, inclusive

    @property
    def probation(self) -> int:
        """Rows at the start that are not scored."""
        rows = self.values.size
        return int(min(math.floor(PROBATION_SHARE * rows), PROBATION_MAX_ROWS))


@dataclass(frozen=True, slots=True)
class Corpus:
    """The labelled series and NAB's profiles."""

    series: tuple[Series, ...]
    profiles: tuple[Profile, ...]

    @property
    def windows(self) -> int:
        """Labelled windows over every series."""
        return sum(len(s.windows) for s in self.series)


@dataclass(frozen=True, slots=True)
class Score:
    """A detector's score on the corpus under one profile."""

    profile: str
    threshold: float
    raw: float
    normalized: float
    true_positive_rows: int
    false_positive_rows: int
    windows_found: int
    windows: int


def scaled_sigmoid(position: Float64s) -> Float64s:
    """NAB's sigmoid: 1 at a window's start (-1), 0 at its end, towards -1 past it (-1 beyond 3)."""
    value = 2.0 / (1.0 + np.exp(5.0 * position)) - 1.0
    return np.where(position > 3.0, -1.0, value)


def windows_for(rows: int, labels: Iterable[int]) -> tuple[tuple[int, int], ...]:
    """NAB's windows around labelled rows: ``WINDOW_SHARE`` of the rows shared by the labels,
    each window centred on its label and cut at the series' ends, overlapping ones merged.

    This is how NAB's ``combined_windows.json`` was made from ``combined_labels.json``
    (the development half's 64 windows are reproduced from its 66 labels)."""
    marks = sorted(set(labels))
    if not marks:
        return ()
    half = int(WINDOW_SHARE * rows / len(marks)) // 2
    merged: list[tuple[int, int]] = []
    for row in marks:
        low, high = max(row - half, 0), min(row + half, rows - 1)
        if merged and low <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
        else:
            merged.append((low, high))
    return tuple(merged)


def _to_us(texts: Iterable[str]) -> Int64s:
    return np.array(list(texts), dtype="datetime64[us]").astype(np.int64)


def load_corpus(root: Path) -> Corpus:
    """The series, windows and profiles of a NAB tree (``data/``, ``labels/``, ``config/``)."""
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    profiles_json = json.loads((root / "config" / "profiles.json").read_text())
    profiles = tuple(
        Profile(
            name,
            float(body["CostMatrix"]["tpWeight"]),
            float(body["CostMatrix"]["fpWeight"]),
            float(body["CostMatrix"]["fnWeight"]),
        )
        for name, body in profiles_json.items()
    )
    series = []
    for name in sorted(windows):
        rows = (root / "data" / name).read_text().splitlines()[1:]
        stamps, values = zip(*(row.split(",", 1) for row in rows if row), strict=True)
        timestamps = _to_us(s.replace(" ", "T") for s in stamps)
        index = {int(t): i for i, t in enumerate(timestamps)}
        limits = tuple(
            (index[int(start)], index[int(end)])
            for start, end in (_to_us(w.replace(" ", "T") for w in pair) for pair in windows[name])
        )
        series.append(Series(name, timestamps, np.array(values, dtype=np.float64), limits))
    return Corpus(tuple(series), profiles)


@dataclass(frozen=True, slots=True)
class _Rows:
    """A series' scorable rows: what a detection at each would add, and its window."""

    weight: Float64s  # the weighted score of a detection at the row
    window: Int64s  # the row's window (numbered over the corpus), -1 outside


def _rows(series: Series, profile: Profile, first_window: int) -> _Rows:
    """NAB's ``calcSweepScoreParts`` for one series, without the probationary rows."""
    size = series.values.size
    index = np.arange(size)
    window = np.full(size, -1, dtype=np.int64)
    # Outside windows: how far past the previous window's last row, in its widths less one.
    past = np.full(size, np.nan)
    weight = np.empty(size)
    for number, (left, right) in enumerate(series.windows):
        width = right - left + 1
        span = slice(left, right + 1)
        window[span] = first_window + number
        position = -(right - index[span] + 1) / width
        weight[span] = (
            scaled_sigmoid(position) * profile.true_positive / scaled_sigmoid(np.array(-1.0))
        )
        end = series.windows[number + 1][0] if number + 1 < len(series.windows) else size
        after = slice(right + 1, end)
        past[after] = np.abs(right - index[after]) / float(width - 1)
    outside = window < 0
    fp = np.where(np.isnan(past), -1.0, scaled_sigmoid(np.nan_to_num(past)))
    weight[outside] = fp[outside] * profile.false_positive
    scored = slice(series.probation, size)
    return _Rows(weight[scored], window[scored])


def optimise(
    scores: Mapping[str, Float64s], corpus: Corpus, profile: Profile
) -> tuple[float, float]:
    """NAB's threshold sweep: the threshold with the highest raw score, and that score."""
    parts = [
        (_rows(s, profile, first), scores[s.name][s.probation :])
        for s, first in zip(corpus.series, _window_numbers(corpus), strict=True)
    ]
    weight = np.concatenate([p.weight for p, _ in parts])
    window = np.concatenate([p.window for p, _ in parts])
    score = np.concatenate([sc for _, sc in parts])
    # Rows from the highest score down, as NAB sweeps them (ties in corpus order).
    order = np.argsort(-score, kind="stable")
    weight, window, score = weight[order], window[order], score[order]
    start = float(np.full(corpus.windows, -profile.false_negative).sum())
    # What each row adds: its weight outside windows; inside, how far it raises its
    # window's best so far (a miss, -A_FN, before the first).
    added = np.where(window < 0, weight, 0.0)
    inside = np.flatnonzero(window >= 0)
    by_window = inside[np.argsort(window[inside], kind="stable")]
    numbers = window[by_window]
    for first, last in _runs(numbers):
        rows = by_window[first:last]
        best = np.maximum.accumulate(np.maximum(weight[rows], -profile.false_negative))
        before = np.concatenate([[-profile.false_negative], best[:-1]])
        added[rows] = np.where(weight[rows] > before, weight[rows] - before, 0.0)
    if not score.size:
        return NULL_THRESHOLD, start
    # The raw score after each row (accumulated in sweep order, as NAB adds them up), read
    # at the last row of each distinct score: the candidate thresholds, highest first.
    raw = np.cumsum(np.concatenate([[start], added]))[1:]
    ends = np.flatnonzero(np.concatenate([score[1:] != score[:-1], [True]]))
    best_at = int(ends[int(np.argmax(raw[ends]))])  # the first of equal maxima: the highest
    if raw[best_at] > start:
        return float(score[best_at]), float(raw[best_at])
    return NULL_THRESHOLD, start


def _runs(values: Int64s) -> list[tuple[int, int]]:
    """``[first, last)`` of each run of equal values in ``values``."""
    if not values.size:
        return []
    breaks = np.flatnonzero(values[1:] != values[:-1]) + 1
    firsts = np.concatenate([[0], breaks]).tolist()
    lasts = np.concatenate([breaks, [values.size]]).tolist()
    return list(zip(firsts, lasts, strict=True))


def _window_numbers(corpus: Corpus) -> list[int]:
    firsts, count = [], 0
    for s in corpus.series:
        firsts.append(count)
        count += len(s.windows)
    return firsts


def score_at(
    scores: Mapping[str, Float64s], corpus: Corpus, profile: Profile, threshold: float
) -> Score:
    """The corpus' score when every row scoring at least ``threshold`` is a detection."""
    raw, tp_rows, fp_rows, found = 0.0, 0, 0, 0
    for s, first in zip(corpus.series, _window_numbers(corpus), strict=True):
        rows = _rows(s, profile, first)
        detected = scores[s.name][s.probation :] >= threshold
        outside = rows.window < 0
        raw += float(rows.weight[detected & outside].sum())
        fp_rows += int(np.count_nonzero(detected & outside))
        tp_rows += int(np.count_nonzero(detected & ~outside))
        for number in range(first, first + len(s.windows)):
            hits = rows.weight[detected & (rows.window == number)]
            if hits.size:
                raw += float(hits.max())
                found += 1
            else:
                raw -= profile.false_negative
    null = -profile.false_negative * corpus.windows
    perfect = profile.true_positive * corpus.windows
    # Without windows there is nothing to normalise against (NAB's per-file scores are raw).
    normalized = 100.0 * (raw - null) / (perfect - null) if corpus.windows else math.nan
    return Score(
        profile.name,
        threshold,
        raw,
        normalized,
        tp_rows,
        fp_rows,
        found,
        corpus.windows,
    )


def evaluate(scores: Mapping[str, Float64s], corpus: Corpus) -> dict[str, Score]:
    """Per profile: NAB's optimised threshold and the normalised score there."""
    result = {}
    for profile in corpus.profiles:
        threshold, _ = optimise(scores, corpus, profile)
        result[profile.name] = score_at(scores, corpus, profile, threshold)
    return result


def evaluate_fixed(
    scores: Mapping[str, Float64s], corpus: Corpus, threshold: float
) -> dict[str, Score]:
    """Per profile, the score at one given threshold (what a user of that threshold sees)."""
    return {p.name: score_at(scores, corpus, p, threshold) for p in corpus.profiles}


def published_scores(root: Path, detector: str, corpus: Corpus) -> dict[str, Float64s]:
    """A published detector's ``anomaly_score`` column per series (``results/<detector>/``)."""
    scores = {}
    for s in corpus.series:
        category, file = s.name.split("/")
        path = root / "results" / detector / category / f"{detector}_{file}.gz"
        with gzip.open(path, "rt") as stream:
            header, *lines = stream.read().splitlines()
        column = header.split(",").index("anomaly_score")
        # Split off only the columns up to the score: the rest of a row is not needed.
        cells = [line.split(",", column + 1)[column] for line in lines if line.strip()]
        scores[s.name] = np.array(cells, dtype=np.float64)
    return scores


def published_detectors(root: Path) -> list[str]:
    """The detectors whose result files are in ``results/``."""
    return sorted(p.name for p in (root / "results").iterdir() if p.is_dir())


ScoreFunction = Callable[[Series], Float64s]


def run_detector(corpus: Corpus, detector: ScoreFunction) -> dict[str, Float64s]:
    """Each series' scores from ``detector``."""
    return {s.name: detector(s) for s in corpus.series}
