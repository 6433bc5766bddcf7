"""Scoring detectors against labelled series: precision/recall/F1 per type, and NAB.

Labels are (type, start, end) spans in microseconds. A finding of a type
hits a label of that type when it falls within the span widened by a
tolerance; precision counts findings that hit some label, recall counts
labels hit by some finding. The NAB score follows the Numenta Anomaly
Benchmark: a window around each label (10% of the series length shared by
the labels), the first detection in a window scored by the scaled sigmoid
of its position, false positives weighted by the sigmoid of their distance
after the previous window, misses by A_FN, normalised so that detecting
nothing scores 0 and detecting every window at its start scores 100.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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
    """Labels not hidden by another: nothing can be seen inside a flatline or a gap."""
    hiders = [label for label in labels if label.anomaly_type in ("flatline", "gap")]
    return [
        label
        for label in labels
        if not any(
            other is not label and other.start_us <= label.start_us < other.end_us
            for other in hiders
        )
    ]


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


@dataclass(frozen=True, slots=True)
class NabProfile:
    """Weights of a NAB application profile."""

    true_positive: float = 1.0
    false_positive: float = 0.11
    false_negative: float = 1.0


STANDARD = NabProfile()


def scaled_sigmoid(position: float) -> float:
    """NAB's sigmoid: about 1 at a window's start (-1), 0 at its end, towards -1 after it."""
    if position > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def nab_windows(
    labels: Sequence[Label], *, series_start: int, series_end: int
) -> list[tuple[int, int]]:
    """One window per label: 10% of the series length shared by the labels, centred on each."""
    if not labels:
        return []
    width = 0.1 * (series_end - series_start) / len(labels)
    windows: list[tuple[int, int]] = []
    for label in sorted(labels, key=lambda lb: lb.start_us):
        low = int(label.start_us - width / 2)
        high = int(max(label.start_us + width / 2, label.end_us))
        if windows and low <= windows[-1][1]:  # overlapping windows merge, as NAB's do
            windows[-1] = (windows[-1][0], max(high, windows[-1][1]))
        else:
            windows.append((low, high))
    return windows


def nab_score(
    detections_us: Sequence[int],
    labels: Sequence[Label],
    *,
    series_start: int,
    series_end: int,
    profile: NabProfile = STANDARD,
) -> float:
    """The normalised NAB score (0 = detect nothing, 100 = every window at its start)."""
    windows = nab_windows(labels, series_start=series_start, series_end=series_end)
    if not windows:
        return 100.0 if not detections_us else 0.0
    raw = 0.0
    found = [False] * len(windows)
    for t in sorted(detections_us):
        inside = next((i for i, (lo, hi) in enumerate(windows) if lo <= t <= hi), None)
        if inside is not None:
            if not found[inside]:
                lo, hi = windows[inside]
                position = -(hi - t) / max(hi - lo, 1)
                raw += profile.true_positive * scaled_sigmoid(position)
                found[inside] = True
            continue
        before = [hi for lo, hi in windows if hi < t]
        if before:
            last = max(before)
            lo, hi = next(w for w in windows if w[1] == last)
            raw += profile.false_positive * scaled_sigmoid((t - last) / max(hi - lo, 1))
        else:
            raw -= profile.false_positive
    raw -= profile.false_negative * found.count(False)
    null = -profile.false_negative * len(windows)
    perfect = profile.true_positive * scaled_sigmoid(-1.0) * len(windows)
    return 100.0 * (raw - null) / (perfect - null)


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
