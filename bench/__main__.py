"""Run the benchmarks and write docs/BENCHMARKS.md: ``python -m bench`` (``make bench``).

Jobs: ``auth`` (the cost of an authenticated call), ``postgresql`` and
``sqlite`` (telemetry's ingest, one reading per message, range queries and
storage on each database), ``memory`` (telemetry's memory over a soak under
the device simulator), ``analytics`` (the anomaly detector's F1 per type and a
NAB-style score on labelled synthetic series, and its throughput; in-process,
no services), ``nab`` (the detector on the development half of the Numenta
Anomaly Benchmark, scored by NAB's rules beside the published detectors;
in-process, needs the ``nab-dev`` dataset: ``--nab-dev PATH``), ``chat``
(the assistant's intent and slot accuracy on a held-out set of utterances,
and the time to train and to understand; in-process),
``chat-speed`` (a reply through the gateway that asks devices, against the
gateway's own ``/healthz``), ``soak`` (the whole suite on PostgreSQL and
Redis under a simulated fleet for ten minutes, analytics killed and restarted
half-way: nothing lost, errors, ack latency, every process's memory),
``chart`` (the console's chart of 1,000,000 readings in headless chromium,
from the click to uPlot's draw, against the same data request alone),
``partitions`` (telemetry's range query at 100 M readings in PostgreSQL, the
chunk table by month against one plain table, and retention by partition),
``scaleout`` (the gateway's requests/s with two worker processes on one port
against one, and telemetry's ingest with two replicas against one),
``mqtt`` (100 devices publishing 1,000-reading messages to a Mosquitto of the
job's own, into SQLite, beside gRPC's figure of the same run),
``alerts`` (from an anomaly stored to its signed webhook received, p50/p99
over a few hundred anomalies; auth and analytics as processes),
``alerts-load`` (the same while the soak's ingest load runs through telemetry
into the same analytics),
``gateway-speed`` (``GET /v1/devices/{id}`` through the gateway against a bare
Starlette app under the same load, and each process's CPU per request),
``influx`` (telemetry on SQLite and on PostgreSQL beside an InfluxDB of the job's
own, on the same NAB and simulator readings: ingest, storage, the chart's query;
needs Debian's ``influxdb``, measures our side alone without it).
``--only JOB`` (repeatable) runs some of them; the page
is still written whole, with the other jobs' figures from their last run.
Opt-in jobs (``soak``, ``chart``, ``partitions``, ``scaleout``, ``mqtt``, ``alerts``,
``alerts-load``, ``gateway-speed``, ``influx``) run only when named with ``--only``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import traceback
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    alerts,
    analytics,
    auth_calls,
    chart_draw,
    chat,
    chat_speed,
    gateway_speed,
    influx_peer,
    mqtt,
    nab_bench,
    partitions,
    scaleout,
    soak,
    suite_soak,
    telemetry,
)
from bench.report import JobResult, load, render, write

OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"
AUTH_TITLE = "Auth: the cost of an authenticated call"
ORDER = [
    telemetry.INGEST_TITLE["postgresql"],
    telemetry.INGEST_TITLE["sqlite"],
    telemetry.SINGLE_TITLE,
    telemetry.QUERY_TITLE,
    telemetry.STORAGE_TITLE,
    soak.MEMORY_TITLE,
    analytics.QUALITY_TITLE,
    nab_bench.NAB_TITLE,
    analytics.SPEED_TITLE,
    soak.ANALYSIS_TITLE,
    suite_soak.SOAK_TITLE,
    AUTH_TITLE,
    chat.QUALITY_TITLE,
    chat.SPEED_TITLE,
    chat_speed.SPEED_TITLE,
    chart_draw.CHART_TITLE,
    partitions.PARTITION_TITLE,
    scaleout.SCALE_TITLE,
    mqtt.MQTT_TITLE,
    alerts.LATENCY_TITLE,
    gateway_speed.SPEED_TITLE,
    influx_peer.INFLUX_TITLE,
]
INTRO = [
    "Telemetry runs as its own process (`python -m services.telemetry`), beside auth and",
    "devices, on a database made for the job (a temporary SQLite directory, or a PostgreSQL",
    "database created for the run and dropped after it); the load runs in another process.",
    "The ingest, query and storage jobs (`postgresql`, `sqlite`) run without analytics, so",
    "telemetry's forwarder idles and the figures are telemetry's own; the soak (`memory`)",
    "runs analytics too, as `iot up` does. Small chunks are merged only once analytics has",
    "acknowledged them, so the soak's storage figure depends on analytics keeping up.",
    "The readings are the device simulator's signals (`tools/signals.py`) at 1 kHz, rounded",
    "to each sensor's resolution. On this two-core machine the load generator, telemetry and",
    "PostgreSQL share the two cores, so the ingest figures are lower bounds of the service.",
    "The analytics job runs the detector in this process on labelled synthetic series at 1 Hz;",
    "the nab job runs it on the development half of the Numenta Anomaly Benchmark (real data).",
    "Only §8 is evidence of detection quality: real recordings, labels made by others, and",
    "published detectors scored by the same code. §7 runs on signals and labels this project",
    "generated itself, so it is a regression check on the detector's typing, not a measure of",
    "quality; §9's speed is timed on the simulator's signals beside a peer algorithm.",
    '§11 (`soak`, opt-in: `make bench BENCH_ARGS="--only soak"`) runs all five services and the',
    "gateway as processes on PostgreSQL and Redis under the device simulator for ten minutes,",
    "SIGKILLs analytics half-way and starts it again, and counts every reading from the devices",
    "to analytics' scores.",
    '§15 (`chart`, opt-in: `make bench BENCH_ARGS="--only chart"`) needs Debian\'s chromium and',
    "Playwright: the console in headless chromium, timed in the page with the Performance API.",
    "§16 (`partitions`), §17 (`scaleout`), §18 (`mqtt`, needs Debian's mosquitto) and §19",
    "(`alerts`) are opt-in too: 100 M readings in PostgreSQL, several processes of the gateway",
    "and telemetry, devices publishing over MQTT, and the time from an anomaly to its webhook.",
    '§20 (`gateway-speed`, opt-in: `make bench BENCH_ARGS="--only gateway-speed"`) puts the same',
    "load on a bare Starlette app and on the gateway's device read; `IOT_BENCH_PROFILE=DIR`",
    "also records the gateway and devices with py-spy.",
    "What §16-§20 compare with: §20 puts the gateway beside a peer (a bare Starlette app under",
    "the same uvicorn and load); §16's baseline is the same rows in one plain PostgreSQL table",
    "(a random walk the job generates, so it times the query plan, not any quality), §17's is",
    "the suite with one process, §18's the same devices over gRPC, §19's the target alone.",
    '§21 (`influx`, opt-in: `make bench BENCH_ARGS="--only influx"`) puts telemetry on SQLite and',
    "on PostgreSQL beside a peer time-series database, InfluxDB 1.6 (Debian's `influxdb`, which",
    "the job needs and does not install), on the same readings: NAB's real series and the",
    "simulator's signals; its ratios are ours ÷ InfluxDB's. InfluxDB runs as Debian ships it:",
    "the TSM engine at its defaults (a write is fsynced to its WAL before the 204, as ours is",
    "committed before the ack), usage reporting, its `_internal` database and request logs off.",
    "Its line-protocol bodies are encoded before its clock starts (ours are built as they are",
    "sent), gzip is off on both sides, and its figure is the better of one and four requests",
    "open a client. Its storage is counted after a full compaction, which it makes four hours",
    "after a shard's last write: the job restarts it with that delay at 1 s. §18 against",
    "another MQTT ingest is still to do.",
    "",
]


async def _auth(args: argparse.Namespace) -> JobResult:
    job = JobResult(when="", options="")
    job.sections[AUTH_TITLE] = await auth_calls.measure(min(args.seconds, 3.0))
    return job


async def _postgresql(args: argparse.Namespace) -> JobResult:
    return await telemetry.measure("postgresql", seconds=args.seconds)


async def _sqlite(args: argparse.Namespace) -> JobResult:
    return await telemetry.measure("sqlite", seconds=args.seconds)


async def _memory(args: argparse.Namespace) -> JobResult:
    return await soak.measure(soak_seconds=args.soak_seconds)


async def _analytics(args: argparse.Namespace) -> JobResult:
    return await analytics.measure()


async def _nab(args: argparse.Namespace) -> JobResult:
    return await nab_bench.measure(root=args.nab_dev)


async def _chat(args: argparse.Namespace) -> JobResult:
    return await chat.measure()


async def _chat_speed(args: argparse.Namespace) -> JobResult:
    return await chat_speed.measure()


async def _mqtt(args: argparse.Namespace) -> JobResult:
    return await mqtt.measure(seconds=args.seconds)


async def _chart(args: argparse.Namespace) -> JobResult:
    return await chart_draw.measure()


async def _partitions(args: argparse.Namespace) -> JobResult:
    return await partitions.measure()


async def _scaleout(args: argparse.Namespace) -> JobResult:
    return await scaleout.measure()


async def _alerts(args: argparse.Namespace) -> JobResult:
    return await alerts.measure()


async def _alerts_load(args: argparse.Namespace) -> JobResult:
    return await alerts.measure_under_load()


async def _gateway_speed(args: argparse.Namespace) -> JobResult:
    return await gateway_speed.measure()


async def _influx(args: argparse.Namespace) -> JobResult:
    return await influx_peer.measure()


async def _soak(args: argparse.Namespace) -> JobResult:
    return await suite_soak.measure(
        suite_soak.SoakOptions(
            devices=args.soak_devices,
            minutes=args.soak_minutes,
            rate_hz=args.soak_rate_hz,
            batch_ms=args.soak_batch_ms,
            database_url=args.soak_database_url,
            redis_url=args.soak_redis_url,
            drain_seconds=args.soak_drain_seconds,
        )
    )


JOBS: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, JobResult]]] = {
    "postgresql": _postgresql,
    "sqlite": _sqlite,
    "memory": _memory,
    "analytics": _analytics,
    "nab": _nab,
    "auth": _auth,
    "chat": _chat,
    "chat-speed": _chat_speed,
    "soak": _soak,
    "chart": _chart,
    "partitions": _partitions,
    "scaleout": _scaleout,
    "mqtt": _mqtt,
    "alerts": _alerts,
    "alerts-load": _alerts_load,
    "gateway-speed": _gateway_speed,
    "influx": _influx,
}
"""Every job, in the order a full run measures them."""
OPT_IN = frozenset(
    {
        "soak",
        "chart",
        "partitions",
        "scaleout",
        "mqtt",
        "alerts",
        "alerts-load",
        "gateway-speed",
        "influx",
    }
)
"""Jobs a run without ``--only`` leaves out: ``soak`` takes long and needs PostgreSQL and
Redis, ``chart`` needs Debian's chromium and Playwright, ``partitions`` loads 100 M readings
twice (about 1.5 GB of PostgreSQL), ``scaleout`` starts the services twice over and loads
both cores, ``mqtt`` needs Mosquitto, ``alerts`` starts auth and analytics to time webhooks
(``alerts-load`` the whole suite with the soak's ingest load beside),
``gateway-speed`` loads the gateway and a bare app in turn, ``influx`` needs Debian's
influxdb and loads 5 M readings into each of three systems twice over."""


def main() -> int:
    """Measure, print and write the figures; answers the exit status."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only", action="append", choices=list(JOBS), metavar="JOB", help="run only this job"
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="measuring window per ingest figure (10)"
    )
    parser.add_argument(
        "--soak-seconds",
        type=float,
        default=600.0,
        # With analytics keeping up, telemetry also merges chunks all along; its caches
        # fill for about seven minutes, so a shorter soak cannot tell them from a leak.
        help="length of the memory soak (600)",
    )
    parser.add_argument(
        "--nab-dev",
        type=Path,
        default=None,
        help=f"the nab-dev dataset (${nab_bench.ENVIRONMENT}, else shared/datasets/nab-dev "
        "found above the checkout)",
    )
    defaults = suite_soak.SoakOptions()
    parser.add_argument(
        "--soak-devices", type=int, default=defaults.devices, help="soak: simulated devices (200)"
    )
    parser.add_argument(
        "--soak-minutes", type=float, default=defaults.minutes, help="soak: minutes of load (10)"
    )
    parser.add_argument(
        "--soak-rate-hz", type=float, default=defaults.rate_hz, help="soak: readings/s a device"
    )
    parser.add_argument(
        "--soak-batch-ms", type=int, default=defaults.batch_ms, help="soak: ms between batches"
    )
    parser.add_argument(
        "--soak-drain-seconds",
        type=float,
        default=defaults.drain_seconds,
        help="soak: longest wait for the counts to agree after the load (300)",
    )
    parser.add_argument(
        "--soak-database-url",
        default=defaults.database_url,
        help="soak: PostgreSQL server to make the run's database in ($IOT_TEST_DATABASE_URL)",
    )
    parser.add_argument(
        "--soak-redis-url",
        default=defaults.redis_url,
        help="soak: Redis for every service ($IOT_TEST_REDIS_URL)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    args = parser.parse_args()
    options = " ".join(shlex.quote(a) for a in sys.argv[1:]) or "(defaults)"
    recorded = load(OUTPUT)
    failed = []
    for name in args.only or [job for job in JOBS if job not in OPT_IN]:
        print(f"bench: {name} ...", flush=True)
        # Other work on the machine slows every figure: say how busy it was.
        busy = os.getloadavg()[0]
        try:
            job = asyncio.run(JOBS[name](args))
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        job.when = job.when or f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        job.options = options
        job.notes.append(f"load average {busy:.1f} on {os.cpu_count()} cores when the job began")
        recorded[name] = job
    jobs = {name: recorded[name] for name in JOBS if name in recorded}
    command = "make bench" + (f" BENCH_ARGS='{options}'" if sys.argv[1:] else "")
    print(render(jobs, command=command, order=ORDER, intro=INTRO))
    if not args.no_write:
        write(jobs, command=command, path=OUTPUT, order=ORDER, intro=INTRO)
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
