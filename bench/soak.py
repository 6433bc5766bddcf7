"""Memory of the telemetry process over a long ingest, and storage at the simulator's batching.

Telemetry runs as its own process on the default SQLite database, with
analytics beside it taking the forwarded readings, as ``iot up`` runs them;
the load is the device simulator itself (``iot simulate``: 100 devices at
1 kHz, a batch every 100 ms each), in another process, for
``--soak-seconds``. The telemetry process's resident memory is read from
/proc/PID/status every second.
"""

from __future__ import annotations

import asyncio
import io
import multiprocessing
import sqlite3
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench import baselines
from bench.load import Device, LoadPlan
from bench.report import Figure, JobResult
from bench.services import rss_bytes, running
from bench.telemetry import STORAGE_TITLE, telemetry_storage
from iotkit.config import Settings
from services.telemetry import forwarder
from tools.signals import DEVICE_TYPES
from tools.simulate import Options, simulate

MEMORY_TITLE = "6. Memory of the telemetry process over a soak"
ANALYSIS_TITLE = "10. Analytics under the soak: keeping up, and the lag to an anomaly"
DEVICES = 100
RATE_HZ = 1000.0
BATCH_MS = 100
FLAT_TOLERANCE = 0.10
"""Memory counts as flat when the end is within this fraction of the level at half time."""
PLAIN_ROUNDS = 100
"""Rounds of 100 devices' 100-reading batches for the plain-table size: 1,000,000 readings."""


@dataclass(frozen=True, slots=True)
class SimulatorOutcome:
    """The simulator's totals, as its summary reports them."""

    accepted: int
    rejected: int
    duplicates: int
    dropped: int
    unacked: int
    seconds: float
    errors: tuple[str, ...]


def run_simulator(settings: Settings, options: Options) -> SimulatorOutcome:
    """Run the device simulator to its end (in a process of its own: see callers)."""
    summary = asyncio.run(simulate(settings, options, out=io.StringIO()))
    return SimulatorOutcome(
        summary.accepted,
        summary.rejected,
        summary.duplicates,
        summary.dropped,
        summary.unacked,
        summary.seconds,
        tuple(sorted({d.error for d in summary.devices if d.error})),
    )


def _forwarded(path: Path) -> float:
    """How much of telemetry's chunk log analytics has acknowledged (by chunk id)."""
    connection = sqlite3.connect(path)
    try:
        (newest,) = connection.execute("SELECT coalesce(max(id), 0) FROM chunks").fetchone()
        row = connection.execute(
            "SELECT position FROM cursors WHERE name = ?", (forwarder.CURSOR,)
        ).fetchone()
    finally:
        connection.close()
    return (row[0] if row else 0) / newest if newest else 1.0


KEEPS_UP = 0.99
"""Share of the chunk log analysed one second after the load stops that counts as keeping up
(the last group committed may still be on its way)."""
INSTANT_TYPES = ("spike", "dip", "out_of_range", "rate_of_change")
"""Anomalies knowable from the reading itself; a flatline or a gap is known only after
it has lasted (its time is its start), so its lag is its length, not the pipeline's."""


def _lags_ms(path: Path) -> dict[str, list[float]]:
    """Per anomaly type: from the reading's time to when analytics stored it."""
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(
            "SELECT anomaly_type, detected_us, found_at FROM anomalies"
        ).fetchall()
    finally:
        connection.close()
    lags: dict[str, list[float]] = {}
    for anomaly_type, detected_us, found_at in rows:
        found = datetime.fromisoformat(str(found_at))
        found = found if found.tzinfo else found.replace(tzinfo=UTC)
        lags.setdefault(anomaly_type, []).append((found.timestamp() * 1e6 - detected_us) / 1000)
    return lags


def _quantile(values: list[float], fraction: float) -> float:
    return float(np.quantile(values, fraction)) if values else float("nan")


def _analysis_figures(
    outcome: SimulatorOutcome, forwarded: float, by_type: dict[str, list[float]]
) -> list[Figure]:
    ingest = outcome.accepted / max(outcome.seconds, 1e-9)
    lags = [lag for kind in INSTANT_TYPES for lag in by_type.get(kind, [])]
    counts = ", ".join(f"{kind} {len(values)}" for kind, values in sorted(by_type.items()))
    slow = "; ".join(
        f"{kind} median {_quantile(by_type[kind], 0.5) / 1000:,.1f} s"
        for kind in ("flatline", "gap")
        if by_type.get(kind)
    )
    about = (
        f"{len(lags)} spikes, dips, out-of-range readings and jumps (found: {counts}); "
        "from the reading's device time to analytics' commit of the anomaly (device "
        "batching, ingest commit, forwarding, analysis and its commit)"
        + (f"; flatlines and gaps are known only once they have lasted: {slow}" if slow else "")
    )
    figures = [
        Figure(
            "readings analysed per second while the simulator streamed",
            "readings/s",
            ingest * forwarded,
            "readings telemetry accepted per second",
            ingest,
            f"analytics had acknowledged {forwarded:.1%} of the chunk log one second after "
            "the load stopped; same process layout as `iot up`, on two cores with the "
            "simulator, telemetry, auth and devices",
            target=f"≥ {KEEPS_UP:.2f}x (keeps up)",
            met=forwarded >= KEEPS_UP,
        )
    ]
    for name, fraction in (("p50", 0.5), ("p99", 0.99)):
        lag = _quantile(lags, fraction)
        figures.append(
            Figure(
                f"lag from a reading to its anomaly, {name}",
                "ms",
                lag,
                "the simulator's batch interval",
                float(BATCH_MS),
                about,
                lower_is_better=True,
                target="< 1,000 ms",
                met=lag < 1000,
            )
        )
    return figures


async def measure(*, soak_seconds: float) -> JobResult:
    """Peak, start and end memory of telemetry under the simulator, and its storage per reading."""
    job = JobResult(when=f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC", options="")
    async with running("sqlite", ("auth", "devices", "telemetry", "analytics")) as suite:
        pid = suite.pid("telemetry")
        options = Options(devices=DEVICES, rate_hz=RATE_HZ, seconds=soak_seconds, batch_ms=BATCH_MS)
        context = multiprocessing.get_context("spawn")
        samples: list[tuple[float, int]] = []
        started = time.monotonic()
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            future: asyncio.Future[Any] = asyncio.get_running_loop().run_in_executor(
                pool, run_simulator, suite.settings, options
            )
            while not future.done():
                samples.append((time.monotonic() - started, rss_bytes(pid)))
                if len(samples) % 60 == 0:
                    when, rss = samples[-1]
                    print(f"  soak {when:.0f} s: telemetry RSS {rss / 1e6:.0f} MB", flush=True)
                await asyncio.wait([future], timeout=1.0)
            outcome: SimulatorOutcome = future.result()
        await asyncio.sleep(1.0)
        stored, size = await telemetry_storage(suite)
        forwarded = _forwarded(suite.settings.data_dir / "telemetry.db")
        lags = _lags_ms(suite.settings.data_dir / "analytics.db")
        plain_path = suite.settings.data_dir / "plain.db"
        plan = LoadPlan(
            address="",
            devices=tuple(
                Device("", "", DEVICE_TYPES[i % len(DEVICE_TYPES)], i) for i in range(DEVICES)
            ),
            batch_size=int(RATE_HZ * BATCH_MS / 1000),
            seconds=0.0,
            warmup=0.0,
            start_us=time.time_ns() // 1000 - 3600 * 1_000_000,
            rate_hz=RATE_HZ,
        )
        plain = await asyncio.to_thread(
            baselines.sqlite_executemany, plain_path, list(baselines.rounds(plan, PLAIN_ROUNDS))
        )
    first, peak, end = samples[0][1], max(rss for _, rss in samples), samples[-1][1]

    def rss_at(seconds: float) -> int:
        return next((rss for when, rss in samples if when >= seconds), end)

    # Caches fill during the first minutes (SQLite's page cache per pooled connection,
    # malloc arenas); a leak keeps growing after them. So: the end against half time.
    half = rss_at(soak_seconds / 2)
    flat = end <= half * (1 + FLAT_TOLERANCE)
    slope = (end - half) / 1e6 / max(soak_seconds / 2 / 60, 1e-9)
    rate = outcome.accepted / max(outcome.seconds, 1e-9)
    load = (
        f"{DEVICES} simulated devices at {RATE_HZ:,.0f} Hz, a batch every {BATCH_MS} ms each, "
        f"for {soak_seconds:,.0f} s: {outcome.accepted:,} readings accepted ({rate:,.0f}/s), "
        f"{outcome.dropped:,} dropped by the devices, {outcome.rejected:,} rejected"
        + (f"; errors: {list(outcome.errors)[:3]}" if outcome.errors else "")
        + f"; analytics ran beside and had acknowledged {forwarded:.0%} of the chunk log"
    )
    job.sections[MEMORY_TITLE] = [
        Figure(
            "telemetry peak RSS",
            "MB",
            peak / 1e6,
            "its RSS before the load",
            first / 1e6,
            f"RSS at 1 min {rss_at(60) / 1e6:.0f} MB, at half time {half / 1e6:.0f} MB, at the end "
            f"{end / 1e6:.0f} MB ({slope:+.1f} MB/min over the second half); {load}",
            lower_is_better=True,
            target=f"flat: end within {FLAT_TOLERANCE:.0%} of half time",
            met=flat,
        )
    ]
    job.sections[ANALYSIS_TITLE] = _analysis_figures(outcome, forwarded, lags)
    job.sections[STORAGE_TITLE] = [
        Figure(
            f"telemetry's SQLite file, simulator batches ({plan.batch_size} readings)",
            "B/reading",
            size / max(1, stored),
            "plain table with its primary key in SQLite",
            plain.bytes_per_reading,
            f"{stored:,} readings in {size / 1e6:.1f} MB after the soak",
            lower_is_better=True,
            target="≤ 4 B/reading",
            met=size / max(1, stored) <= 4,
        )
    ]
    return job
