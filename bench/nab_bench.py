"""NAB: our detector on the development half of the Numenta Anomaly Benchmark, scored NAB's way.

The corpus is ``nab-dev`` (31 real and artificial series, 64 labelled windows;
``--nab-dev PATH``, else ``$IOTSUITE_NAB_DEV``, else the first
``shared/datasets/nab-dev`` in a folder above the checkout). Each series goes
through a fresh ``generic`` :class:`StreamDetector` in batches of ``BATCH``
readings, as analytics receives them, with no declared sampling period, and
is scored by ``bench/nab.py`` in two ways:

- **every finding a user would see**: a finding marks the row of the reading
  with which the detector could know it (``found_us``, the causal placement),
  all other rows score 0, at the detector's default threshold; this is what a
  user of the default settings gets, and our headline;
- **NAB's optimiser on the continuous score**: each row's score from
  ``BatchResult.scores`` (late readings, which are not analysed, score 0), the
  threshold chosen per profile as NAB chooses it for every published detector.

Beside them: the published detectors whose result files are in the corpus
(numenta and windowedGaussian), and the null detector, recomputed by
``bench/nab.py`` next to NAB's own reference values (``reference/dev_scores.json``),
and the other published detectors' reference values as they are.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench import nab
from bench.report import Figure, JobResult, Table
from services.analytics.analytics.detectors import (
    DEFAULT_THRESHOLD,
    DetectorState,
    StreamDetector,
)

Float64s = npt.NDArray[np.float64]
Int64s = npt.NDArray[np.int64]

NAB_TITLE = "8. Analytics: NAB (Numenta Anomaly Benchmark) on its development half, real data"
BATCH = 100
"""Readings per detector call: a simulator batch, as analytics receives them."""
CHECK_BATCH = 1_000
"""A second batch size the findings and scores are compared at (they must not change)."""
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
TARGETS = {"standard": 75.0, "reward_low_FP_rate": 65.0}
"""Issue 11's targets for our headline row."""
TOLERANCE = 0.5
"""The largest difference from NAB's own code the issue allows our scorer."""
NULL_SCORE = 0.5
"""What NAB's null detector writes on every row."""
ENVIRONMENT = "IOTSUITE_NAB_DEV"
DATASET = Path("shared") / "datasets" / "nab-dev"
REPOSITORY = Path(__file__).resolve().parent.parent
NAMES = {
    "numenta": "Numenta HTM",
    "windowedGaussian": "windowed Gaussian",
    "contextOSE": "contextOSE",
    "ARTime": "ARTime",
    "earthgeckoSkyline": "Skyline",
    "knncad": "KNN CAD",
    "randomCutForest": "random cut forest",
    "relativeEntropy": "relative entropy",
    "random": "random",
    "null": "null",
}


def default_root() -> Path | None:
    """``$IOTSUITE_NAB_DEV``, else the first ``shared/datasets/nab-dev`` above the checkout."""
    if os.environ.get(ENVIRONMENT):
        return Path(os.environ[ENVIRONMENT])
    for folder in (REPOSITORY, *REPOSITORY.parents):
        if (folder / DATASET / "labels").is_dir():
            return folder / DATASET
    return None


@dataclass(frozen=True, slots=True)
class Run:
    """Our detector over the corpus: per series, finding rows and scores per row."""

    findings: dict[str, Float64s]  # 1.0 on the row of each finding's found_us reading
    scores: dict[str, Float64s]  # BatchResult.scores on analysed rows, 0 on late ones
    kinds: Counter[str]
    late: int
    seconds: float

    @property
    def count(self) -> int:
        """Findings over the corpus."""
        return sum(self.kinds.values())


def _analysed(timestamps: Int64s, values: Float64s, newest: int | None) -> npt.NDArray[np.bool_]:
    """The readings the detector analyses: finite, and after every reading before them."""
    start = np.iinfo(np.int64).min if newest is None else newest
    before = np.maximum.accumulate(np.concatenate([[start], timestamps]))[:-1]
    return (timestamps > before) & np.isfinite(values)


def run_series(
    series: nab.Series, batch: int
) -> tuple[Float64s, Float64s, Counter[str], int, float]:
    """A fresh ``generic`` detector over one series: finding rows, row scores, finding types,
    late readings, and the seconds spent in ``process``."""
    detector = StreamDetector(DetectorState.for_type("generic"))
    size = series.values.size
    findings, scores = np.zeros(size), np.zeros(size)
    kinds: Counter[str] = Counter()
    late, seconds = 0, 0.0
    # A finding's row is its found_us reading: an analysed one, else (a late reading
    # found out of range) the first row with that time.
    row_of: dict[int, int] = {}
    for row, stamp in enumerate(series.timestamps_us.tolist()):
        row_of.setdefault(stamp, row)
    for at in range(0, size, batch):
        stamps = series.timestamps_us[at : at + batch]
        values = series.values[at : at + batch]
        kept = _analysed(stamps, values, detector.state.last_ts)
        started = time.perf_counter()
        result = detector.process(stamps, values)
        seconds += time.perf_counter() - started
        rows = at + np.flatnonzero(kept)
        if not np.array_equal(series.timestamps_us[rows], result.timestamps):
            raise RuntimeError(f"{series.name}: the analysed readings are not the ones expected")
        scores[rows] = result.scores
        row_of.update(zip(result.timestamps.tolist(), rows.tolist(), strict=True))
        late += result.late
        for finding in result.findings:
            findings[row_of[finding.found_us]] = 1.0
            kinds[finding.anomaly_type] += 1
    return findings, scores, kinds, late, seconds


def run(corpus: nab.Corpus, batch: int = BATCH) -> Run:
    """Our detector over every series of ``corpus`` in batches of ``batch``."""
    findings, scores = {}, {}
    kinds: Counter[str] = Counter()
    late, seconds = 0, 0.0
    for series in corpus.series:
        found, scored, types, skipped, spent = run_series(series, batch)
        findings[series.name], scores[series.name] = found, scored
        kinds.update(types)
        late += skipped
        seconds += spent
    return Run(findings, scores, kinds, late, seconds)


def same_findings(one: Run, other: Run) -> bool:
    """Whether two runs found the same rows."""
    return all(np.array_equal(one.findings[n], other.findings[n]) for n in one.findings)


def score_difference(one: Run, other: Run) -> float:
    """The largest difference between two runs' scores of a row."""
    return max(
        float(np.max(np.abs(one.scores[n] - other.scores[n]), initial=0.0)) for n in one.scores
    )


def load_reference(root: Path) -> dict[str, Any]:
    """NAB's own scores of the published detectors on this half (``dev_scores.json``)."""
    reference: dict[str, Any] = json.loads((root / "reference" / "dev_scores.json").read_text())
    return reference


def null_scores(corpus: nab.Corpus) -> dict[str, Float64s]:
    """NAB's null detector: the same score on every row."""
    return {s.name: np.full(s.values.size, NULL_SCORE) for s in corpus.series}


def category(name: str) -> str:
    """A series' category: the folder NAB keeps it in."""
    return name.split("/", 1)[0]


@dataclass(frozen=True, slots=True)
class Part:
    """One category's share of a detector's score at one threshold (standard profile)."""

    series: int
    windows: int
    found: int
    false_positive_rows: int
    raw: float


def breakdown(
    scores: Mapping[str, Float64s], corpus: nab.Corpus, threshold: float
) -> dict[str, Part]:
    """Per category: windows found, false-positive rows and raw standard score."""
    standard = next(p for p in corpus.profiles if p.name == "standard")
    parts = {}
    for name in sorted({category(s.name) for s in corpus.series}):
        members = tuple(s for s in corpus.series if category(s.name) == name)
        score = nab.score_at(scores, nab.Corpus(members, corpus.profiles), standard, threshold)
        parts[name] = Part(
            len(members),
            score.windows,
            score.windows_found,
            score.false_positive_rows,
            score.raw,
        )
    return parts


def _points(value: float) -> str:
    return f"{value:.2f}"


def _signed(value: float) -> str:
    return f"{value:+.2f}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """Everything the section reports."""

    corpus: nab.Corpus
    ours: Run
    check: Run
    fixed: dict[str, nab.Score]
    optimised: dict[str, nab.Score]
    published: dict[str, dict[str, Float64s]]  # detector, series: the score per row
    recomputed: dict[str, dict[str, nab.Score]]  # detector, profile
    reference: dict[str, Any]


def evaluate_all(root: Path, batch: int = BATCH) -> Outcome:
    """Run our detector and score it and the published detectors on the corpus at ``root``."""
    corpus = nab.load_corpus(root)
    ours = run(corpus, batch)
    check = run(corpus, other_batch(batch))
    published = {d: nab.published_scores(root, d, corpus) for d in nab.published_detectors(root)}
    published["null"] = null_scores(corpus)
    return Outcome(
        corpus,
        ours,
        check,
        nab.evaluate_fixed(ours.findings, corpus, DEFAULT_THRESHOLD),
        nab.evaluate(ours.scores, corpus),
        published,
        {detector: nab.evaluate(scores, corpus) for detector, scores in published.items()},
        load_reference(root),
    )


def other_batch(batch: int) -> int:
    """The batch size the run is repeated at."""
    return CHECK_BATCH if batch != CHECK_BATCH else BATCH


def largest_difference(outcome: Outcome) -> float:
    """The largest |ours - NAB's| normalised score over the recomputed detectors and profiles."""
    return max(
        abs(
            score.normalized - outcome.reference["detectors"][detector][profile]["normalized_score"]
        )
        for detector, scores in outcome.recomputed.items()
        for profile, score in scores.items()
    )


def _against(ours: float, reference: Mapping[str, Any]) -> str:
    """``ours / NAB's / difference``."""
    theirs = float(reference["normalized_score"])
    return f"{_points(ours)} / {_points(theirs)} / {_signed(ours - theirs)}"


def _comparison(outcome: Outcome) -> Table:
    reference = outcome.reference["detectors"]
    rows = [
        [
            "**ours: every finding a user would see**",
            f"a finding marks the row of its `found_us` reading; the default threshold "
            f"{DEFAULT_THRESHOLD:g}",
            *(f"**{_points(outcome.fixed[p].normalized)}**" for p in PROFILES),
        ],
        [
            "ours: NAB's optimiser on the continuous score",
            "`BatchResult.scores` per row, late rows 0; threshold per profile (in brackets)",
            *(
                f"{_points(outcome.optimised[p].normalized)} ({outcome.optimised[p].threshold:.4f})"
                for p in PROFILES
            ),
        ],
    ]
    ranked = sorted(reference, key=lambda d: -reference[d]["standard"]["normalized_score"])
    for detector in ranked:
        name = f"{NAMES.get(detector, detector)} (`{detector}`)"
        if detector in outcome.recomputed:
            how = "recomputed by `bench/nab.py` / reference, NAB's code / difference"
            cells = [
                _against(outcome.recomputed[detector][p].normalized, reference[detector][p])
                for p in PROFILES
            ]
            if detector == "null":
                how += f" (a constant {NULL_SCORE:g}, as NAB's null result files hold)"
            else:
                how += " (from NAB's result files)"
        else:
            how = "reference, NAB's code (`reference/dev_scores.json`)"
            cells = [_points(reference[detector][p]["normalized_score"]) for p in PROFILES]
        rows.append([name, how, *cells])
    return Table(
        "NAB scores on nab-dev, side by side (0 = detect nothing, 100 = every window at its "
        "first row; NAB's optimiser picks each published detector's threshold per profile):",
        ["detector", "how it is scored", *PROFILES],
        rows,
        "llrrr",
    )


def _categories(outcome: Outcome) -> Table:
    ours = breakdown(outcome.ours.findings, outcome.corpus, DEFAULT_THRESHOLD)
    threshold = outcome.recomputed["numenta"]["standard"].threshold
    numenta = breakdown(outcome.published["numenta"], outcome.corpus, threshold)
    rows = []
    for name, part in ours.items():
        theirs = numenta[name]
        rows.append(
            [
                name,
                str(part.series),
                f"{part.found} / {part.windows}",
                str(part.false_positive_rows),
                f"{part.raw:.2f}",
                f"{theirs.found} / {theirs.windows}",
                str(theirs.false_positive_rows),
                f"{theirs.raw:.2f}",
            ]
        )
    total = outcome.fixed["standard"]
    them = outcome.recomputed["numenta"]["standard"]
    rows.append(
        [
            "**all**",
            str(len(outcome.corpus.series)),
            f"{total.windows_found} / {total.windows}",
            str(total.false_positive_rows),
            f"{total.raw:.2f}",
            f"{them.windows_found} / {them.windows}",
            str(them.false_positive_rows),
            f"{them.raw:.2f}",
        ]
    )
    return Table(
        "Where it wins and loses, per category: ours (every finding a user would see) beside "
        f"Numenta HTM at its standard threshold ({threshold:.4f}); false positives are "
        "detection rows outside every window after the probation; raw is the standard "
        "profile's raw score (a window found at its first row earns 1, a miss costs 1, a "
        "false positive up to 0.11):",
        [
            "category",
            "series",
            "ours: windows found",
            "ours: false positives",
            "ours: raw",
            "Numenta HTM: windows found",
            "Numenta HTM: false positives",
            "Numenta HTM: raw",
        ],
        rows,
        "lrrrrrrr",
    )


def _figures(outcome: Outcome) -> list[Figure]:
    numenta = outcome.recomputed["numenta"]
    reference = outcome.reference["detectors"]
    best = max(reference, key=lambda d: reference[d]["standard"]["normalized_score"])
    figures = []
    for profile in PROFILES:
        score = outcome.fixed[profile]
        target = TARGETS.get(profile)
        figures.append(
            Figure(
                f"ours, every finding a user would see, {profile}",
                "points",
                score.normalized,
                "Numenta HTM, NAB's optimiser (recomputed by `bench/nab.py`)",
                numenta[profile].normalized,
                f"default threshold {DEFAULT_THRESHOLD:g}; {score.windows_found} of "
                f"{score.windows} windows found, {score.false_positive_rows} false-positive "
                f"rows, {score.true_positive_rows} finding rows in windows; raw {score.raw:.2f}; "
                f"best published on this half: {NAMES.get(best, best)} "
                f"{reference[best][profile]['normalized_score']:.2f}",
                target=f"≥ {target:g}" if target is not None else "",
                met=score.normalized >= target if target is not None else None,
            )
        )
    difference = largest_difference(outcome)
    checked = ", ".join(sorted(outcome.recomputed))
    figures.append(
        Figure(
            "`bench/nab.py` against NAB's own code: the largest difference",
            "points",
            difference,
            "reference (`reference/dev_scores.json`)",
            float("nan"),
            f"{checked}, each of the {len(PROFILES)} profiles: normalised scores; the "
            "thresholds, raw scores and TP/FP rows are checked by "
            "`tests/unit/test_nab_scorer.py`",
            lower_is_better=True,
            target=f"< {TOLERANCE:g} points",
            met=difference < TOLERANCE,
        )
    )
    return figures


def notes(outcome: Outcome, root: Path, batch: int) -> list[str]:
    """What the figures rest on: the corpus, the batches, what the detector found."""
    corpus, ours = outcome.corpus, outcome.ours
    readings = sum(s.values.size for s in corpus.series)
    kinds = ", ".join(f"{kind} {count}" for kind, count in ours.kinds.most_common())
    check, check_batch = outcome.check, other_batch(batch)
    same = "the same" if same_findings(ours, check) else "**not** the same"
    return [
        f"NAB: {root} ({len(corpus.series)} series, {readings:,} readings, {corpus.windows} "
        f"windows); each series through a fresh `generic` detector in batches of {batch:,}, "
        f"no declared sampling period",
        f"NAB: {ours.count} findings ({kinds}); {ours.late} late readings (not after the "
        f"stream's newest) scored 0; `process` took {ours.seconds:.2f} s over the corpus "
        f"({readings / ours.seconds:,.0f} readings/s; short series, so the cost per call "
        "weighs)",
        f"NAB: at batches of {check_batch:,} instead: findings {same}, scores within "
        f"{score_difference(ours, check):.1e} (rounding), `process` {check.seconds:.2f} s",
    ]


async def measure(*, root: Path | None = None, batch: int = BATCH) -> JobResult:
    """Score our detector and the published ones on nab-dev (CPU-bound, in this process)."""
    root = root or default_root()
    if root is None:
        raise FileNotFoundError(
            f"nab-dev not found: set ${ENVIRONMENT} or pass --nab-dev PATH "
            f"(looked for {DATASET} above {REPOSITORY})"
        )
    outcome = evaluate_all(root, batch)
    job = JobResult(when="", options="")
    job.sections[NAB_TITLE] = _figures(outcome)
    job.tables[NAB_TITLE] = [_comparison(outcome), _categories(outcome)]
    job.notes += notes(outcome, root, batch)
    return job
