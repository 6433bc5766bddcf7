"""The soak's bookkeeping: where readings went, how long acks took, how memory moved.

Pure functions and values over what :mod:`bench.suite_soak` collects, so that
the accounting that decides "nothing was lost" is tested on its own
(``tests/unit/test_bench_soak.py``) rather than only by a ten-minute run.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

GROWTH_TOLERANCE = 0.10
"""Memory counts as flat when the end is within this fraction of the middle."""
ERROR_LEVELS = ("ERROR", "CRITICAL")


@dataclass(frozen=True, slots=True)
class Ledger:
    """Readings at each step from the devices to analytics; equal when nothing was lost.

    ``acknowledged`` counts readings telemetry acknowledged as stored, new or
    already stored (a batch sent again after a reconnect comes back as
    duplicates); ``rejected``, ``dropped`` (by the devices, never sent) and
    ``unacked`` (sent, no ack by the end) explain a shortfall. ``queued``
    counts stored readings after telemetry's forwarding cursor: analytics has
    not acknowledged them yet, so they are late, not lost.
    """

    sent: int
    acknowledged: int
    stored: int
    analysed: int
    rejected: int = 0
    dropped: int = 0
    unacked: int = 0
    queued: int = 0

    @property
    def balanced(self) -> bool:
        """Every reading sent was acknowledged, stored and analysed, once."""
        return self.sent == self.acknowledged == self.stored == self.analysed

    @property
    def skipped(self) -> int:
        """Stored readings analytics acknowledged (the cursor passed them) without scoring
        them: lost to analysis, where ``queued`` ones are only late."""
        return self.stored - self.analysed - self.queued

    def gaps(self) -> dict[str, int]:
        """The difference between each step and the next, by step (0 when it kept all)."""
        return {
            "sent, not acknowledged": self.sent - self.acknowledged,
            "acknowledged, not stored": self.acknowledged - self.stored,
            "stored, not analysed": self.stored - self.analysed,
        }

    def describe(self) -> str:
        """The counts in one line, with any gap named."""
        text = (
            f"sent {self.sent:,}, acknowledged {self.acknowledged:,}, stored {self.stored:,}, "
            f"analysed {self.analysed:,}"
        )
        extra = [
            f"{name} {count:,}"
            for name, count in (
                ("rejected", self.rejected),
                ("dropped by the devices", self.dropped),
                ("unacknowledged at the end", self.unacked),
            )
            if count
        ]
        extra += [f"{name}: {count:+,}" for name, count in self.gaps().items() if count]
        if self.stored != self.analysed:
            extra.append(
                f"of those not analysed, {self.queued:,} still queued after telemetry's "
                f"forwarding cursor and {self.skipped:,} passed by it unscored"
            )
        return text + ("; " + "; ".join(extra) if extra else "")


def merge_histograms(histograms: Iterable[Mapping[int, int]]) -> Counter[int]:
    """Several latency histograms (whole ms -> batches) as one."""
    total: Counter[int] = Counter()
    for histogram in histograms:
        total.update(histogram)
    return total


def histogram_quantile(histogram: Mapping[int, int], fraction: float) -> float:
    """The ``fraction`` quantile of a histogram of whole milliseconds (NaN when empty).

    The smallest bucket at or below which at least ``fraction`` of the batches
    fall: as a histogram rounds up, an upper bound of the true quantile.
    """
    count = sum(histogram.values())
    if not count:
        return float("nan")
    rank = max(1, math.ceil(fraction * count))
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return float(bucket)
    return float(max(histogram))


def error_lines(lines: Iterable[str]) -> int:
    """How many JSON log lines are at ERROR or above (lines that are not JSON are skipped:
    a crash's traceback printed by Python itself is counted by its process's exit)."""
    count = 0
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ERROR_LEVELS:
            count += 1
    return count


@dataclass(frozen=True, slots=True)
class Memory:
    """A process's resident memory at the start, the middle and the end of the soak (bytes)."""

    start: int
    middle: int
    end: int

    @property
    def growth(self) -> float:
        """Growth over the second half, as a fraction of the middle."""
        return (self.end - self.middle) / self.middle if self.middle else float("nan")

    @property
    def flat(self) -> bool:
        """The end within :data:`GROWTH_TOLERANCE` of the middle: caches fill during the
        first half, a leak keeps growing in the second."""
        return self.growth <= GROWTH_TOLERANCE
