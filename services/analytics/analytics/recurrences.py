"""The detector's per-reading recurrences, compiled with numba.

Each is a plain loop over a batch's readings, continuing from the state the
last batch left: the same operations in the same order whatever the batch
size, so results do not depend on how readings are split into batches (to
the last bit, which the vectorised forms they replace could not promise), and
one compiled pass instead of a dozen numpy calls per quantity. Each has one
signature, given, so it is compiled (or loaded) when the module is imported,
as a service starts, not at its first batch, where it would hold up the event
loop; ``cache=True`` keeps the machine code beside the module, so the first
import ever compiles (seconds) and later ones load it.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

Float64s = npt.NDArray[np.float64]
Judged = tuple[Float64s, Float64s, float, float, float, Float64s, Float64s, Float64s, float, int]


@njit("(b1[:], b1[:], i8[:], i8, i8, i8, i8, b1)", cache=True)
def events(
    reach: npt.NDArray[np.bool_],
    held: npt.NDArray[np.bool_],
    ts: npt.NDArray[np.int64],
    rest: int,
    event_us: int,
    since: int,
    held_us: int,
    active: bool,
) -> tuple[npt.NDArray[np.bool_], int, int, bool]:  # pragma: no cover
    """For each reading that ``reach``-es the threshold, whether it belongs to the event of
    an earlier one: one reached within ``rest`` readings before, or the event still held
    (an event is held from a reach by ``held`` readings, each within ``event_us`` of the
    last). Answers those, and the readings since the last reach, the time of the last held
    reading and whether its event is still held, after the readings (``since``, ``held_us``
    and ``active``: the same before them)."""
    same = np.zeros(reach.size, dtype=np.bool_)
    for i in range(reach.size):
        since += 1
        lapsed = not active or ts[i] - held_us > event_us
        if reach[i]:
            same[i] = since <= rest or not lapsed
            since, held_us, active = 0, ts[i], True
        elif held[i] and not lapsed:
            held_us = ts[i]
        elif lapsed:
            active = False
    return same, since, held_us, active


@njit("f8(f8[:], i8, i8)", cache=True)
def _window_sum(values: Float64s, first: int, end: int) -> float:  # pragma: no cover
    """The sum of ``values[first:end]`` in four interleaved partial sums: four times as fast
    as one chain of additions, each waiting for the last, and the same order of additions
    for the same window wherever a batch began, so results stay exact across batch sizes."""
    a = b = c = d = 0.0
    j = first
    while j + 4 <= end:
        a += values[j]
        b += values[j + 1]
        c += values[j + 2]
        d += values[j + 3]
        j += 4
    while j < end:
        a += values[j]
        j += 1
    return (a + b) + (c + d)


@njit(
    "(f8[:], f8[:], i8, f8, f8, f8[:], f8, b1, f8, f8, f8, f8[:], f8[:], f8[:], f8, i8)", cache=True
)
def judge(
    xs: Float64s,
    floor: Float64s,
    window: int,
    alpha: float,
    z_min: float,
    decays: Float64s,
    z_cap: float,
    judged: bool,
    level: float,
    variance: float,
    peak: float,
    recent: Float64s,
    recent_levels: Float64s,
    recent_variances: Float64s,
    total: float,
    taken: int,
) -> Judged:  # pragma: no cover
    """One deviation time scale over a batch (see ``detectors._judge``): for each reading,
    the mean of the last ``window`` readings against the level and spread ``window``
    readings before it, in deviations of such a mean (never below ``floor``), over the
    decayed peak of those before it (never below ``z_min``); and the level judged against.
    Answers the ratios, the levels, and the new level, variance, peak and recent arrays
    (the last ``window`` readings, and the level and variance after each), the sum of the
    recent readings and the readings taken.

    The sum of the last ``window`` readings is a running one (``total``), summed afresh
    whenever the readings taken (``taken``) reach a multiple of ``window``: the same
    additions whatever the batches, and no rounding carried longer than a window (a value
    of 1e12 leaving the window must not leave its rounding in the sum of small ones)."""
    size = xs.size
    held = recent.size
    values = np.empty(held + size)
    levels = np.empty(held + size)
    variances = np.empty(held + size)
    values[:held] = recent
    levels[:held] = recent_levels
    variances[:held] = recent_variances
    start_level = level if held else (xs[0] if size else 0.0)
    level = start_level
    ratios = np.empty(size)
    bases = np.empty(size)
    root = math.sqrt(window)
    peak = max(peak, 0.0)
    for i in range(size):
        x = xs[i]
        at = held + i
        values[at] = x
        # The base of reading t is the level and variance `window` readings before it.
        back = at - window
        if back >= 0:
            base, spread = levels[back], math.sqrt(variances[back])
        else:
            base, spread = start_level, math.sqrt(variance)
        deviation = x - level
        variance += alpha * (deviation * deviation - variance)
        level += alpha * deviation
        levels[at] = level
        variances[at] = variance
        first = max(at + 1 - window, 0)
        taken += 1
        if taken % window == 0:
            total = _window_sum(values, first, at + 1)
        else:
            total += x
            if at >= window:
                total -= values[at - window]
        mean = total / (at + 1 - first)
        # A mean of n readings spreads sqrt(n) times less than one reading.
        z = min(abs(mean - base) / max(spread / root, floor[i]), z_cap) if judged else 0.0
        peak *= decays[i]
        ratios[i] = z / max(peak, z_min)
        bases[i] = base
        peak = max(peak, z)
    keep = max(held + size - window, 0)
    return (
        ratios,
        bases,
        level,
        variance,
        peak,
        values[keep:].copy(),
        levels[keep:].copy(),
        variances[keep:].copy(),
        total,
        taken,
    )


@njit("(f8[:], f8[:], i8, f8, f8, b1, f8[:], f8, f8, f8, f8[:], f8, b1)", cache=True)
def shifts(
    xs: Float64s,
    before: Float64s,
    known: int,
    variance: float,
    peak: float,
    skip: bool,
    floors: Float64s,
    alpha: float,
    z_min: float,
    clip: float,
    decays: Float64s,
    spike: float,
    judged: bool,
) -> tuple[Float64s, float, float, bool]:  # pragma: no cover
    """For each reading t, how far reading t - 1 stepped from a level that held (t - 3 to
    t - 2) to one that holds (t), over its threshold (1 = at it): the smaller of the step
    into t - 1 and of t against t - 2, less the larger of the steps beside (t - 1 to t,
    t - 3 to t - 2), in deviations of one step; and the steps' variance, the bar's peak
    and whether the next step to learn is a spike's way back, after. ``before`` holds the
    three readings before these (oldest first), ``known`` how many there were.

    The steps' variance learns every step but those of spikes (a reading ``spike``
    deviations out both ways, known with the reading after, so steps are learnt one reading
    late), each at most ``z_min`` deviations: a stream whose level steps as a habit (a
    daily square wave, say) learns the size of its steps over a few of them, and its next
    step is no news, while a rare step (a jump on a noisy sensor) stands hundreds of
    deviations out, and does not inflate the variance enough to hide the next jump a few
    hundred readings later (a jump and its way back, whole, did). The bar is the largest
    such departure lately, decaying by ``decays`` (one per reading) and never below ``z_min``,
    each teaching it no more than ``clip`` times itself."""
    out = np.zeros(xs.size)
    b3, b2, b1 = before[0], before[1], before[2]
    for i in range(xs.size):
        x = xs[i]
        spread = max(variance, floors[i])
        deviation = math.sqrt(spread)
        into, out_of, across = b1 - b2, b1 - x, x - b2
        learnt = 0.0
        if judged and known >= 3 and spread > 0.0:
            size = min(abs(into), abs(across)) - max(abs(out_of), abs(b2 - b3))
            z = size / deviation if into * across > 0.0 and size > 0.0 else 0.0
            bar = max(peak * decays[i], z_min)
            out[i] = z / bar
            learnt = min(z, clip * bar)
        peak = max(peak * decays[i], learnt)
        if known >= 2:
            jutted = into * out_of > 0.0 and (
                min(abs(into), abs(out_of)) - abs(across) > spike * deviation
            )
            if not (skip or jutted):
                # No step teaches more than the least bar: one jump does not hide the next.
                variance += alpha * (min(into * into, z_min * z_min * spread) - variance)
            skip = jutted
        b3, b2, b1 = b2, b1, x
        known += 1
    return out, variance, peak, skip


@njit("(i8[:], f8[:], f8[:], i8, i8, f8[:], i8)", cache=True)
def deseason(
    ts: npt.NDArray[np.int64],
    xs: Float64s,
    alphas: Float64s,
    day_us: int,
    buckets: int,
    profile: Float64s,
    last_bucket: int,
) -> tuple[Float64s, int]:  # pragma: no cover
    """Each reading less the profile of its part of the day (``buckets`` of ``day_us``; NaN
    for a part not seen yet), moving that part's profile by ``alphas`` towards it, in place.
    A part seen for the first time starts where the part of the reading before it stood
    (``last_bucket`` before the readings, -1 for none), or at its reading for the stream's
    first. Answers the residuals and the part of the last reading."""
    residual = np.empty(xs.size)
    last = last_bucket
    for i in range(xs.size):
        bucket = (ts[i] % day_us) * buckets // day_us
        level = profile[bucket]
        if math.isnan(level):
            level = profile[last] if last >= 0 else xs[i]
        residual[i] = xs[i] - level
        profile[bucket] = level + alphas[i] * (xs[i] - level)
        last = bucket
    return residual, last


# What a run's recurrence carries: length, start, share as it began, the peak of normal
# runs, the bar of the last reading, and the share of repeats.
Runs = tuple[int, int, float, float, float, float]


@njit(
    "(i8[:], f8[:], f8[:], f8, b1, i8, i8, i8, f8, f8, f8, f8, f8, f8, f8, f8, f8, f8, i8, b1)",
    cache=True,
)
def flatline(
    ts: npt.NDArray[np.int64],
    xs: Float64s,
    typical_log: Float64s,
    previous: float,
    known: bool,
    readings: int,
    run_length: int,
    run_start_us: int,
    run_share: float,
    run_peak: float,
    run_floor: float,
    repeat_share: float,
    alpha: float,
    decay: float,
    chance: float,
    min_readings: float,
    min_us: float,
    factor: float,
    settled: int,
    judged: bool,
) -> tuple[Float64s, npt.NDArray[np.int64], Runs]:  # pragma: no cover
    """Flatline scores of readings (``detectors._flatline`` tells the rule), where each
    reading's run started, and the runs' recurrence after them (see ``Runs``; the same
    before them in the arguments, ``previous`` the last reading when ``known``).

    A run may last what readings repeating the one before at random, with the stream's
    share of repeats as it began, would last with the chance ``chance``; at least
    ``min_readings`` readings and ``min_us`` of time (once the typical interval is known);
    and ``factor`` times the longest normal run lately: a peak decaying by ``decay`` per
    reading, taught by each run that ended no more than the bar it had to reach to be
    found. A stream that has repeated one value since its first reading is not stuck."""
    score = np.zeros(xs.size)
    starts = np.empty(xs.size, dtype=np.int64)
    log_chance = math.log(chance)
    for i in range(xs.size):
        x = xs[i]
        same = known and x == previous
        counted = readings + i + 1
        repeat_share += alpha * ((1.0 if same else 0.0) - repeat_share)
        share = repeat_share
        if counted <= settled:  # corrected for its start at 0, as in Adam
            share = repeat_share / (1.0 - (1.0 - alpha) ** counted)
        ended = 0
        if same:
            run_length += 1
        else:
            ended = run_length
            run_length, run_start_us, run_share = 1, ts[i], share
        p = min(max(run_share, 1e-12), 1.0 - 1e-12)
        floor = max(1.0 + log_chance / math.log(p), min_readings)
        if typical_log[i] != 0.0:
            floor = max(floor, min_us / math.exp(typical_log[i]))
        run_peak *= decay
        needed = max(factor * run_peak, floor)  # the run that ended teaches the next reading
        if ended * factor >= min_readings:
            bar = max(factor * run_peak, run_floor)  # the ended run's bar on its last reading
            run_peak = max(run_peak, min(float(ended), bar))
        if judged and run_length > 1 and run_length < counted:
            ratio = run_length / needed
            score[i] = 0.5 * ratio if ratio < 1.0 else 1.0 - 0.5 / ratio
        starts[i] = run_start_us
        run_floor = floor
        previous, known = x, True
    return score, starts, (run_length, run_start_us, run_share, run_peak, run_floor, repeat_share)


@njit("(i8[:], i8, b1, f8, i8, f8, f8, f8, f8, f8, f8, b1)", cache=True)
def gaps(
    ts: npt.NDArray[np.int64],
    last_ts: int,
    known: bool,
    log_interval: float,
    intervals: int,
    peak: float,
    period_us: float,
    alpha: float,
    decay: float,
    factor: float,
    peak_factor: float,
    judged: bool,
) -> tuple[Float64s, npt.NDArray[np.int64], Float64s, float, int, float]:  # pragma: no cover
    """Gap scores of readings (on the reading after each interval), where each interval
    began, and the log of the typical interval before each reading (0 while unknown); and
    the typical interval's log, the intervals counted and the intervals' peak after them
    (the same before them in the arguments; ``last_ts`` the last reading's time when
    ``known``).

    The typical interval is an average of log intervals (``alpha`` per interval). An
    interval is a gap past ``factor`` times the expected one (``period_us`` when the stream
    says it, else the typical one) and, without a period, past ``peak_factor`` times the
    longest interval lately (a peak decaying by ``decay`` per reading)."""
    score = np.zeros(ts.size)
    began = np.empty(ts.size, dtype=np.int64)
    typical = np.empty(ts.size)
    previous = last_ts if known else (ts[0] if ts.size else 0)
    peak = max(peak, 0.0)
    for i in range(ts.size):
        began[i] = previous
        typical[i] = log_interval
        delta = float(ts[i] - previous)
        usable = delta > 0.0 and (known or i > 0)
        peak *= decay
        if usable:
            if judged:
                if period_us > 0.0:
                    limit = factor * period_us
                elif intervals >= 2:
                    limit = max(factor * math.exp(log_interval), peak_factor * peak)
                else:
                    limit = math.inf
                ratio = delta / limit
                score[i] = 0.5 * ratio if ratio < 1.0 else 1.0 - 0.5 / ratio
            if intervals:
                log_interval += alpha * (math.log(delta) - log_interval)
            else:
                log_interval = math.log(delta)
            intervals += 1
            peak = max(peak, delta)
        previous = ts[i]
    return score, began, typical, log_interval, intervals, peak


@njit("(i8[:], f8[:], f8[:], i8[:], f8, f8, f8, f8, f8, i8, f8, f8, f8, f8, f8)", cache=True)
def novelty(
    ts: npt.NDArray[np.int64],
    xs: Float64s,
    typical_log: Float64s,
    seen: npt.NDArray[np.int64],
    bin_low: float,
    width: float,
    low: float,
    high: float,
    discoveries: float,
    learnt_until: int,
    max_bands: float,
    bins: float,
    span: float,
    span_us: float,
    habit: float,
) -> tuple[Float64s, npt.NDArray[np.int64], float, float, float, float]:  # pragma: no cover
    """Novelty scores of readings (``detectors._novelty`` tells the rule); and the bands
    seen, their width, the range seen and the discoveries lately after them (the same before
    them in the arguments). Bands are ``width`` wide from ``bin_low``, doubling whenever the
    range seen spans more than ``max_bands``; a new band's news is divided by how far the
    discoveries lately (an average over ``span`` readings or ``span_us``, the longer) are
    past ``habit``, the distance past everything seen counting whole (in ``bins`` bands);
    readings before ``learnt_until`` learn bands without news."""
    score = np.zeros(xs.size)
    held = np.empty(seen.size + xs.size, dtype=np.int64)  # seen bands, unordered
    count = seen.size
    held[:count] = seen
    last_band = np.int64(-(2**62))  # the band of the reading before, seen by then
    limit = float(2**52)
    for i in range(xs.size):
        x = xs[i]
        new_low, new_high = min(low, x), max(high, x)
        while (new_high - new_low) / (max_bands * width) > 1.0:  # exact: doublings
            width *= 2.0
            merged = 0
            for j in range(count):
                band = held[j] // 2
                duplicate = False
                for k in range(merged):
                    if held[k] == band:
                        duplicate = True
                        break
                if not duplicate:
                    held[merged] = band
                    merged += 1
            count = merged
            last_band = np.int64(-(2**62))
        band = np.int64(min(max(math.floor((x - bin_low) / width), -limit), limit))
        found = False
        if band != last_band:
            found = True
            for j in range(count):
                if held[j] == band:
                    found = False
                    break
            if found:
                held[count] = band
                count += 1
        alpha = 1.0 / span
        if typical_log[i] != 0.0:
            alpha = 1.0 / max(span, span_us / math.exp(typical_log[i]))
        if found and ts[i] >= learnt_until:
            beyond = max(x - high, low - x, 0.0)
            lately = discoveries / alpha
            evidence = 1.0 / max(lately / habit, 1.0) + beyond / (bins * width)
            score[i] = 0.5 * evidence if evidence < 1.0 else 1.0 - 0.5 / evidence
        discoveries += alpha * ((1.0 if found else 0.0) - discoveries)
        low, high, last_band = new_low, new_high, band
    return score, np.sort(held[:count]), width, low, high, discoveries


@njit("(f8[:], f8, f8, f8[:], f8, f8)", cache=True)
def resolutions(
    xs: Float64s,
    previous: float,
    min_step: float,
    typical_log: Float64s,
    half_life: float,
    memory_us: float,
) -> tuple[Float64s, Float64s, float]:  # pragma: no cover
    """For each reading, the least spread its deviations are measured in: the smallest step
    the sensor made before it (its resolution), nor below a billionth of its magnitude (a
    residual of a constant series is rounding, which must not look like a departure); the
    bars' decay per reading, a half-life of ``half_life`` readings or ``memory_us`` at the
    typical interval (from its log, 0 when unknown), the longer; and the smallest step
    after the readings (``min_step`` before them, ``previous`` the reading before)."""
    floor = np.empty(xs.size)
    decays = np.empty(xs.size)
    known_log, decay = math.nan, 0.0
    for i in range(xs.size):
        step_floor = min_step if math.isfinite(min_step) else 0.0
        floor[i] = max(step_floor, 1e-9 * abs(xs[i]), 1e-300)
        step = abs(xs[i] - previous)
        if step > 0.0:
            min_step = min(min_step, step)
        previous = xs[i]
        log = typical_log[i]
        if log != known_log:  # the typical interval mostly holds: one power per change
            span = max(half_life, memory_us / math.exp(log)) if log != 0.0 else half_life
            known_log, decay = log, 0.5 ** (1.0 / span)
        decays[i] = decay
    return floor, decays, min_step
