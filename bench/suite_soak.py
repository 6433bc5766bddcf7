"""The whole suite under a fleet for minutes, with analytics killed once: is anything lost?

``make bench BENCH_ARGS="--only soak"`` (opt-in: a default run leaves it out,
it takes ten minutes). The five services and the gateway run as their own
processes (:mod:`bench.services`, what ``iot up`` runs) on a PostgreSQL
database made for the run and on Redis; the device simulator
(:mod:`tools.simulate`) streams N devices from another process. Half-way,
analytics is killed with SIGKILL and started again, as ``iot up`` would.

At the end, after a bounded wait for the pipeline to drain, the readings the
devices sent, telemetry acknowledged, telemetry's database holds and analytics
scored (its ``scores`` table, a row per analysed chunk) must all be equal;
the page also shows errors in the logs, the p99 acknowledgement latency the
devices saw, and every process's resident memory at the start, the middle
and the end.
"""

from __future__ import annotations

import asyncio
import io
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from bench.report import Figure, JobResult, Table
from bench.services import GATEWAY, POSTGRES_URL, RunningServices, rss_bytes, running
from bench.soak_accounts import (
    GROWTH_TOLERANCE,
    Ledger,
    Memory,
    error_lines,
    histogram_quantile,
    merge_histograms,
)
from bench.telemetry import telemetry_storage
from iotkit.config import SERVICES, Settings
from services.telemetry import forwarder
from tools.simulate import Options, simulate

SOAK_TITLE = "11. Soak: the whole suite on PostgreSQL and Redis, analytics killed once"
CHILDREN = (*SERVICES, GATEWAY)
KILLED = "analytics"
RESTART_PAUSE = 0.5
"""Seconds between the kill and the restart: ``iot up``'s first restart pause."""
ACK_TARGET_MS = 1000.0


@dataclass(frozen=True, slots=True)
class SoakOptions:
    """The fleet, how long it streams, and where the databases are."""

    devices: int = 200
    minutes: float = 10.0
    rate_hz: float = 10.0
    batch_ms: int = 1000
    # Ends as soon as every count agrees; a long bound costs nothing when analytics keeps up.
    drain_seconds: float = 300.0
    database_url: str = os.environ.get("IOT_TEST_DATABASE_URL", POSTGRES_URL)
    redis_url: str = os.environ.get("IOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass(frozen=True, slots=True)
class FleetOutcome:
    """The simulator's totals, picklable across the process boundary."""

    sent: int
    accepted: int
    duplicates: int
    rejected: int
    dropped: int
    unacked: int
    reconnects: int
    errors: tuple[str, ...]
    ack_ms: dict[int, int]


def _simulate(settings: Settings, options: Options) -> FleetOutcome:
    # The generated account's password goes to `err`; nobody needs it after the run.
    summary = asyncio.run(simulate(settings, options, out=io.StringIO(), err=io.StringIO()))
    return FleetOutcome(
        sent=summary.sent,
        accepted=summary.accepted,
        duplicates=summary.duplicates,
        rejected=summary.rejected,
        dropped=summary.dropped,
        unacked=summary.unacked,
        reconnects=sum(d.reconnects for d in summary.devices),
        errors=tuple(sorted({d.error for d in summary.devices if d.error})),
        ack_ms=dict(merge_histograms(d.ack_ms for d in summary.devices)),
    )


def _analysed(database_url: str) -> tuple[int, int]:
    """Readings analytics scored (its own schema, a row per analysed chunk), and stored
    readings after telemetry's forwarding cursor (not yet acknowledged by analytics)."""
    with psycopg.connect(database_url) as connection:
        analysed = connection.execute(
            "SELECT coalesce(sum(count), 0) FROM iot_analytics.scores"
        ).fetchone()
        queued = connection.execute(
            "SELECT coalesce(sum(count), 0) FROM iot_telemetry.chunks WHERE id > coalesce("
            "(SELECT position FROM iot_telemetry.cursors WHERE name = %s), 0)",
            (forwarder.CURSOR,),
        ).fetchone()
    return int(analysed[0] if analysed else 0), int(queued[0] if queued else 0)


async def _counts(suite: RunningServices) -> tuple[int, int, int]:
    """Readings telemetry's database holds, analytics scored, and are queued for it."""
    assert suite.settings.database_url
    stored, _ = await telemetry_storage(suite)
    return stored, *await asyncio.to_thread(_analysed, suite.settings.database_url)


def _rss(suite: RunningServices) -> dict[str, int]:
    return {name: rss_bytes(suite.pid(name)) for name in CHILDREN}


async def _wait_for_stream(suite: RunningServices, future: asyncio.Future[Any]) -> float:
    """When the first reading was stored (the set-up of the fleet is over)."""
    while not future.done():
        stored, _ = await telemetry_storage(suite)
        if stored:
            return time.monotonic()
        await asyncio.sleep(0.5)
    return time.monotonic()


@dataclass(frozen=True, slots=True)
class Drained:
    """The counts once the pipeline drained (or the wait ran out), and how analysis moved."""

    stored: int
    analysed: int
    queued: int
    seconds: float
    analysed_before: int  # when the load stopped

    @property
    def analysis_rate(self) -> float:
        """Readings analysed per second during the wait."""
        return (self.analysed - self.analysed_before) / self.seconds if self.seconds else 0.0


async def _drain(suite: RunningServices, acknowledged: int, seconds: float) -> Drained:
    """Wait (at most ``seconds``) until telemetry holds every acknowledged reading and
    analytics has scored them all."""
    started = time.monotonic()
    _, before, _ = await _counts(suite)
    while True:
        stored, analysed, queued = await _counts(suite)
        waited = time.monotonic() - started
        if (stored >= acknowledged and analysed >= stored) or waited >= seconds:
            return Drained(stored, analysed, queued, waited, before)
        await asyncio.sleep(1.0)


def _mb(value: int) -> str:
    return f"{value / 1e6:,.0f}"


def _memory_table(memory: dict[str, Memory], restarted: int) -> Table:
    rows = [
        [
            f"`{name}`",
            _mb(m.start),
            _mb(m.middle),
            _mb(m.end),
            f"{m.growth:+.1%}" + ("" if m.flat else " **grew**"),
        ]
        for name, m in memory.items()
    ]
    return Table(
        f"Resident memory (MB) of every process: at the start of the load, at half time "
        f"(just before the kill) and after the drain; `{KILLED}` at the end is the restarted "
        f"process ({_mb(restarted)} MB once it served again), so its change compares two "
        "processes:",
        ["process", "start", "middle", "end", "middle to end"],
        rows,
        "lrrrr",
    )


def _figures(
    options: SoakOptions,
    outcome: FleetOutcome,
    ledger: Ledger,
    drained: Drained,
    errors: dict[str, int],
    memory: dict[str, Memory],
    *,
    behind: str,
) -> list[Figure]:
    load = (
        f"{options.devices} simulated devices at {options.rate_hz:g} Hz, a batch every "
        f"{options.batch_ms} ms each, for {options.minutes:g} min; {KILLED} SIGKILLed and "
        "restarted at half time"
    )
    p50 = histogram_quantile(outcome.ack_ms, 0.5)
    p99 = histogram_quantile(outcome.ack_ms, 0.99)
    batches = sum(outcome.ack_ms.values())
    logged = ", ".join(f"{name} {count}" for name, count in errors.items() if count) or "none"
    error_total = sum(errors.values()) + len(outcome.errors) + outcome.rejected
    survivors = {name: m for name, m in memory.items() if name != KILLED}
    worst = max(survivors, key=lambda name: survivors[name].growth)
    return [
        Figure(
            "readings analysed at the end",
            "readings",
            float(ledger.analysed),
            "readings the devices sent",
            float(ledger.sent),
            f"{ledger.describe()}; counted {drained.seconds:.0f} s after the load stopped "
            f"(drain wait up to {options.drain_seconds:g} s; analytics scored "
            f"{drained.analysis_rate:,.0f} readings/s meanwhile); {behind}; {load}",
            target="sent = acknowledged = stored = analysed",
            met=ledger.balanced,
        ),
        Figure(
            "acknowledgement latency, p99",
            "ms",
            p99,
            "p50 of the same batches",
            p50,
            f"{batches:,} batches, from a batch's first send to its ack, as the devices saw it "
            f"(whole ms, rounded up); max {max(outcome.ack_ms, default=0):,} ms",
            lower_is_better=True,
            target=f"< {ACK_TARGET_MS:,.0f} ms",
            met=p99 < ACK_TARGET_MS,
        ),
        Figure(
            "errors",
            "errors",
            float(error_total),
            "none expected",
            0.0,
            f"log lines at ERROR or above: {logged}; readings rejected {outcome.rejected:,}; "
            f"device streams failed {len(outcome.errors)}"
            + (f" ({'; '.join(outcome.errors)[:200]})" if outcome.errors else "")
            + f"; device reconnects {outcome.reconnects}",
            lower_is_better=True,
            target="0",
            met=error_total == 0,
        ),
        Figure(
            f"RSS growth over the second half, largest ({worst})",
            "%",
            survivors[worst].growth * 100,
            "the flat tolerance",
            GROWTH_TOLERANCE * 100,
            f"of the processes that ran throughout ({KILLED} was restarted); every process "
            "in the table below",
            lower_is_better=True,
            target=f"≤ {GROWTH_TOLERANCE:.0%}",
            met=all(m.flat for m in survivors.values()),
        ),
    ]


async def measure(options: SoakOptions) -> JobResult:
    """Run the soak and answer its section of the page."""
    job = JobResult(when=f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC", options="")
    seconds = options.minutes * 60
    simulator = Options(
        devices=options.devices,
        rate_hz=options.rate_hz,
        seconds=seconds,
        batch_ms=options.batch_ms,
    )
    async with running(
        "postgresql",
        CHILDREN,
        postgres_url=options.database_url,
        redis_url=options.redis_url,
    ) as suite:
        assert suite.log_dir is not None
        context = multiprocessing.get_context("spawn")
        busy = [os.getloadavg()[0]]
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            future: asyncio.Future[FleetOutcome] = asyncio.get_running_loop().run_in_executor(
                pool, _simulate, suite.settings, simulator
            )
            streaming = await _wait_for_stream(suite, future)
            start = _rss(suite)
            print(f"  soak: {options.devices} devices streaming", flush=True)
            half = streaming + seconds / 2
            while not future.done() and time.monotonic() < half:
                await asyncio.wait([future], timeout=min(10.0, max(0.0, half - time.monotonic())))
                busy.append(os.getloadavg()[0])
            middle = _rss(suite)
            at_kill = await _counts(suite)
            suite.kill(KILLED)
            print(f"  soak: {KILLED} killed", flush=True)
            await asyncio.sleep(RESTART_PAUSE)
            await suite.start([KILLED])
            restarted = rss_bytes(suite.pid(KILLED))
            print(f"  soak: {KILLED} serving again", flush=True)
            while not future.done():
                await asyncio.wait([future], timeout=10.0)
                busy.append(os.getloadavg()[0])
            outcome = future.result()
        acknowledged = outcome.accepted + outcome.duplicates
        drained = await _drain(suite, acknowledged, options.drain_seconds)
        end = _rss(suite)
        errors = {
            name: error_lines(
                (suite.log_dir / f"{name}.log").read_text(errors="replace").splitlines()
            )
            for name in CHILDREN
        }
    ledger = Ledger(
        sent=outcome.sent,
        acknowledged=acknowledged,
        stored=drained.stored,
        analysed=drained.analysed,
        rejected=outcome.rejected,
        dropped=outcome.dropped,
        unacked=outcome.unacked,
        queued=drained.queued,
    )
    memory = {name: Memory(start[name], middle[name], end[name]) for name in CHILDREN}
    stored, analysed, queued = at_kill
    behind = (
        f"when {KILLED} was killed, telemetry held {stored:,} readings, {analysed:,} were "
        f"analysed and {queued:,} queued after the forwarding cursor"
    )
    job.sections[SOAK_TITLE] = _figures(
        options, outcome, ledger, drained, errors, memory, behind=behind
    )
    job.tables[SOAK_TITLE] = [_memory_table(memory, restarted)]
    job.notes.append(
        f"soak: 1-minute load average between {min(busy):.1f} and {max(busy):.1f} on "
        f"{os.cpu_count()} cores while the fleet streamed (the suite, the simulator and "
        "PostgreSQL, plus any other work on the machine)"
    )
    return job
