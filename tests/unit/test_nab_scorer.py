"""NAB's scoring in ``bench/nab.py``: against NAB's own reference on nab-dev, and by hand.

The reference tests need the nab-dev dataset (``$IOTSUITE_NAB_DEV``, else
``shared/datasets/nab-dev`` above the checkout) and are skipped without it;
the hand-made corpus tests always run.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import nab
from bench.nab_bench import default_root, null_scores

ROOT = default_root()
needs_dataset = pytest.mark.skipif(ROOT is None, reason="the nab-dev dataset is not here")
RECOMPUTED = ("numenta", "windowedGaussian")
PROFILES = [p.name for p in nab.PROFILES]


def sigma(y: float) -> float:
    """NAB's scaled sigmoid, written out again: 2 / (1 + e^(5y)) - 1."""
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


# -- against NAB's own code on the development half -------------------------------


@pytest.fixture(scope="module")
def root() -> Path:
    assert ROOT is not None
    return ROOT


@pytest.fixture(scope="module")
def corpus(root: Path) -> nab.Corpus:
    return nab.load_corpus(root)


@pytest.fixture(scope="module")
def reference(root: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / "reference" / "dev_scores.json").read_text())
    return data


@pytest.fixture(scope="module")
def published(root: Path, corpus: nab.Corpus) -> dict[str, dict[str, nab.Float64s]]:
    return {d: nab.published_scores(root, d, corpus) for d in RECOMPUTED}


@pytest.fixture(scope="module")
def evaluated(
    corpus: nab.Corpus, published: dict[str, dict[str, nab.Float64s]]
) -> dict[str, dict[str, nab.Score]]:
    return {d: nab.evaluate(scores, corpus) for d, scores in published.items()}


def rows_in_windows(corpus: nab.Corpus) -> tuple[int, int]:
    """Scored rows inside windows and outside them, over the corpus."""
    inside = sum(
        sum(min(hi, s.values.size - 1) - max(lo, s.probation) + 1 for lo, hi in s.windows)
        for s in corpus.series
    )
    scored = sum(s.values.size - s.probation for s in corpus.series)
    return inside, scored - inside


@needs_dataset
def test_the_corpus_is_nab_devs_half(corpus: nab.Corpus, reference: dict[str, Any]) -> None:
    assert len(corpus.series) == reference["series"] == 31
    assert corpus.windows == reference["windows"] == 64
    assert corpus.profiles == nab.PROFILES
    assert nab.published_detectors(ROOT or Path()) == sorted(RECOMPUTED)


@needs_dataset
@pytest.mark.parametrize("detector", RECOMPUTED)
@pytest.mark.parametrize("profile", PROFILES)
def test_reproduces_the_reference_table(
    detector: str,
    profile: str,
    corpus: nab.Corpus,
    reference: dict[str, Any],
    evaluated: dict[str, dict[str, nab.Score]],
) -> None:
    expected = reference["detectors"][detector][profile]
    score = evaluated[detector][profile]
    assert score.threshold == expected["threshold"]
    assert score.raw == pytest.approx(expected["raw_score"], abs=1e-9)
    assert score.normalized == pytest.approx(expected["normalized_score"], abs=1e-9)
    assert score.true_positive_rows == expected["TP_rows"]
    assert score.false_positive_rows == expected["FP_rows"]
    inside, outside = rows_in_windows(corpus)
    assert inside - score.true_positive_rows == expected["FN_rows"]
    assert outside - score.false_positive_rows == expected["TN_rows"]


@needs_dataset
@pytest.mark.parametrize("detector", RECOMPUTED)
@pytest.mark.parametrize("profile", PROFILES)
def test_reproduces_the_reference_file_by_file(
    detector: str,
    profile: str,
    root: Path,
    corpus: nab.Corpus,
    published: dict[str, dict[str, nab.Float64s]],
) -> None:
    weights = next(p for p in corpus.profiles if p.name == profile)
    path = root / "reference" / f"{detector}_{profile}_scores.csv"
    with path.open() as stream:
        lines = [line for line in csv.DictReader(stream) if line["Detector"] != "Totals"]
    assert len(lines) == len(corpus.series)
    by_name = {s.name: s for s in corpus.series}
    for line in lines:
        series = by_name[line["File"]]
        one = nab.Corpus((series,), corpus.profiles)
        score = nab.score_at(published[detector], one, weights, float(line["Threshold"]))
        assert score.raw == pytest.approx(float(line["Score"]), abs=1e-9), line["File"]
        assert score.true_positive_rows == int(line["TP"]), line["File"]
        assert score.false_positive_rows == int(line["FP"]), line["File"]
        inside, outside = rows_in_windows(one)
        assert inside - score.true_positive_rows == int(line["FN"]), line["File"]
        assert outside - score.false_positive_rows == int(line["TN"]), line["File"]


@needs_dataset
def test_the_null_detector_scores_zero(corpus: nab.Corpus, reference: dict[str, Any]) -> None:
    for profile, score in nab.evaluate(null_scores(corpus), corpus).items():
        expected = reference["detectors"]["null"][profile]
        assert score.threshold == expected["threshold"] == nab.NULL_THRESHOLD
        assert score.raw == expected["raw_score"]
        assert score.normalized == 0.0 == expected["normalized_score"]
        assert score.true_positive_rows == score.false_positive_rows == 0


@needs_dataset
def test_nabs_window_rule_gives_back_the_corpus_windows(root: Path, corpus: nab.Corpus) -> None:
    labels = json.loads((root / "labels" / "combined_labels.json").read_text())
    for series in corpus.series:
        stamps = np.array(
            [t.replace(" ", "T") for t in labels[series.name]], dtype="datetime64[us]"
        ).astype(np.int64)
        rows = np.searchsorted(series.timestamps_us, stamps).tolist()
        assert nab.windows_for(series.values.size, rows) == series.windows, series.name


# -- a corpus made by hand ---------------------------------------------------------

ROWS = 100  # probation: floor(0.15 * 100) = 15 rows
WINDOW = (40, 49)  # ten rows


def corpus_of(*windows: tuple[int, int], rows: int = ROWS) -> nab.Corpus:
    stamps = np.arange(rows, dtype=np.int64) * 60_000_000
    series = nab.Series("hand/made.csv", stamps, np.zeros(rows), tuple(windows))
    return nab.Corpus((series,), nab.PROFILES)


def detections(*rows: int, size: int = ROWS) -> dict[str, nab.Float64s]:
    scores = np.zeros(size)
    scores[list(rows)] = 1.0
    return {"hand/made.csv": scores}


def raw(scores: dict[str, nab.Float64s], corpus: nab.Corpus, profile: str = "standard") -> float:
    weights = next(p for p in nab.PROFILES if p.name == profile)
    return nab.score_at(scores, corpus, weights, 0.5).raw


def test_probation_is_15_percent_and_at_most_750_rows() -> None:
    assert corpus_of(WINDOW).series[0].probation == 15
    assert corpus_of(rows=10_000).series[0].probation == 750  # 1,500 capped
    assert corpus_of(rows=4_999).series[0].probation == 749  # floor(749.85)


def test_the_sigmoid_weights_a_detection_by_its_place_in_the_window() -> None:
    corpus = corpus_of(WINDOW)
    # The window's first row: position -10/10 = -1, the whole A_TP.
    assert raw(detections(40), corpus) == pytest.approx(1.0, abs=1e-12)
    # Row 45: position -(49 - 45 + 1)/10 = -0.5; 0.848284 / 0.986614 = 0.859793.
    assert raw(detections(45), corpus) == pytest.approx(0.8597925669, abs=1e-9)
    assert raw(detections(45), corpus) == pytest.approx(sigma(-0.5) / sigma(-1.0))
    # The last row: position -0.1; 0.244919 / 0.986614.
    assert raw(detections(49), corpus) == pytest.approx(0.2482415498, abs=1e-9)
    # Only the earliest detection of a window counts.
    assert raw(detections(40, 45, 49), corpus) == pytest.approx(1.0, abs=1e-12)
    # A window without a detection costs A_FN (2 in the low-FN profile).
    assert raw(detections(), corpus) == -1.0
    assert raw(detections(), corpus, "reward_low_FN_rate") == -2.0


def test_false_positives_by_their_distance_after_the_window_and_the_probation() -> None:
    corpus = corpus_of(WINDOW)
    found = 1.0  # row 40
    # Row 55: 6 rows past the window's last, in widths less one: 6/9; sigma = -0.931110.
    assert raw(detections(40, 55), corpus) == pytest.approx(found - 0.1024220570, abs=1e-9)
    assert raw(detections(40, 55), corpus, "reward_low_FP_rate") == pytest.approx(
        found + 0.22 * sigma(6 / 9)
    )
    # Row 50, just past it: 1/9 of a width, a small cost.
    assert raw(detections(40, 50), corpus) == pytest.approx(found + 0.11 * sigma(1 / 9))
    # Far past it (more than 3 widths: row 80) and before any window (row 20): all of A_FP.
    assert raw(detections(40, 80), corpus) == pytest.approx(found - 0.11)
    assert raw(detections(40, 20), corpus) == pytest.approx(found - 0.11)
    # In the probation (rows 0-14): not scored at all.
    assert raw(detections(40, 3, 14), corpus) == pytest.approx(found)
    assert raw(detections(40, 15), corpus) == pytest.approx(found - 0.11)


def test_the_optimiser_picks_the_best_threshold_for_each_profile() -> None:
    corpus = corpus_of(WINDOW)
    scores = np.zeros(ROWS)
    scores[45], scores[20], scores[40] = 0.9, 0.8, 0.6
    # Standard: 0.9 gives 0.8598; 0.8 adds the false positive at row 20 (-0.11): 0.7498;
    # 0.6 moves the window's detection to its first row (+0.1402): 0.89, the best.
    result = nab.evaluate({"hand/made.csv": scores}, corpus)
    assert result["standard"].threshold == 0.6
    assert result["standard"].raw == pytest.approx(0.89)
    assert result["standard"].normalized == pytest.approx(100 * (0.89 + 1) / (1 + 1))
    # Low FP: the false positive costs 0.22, and 0.6 gives 0.78 < 0.8598 at 0.9.
    assert result["reward_low_FP_rate"].threshold == 0.9
    assert result["reward_low_FP_rate"].raw == pytest.approx(0.8597925669, abs=1e-9)
    # Equal raw scores: the first met, from high to low, is kept (row 45 adds nothing).
    tied = np.zeros(ROWS)
    tied[40], tied[45] = 0.9, 0.8
    assert nab.optimise({"hand/made.csv": tied}, corpus, nab.PROFILES[0]) == (0.9, 1.0)
    # Rows of equal score are one candidate: no threshold keeps row 40 without row 20.
    together = np.zeros(ROWS)
    together[40], together[20] = 0.8, 0.8
    threshold, best = nab.optimise({"hand/made.csv": together}, corpus, nab.PROFILES[0])
    assert (threshold, best) == (0.8, pytest.approx(0.89))
    # Nothing worth detecting: the threshold above every score, 0 points.
    nothing = np.zeros(ROWS)
    nothing[20] = 0.7
    result = nab.evaluate({"hand/made.csv": nothing}, corpus)
    assert result["standard"].threshold == nab.NULL_THRESHOLD
    assert result["standard"].normalized == 0.0


def test_normalisation_runs_from_nothing_to_every_window_at_its_start() -> None:
    corpus = corpus_of(WINDOW, (70, 74))
    standard = nab.PROFILES[0]
    assert nab.score_at(detections(), corpus, standard, 0.5).normalized == 0.0
    assert nab.score_at(detections(40, 70), corpus, standard, 0.5).normalized == 100.0
    # One window at its start, the other missed: raw 0, halfway.
    assert nab.score_at(detections(40), corpus, standard, 0.5).normalized == 50.0
    # A series without windows has nothing to normalise against: raw only.
    empty = nab.score_at(detections(20), corpus_of(), standard, 0.5)
    assert empty.raw == pytest.approx(-0.11) and math.isnan(empty.normalized)


def test_windows_share_a_tenth_of_the_rows_and_merge_when_they_overlap() -> None:
    # Two labels in 200 rows: windows of int(0.1 * 200 / 2) = 10 rows, 5 each side.
    assert nab.windows_for(200, [100, 150]) == ((95, 105), (145, 155))
    assert nab.windows_for(200, [108, 100]) == ((95, 113),)  # (95, 105) and (103, 113)
    # Cut at the series' ends: one label, 20 rows, 10 each side.
    assert nab.windows_for(200, [2]) == ((0, 12),)
    assert nab.windows_for(200, [195]) == ((185, 199),)
    assert nab.windows_for(200, []) == ()
