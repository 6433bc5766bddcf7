"""Scoring detectors against labelled series: precision/recall/F1 per type, and the baseline.

Labels are (type, start, end) spans in microseconds. A finding of a type
hits a label of that type when it falls within the span widened by a
tolerance; precision counts findings that hit some label, recall counts
labels hit by some finding. NAB's scoring is ``bench/nab.py``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from services.analytics.analytics.detectors import Finding


@dataclass(frozen=True, slots=True)
class Label:
    """A labelled anomaly: its type and the span of readings it affects."""

    anomaly_type: str
    start_us: int
    end_us: int


@dataclass(frozen=True, slots=True)
class TypeScore:
    """Precision, recall and F1 of one anomaly type."""

    anomaly_type: str
    labels: int
    findings: int
    true_positives: int
    detected_labels: int

    @property
    def precision(self) -> float:
        """Share of findings that hit a label (1 when there are none and no labels)."""
        if not self.findings:
            return 1.0 if not self.labels else 0.0
        return self.true_positives / self.findings

    @property
    def recall(self) -> float:
        """Share of labels that some finding hit."""
        return self.detected_labels / self.labels if self.labels else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def unmasked(labels: Sequence[Label]) -> list[Label]:
    """Labels as they can be seen. Nothing can be seen inside a flatline or a gap: a label
    that lies within one is left out. But a jump (``rate_of_change``) that outlasts one is
    seen as the readings resume at its level, and one that ends inside one is seen ending
    as they resume: its span reaches to the hider's end."""
    hiders = [label for label in labels if label.anomaly_type in ("flatline", "gap")]
    seen = []
    for label in labels:
        others = [other for other in hiders if other is not label]
        if any(o.start_us <= label.start_us <= label.end_us < o.end_us for o in others):
            continue
        if label.anomaly_type == "rate_of_change":
            ends = [o.end_us for o in others if o.start_us <= label.end_us < o.end_us]
            label = replace(label, end_us=max([label.end_us, *ends]))
        seen.append(label)
    return seen


def score_types(
    labels: Sequence[Label], findings: Sequence[Finding], *, tolerance_us: int, types: Sequence[str]
) -> dict[str, TypeScore]:
    """Precision, recall and F1 per type."""
    scores = {}
    for kind in types:
        spans = [
            (lb.start_us - tolerance_us, lb.end_us + tolerance_us)
            for lb in labels
            if lb.anomaly_type == kind
        ]
        times = [f.timestamp_us for f in findings if f.anomaly_type == kind]
        true_positives = sum(1 for t in times if any(lo <= t <= hi for lo, hi in spans))
        detected = sum(1 for lo, hi in spans if any(lo <= t <= hi for t in times))
        scores[kind] = TypeScore(kind, len(spans), len(times), true_positives, detected)
    return scores


def windowed_gaussian(
    timestamps: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    *,
    window: int = 600,
    threshold: float = 5.0,
) -> list[int]:
    """NAB's windowed-Gaussian baseline: a reading farther than ``threshold`` deviations
    from the mean of the previous ``window`` readings is a detection (times answered)."""
    if values.size <= window:
        return []
    sums = np.cumsum(np.concatenate([[0.0], values]))
    squares = np.cumsum(np.concatenate([[0.0], values * values]))
    index = np.arange(window, values.size)
    mean = (sums[index] - sums[index - window]) / window
    variance = np.maximum((squares[index] - squares[index - window]) / window - mean * mean, 1e-12)
    z = np.abs(values[index] - mean) / np.sqrt(variance)
    return [int(t) for t in timestamps[index][z > threshold]]
