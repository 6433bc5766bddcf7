"""A stream's expected sampling: a whole rate in Hz and a period, either derived from the other.

Seed 000 gives a stream a whole-Hz ``sampling_rate``, which cannot say "every
five minutes"; the period can. A stream keeps both, always agreeing: from the
rate alone the period is 1 / rate (to the microsecond); from the period alone
the rate is 1 / period rounded to the nearest whole Hz (halves up), or 0 below
1 Hz. 0 for both means irregular.
"""

from __future__ import annotations

from dataclasses import dataclass

from iotkit.validation import Violations

SECOND_US = 1_000_000
MAX_SAMPLING_RATE = 1_000_000
PERIOD_MIN_US = 1_000  # 1 ms
PERIOD_MAX_US = 7 * 86_400 * SECOND_US  # 7 days


@dataclass(frozen=True, slots=True)
class Sampling:
    """A stream's expected sampling, rate and period agreeing."""

    rate: int  # whole Hz; 0 when irregular or slower than 1 Hz
    period_us: int  # 0 when irregular


IRREGULAR = Sampling(0, 0)


def period_of_rate(rate: int) -> int:
    """The period of a whole rate, in microseconds rounded halves up (0 for 0 Hz)."""
    return (2 * SECOND_US + rate) // (2 * rate) if rate > 0 else 0


def rate_of_period(period_us: int) -> int:
    """The whole rate of a period, rounded halves up; 0 when irregular or below 1 Hz."""
    if period_us <= 0 or period_us > SECOND_US:
        return 0
    return (2 * SECOND_US + period_us) // (2 * period_us)


def _describe(period_us: int) -> str:
    return f"{period_us / SECOND_US:g}s"


def check_sampling(
    violations: Violations, *, rate: int | None, period_us: int | None
) -> Sampling | None:
    """The sampling that a rate, a period or both give; None when neither is given.

    Violations name the bad field: a rate out of 0..1,000,000 Hz, a period
    neither 0 nor 1 ms to 7 days, or a period that disagrees with the rate
    given beside it (named ``sampling_period``).
    """
    if rate is not None and not 0 <= rate <= MAX_SAMPLING_RATE:
        violations.add("sampling_rate", f"sampling_rate must be between 0 and {MAX_SAMPLING_RATE}")
        return None
    if period_us is not None and period_us != 0 and not PERIOD_MIN_US <= period_us <= PERIOD_MAX_US:
        violations.add(
            "sampling_period", "sampling_period must be 0 (irregular) or between 1 ms and 7 days"
        )
        return None
    if period_us is None:
        return None if rate is None else Sampling(rate, period_of_rate(rate))
    derived = rate_of_period(period_us)
    if rate is not None and rate != derived:
        violations.add(
            "sampling_period",
            f"sampling_period {_describe(period_us)} is {derived} Hz, which disagrees with"
            f" sampling_rate {rate}: give one of them, or both alike",
        )
        return None
    return Sampling(derived, period_us)
