"""The ``iot`` command: developer entry points of the suite.

``iot up`` starts every service and the gateway on this machine (what
``make run`` does); ``iot gen`` regenerates the Python code from ``protos/``;
``iot simulate`` streams simulated devices' readings into a running suite;
``iot migrate`` applies the services' schema migrations by hand.
Each subcommand is one entry of :data:`COMMANDS`, so adding one means adding
an entry, not editing the parser.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from iotkit.config import ConfigError, load_settings
from iotsuite import admin_cli, migrate_cli


def _no_options(parser: argparse.ArgumentParser) -> None:
    """For subcommands that take no options."""


@dataclass(frozen=True, slots=True)
class Command:
    """One subcommand: its one-line help, its options and what it runs."""

    help: str
    run: Callable[[argparse.Namespace], int]
    configure: Callable[[argparse.ArgumentParser], None] = _no_options


def _configure_up(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="give up when the suite is not ready after this long (default: 60)",
    )
    parser.add_argument(
        "--replicas",
        type=_replica_counts,
        default={},
        metavar="SERVICE=N,...",
        help="run N processes of a service, e.g. telemetry=2,analytics=2 (needs PostgreSQL); "
        "replica n listens on the service's port + 10 x (n - 1)",
    )


def _replica_counts(text: str) -> dict[str, int]:
    from iotsuite.replicas import parse_replicas

    return parse_replicas(text)


def _up(args: argparse.Namespace) -> int:
    # Imported here so that `iot gen` works before the suite's dependencies
    # are importable, and `iot --help` stays fast.
    from gateway.settings import GatewaySettings
    from iotsuite import mosquitto
    from iotsuite.launcher import port_problem, run_suite, with_metrics_defaults
    from iotsuite.replicas import ReplicaError, plan
    from services.analytics.settings import AnalyticsSettings
    from services.auth.settings import AuthSettings
    from services.chat.settings import ChatSettings
    from services.telemetry.settings import TelemetrySettings

    env = with_metrics_defaults(os.environ)
    try:
        # The children read these (each its own); refused here, a bad value stops
        # `iot up` with one line before anything starts.
        for own in (
            AuthSettings,
            TelemetrySettings,
            ChatSettings,
            GatewaySettings,
            AnalyticsSettings,
        ):
            own.load(env)
        settings = load_settings(env)
        plan(settings, args.replicas)
    except (ConfigError, ReplicaError) as exc:
        print(f"iot: configuration error: {exc}", file=sys.stderr)
        return 2
    # The data directory holds the password hashes (auth.db), the broker's and every user's
    # data: only its owner may enter it, and what is made in it is the owner's alone.
    os.umask(0o077)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.data_dir.chmod(0o700)
    try:
        # A broker of the suite's own when none is named and mosquitto is installed.
        broker, mqtt_line = mosquitto.for_suite(
            mqtt_url=settings.mqtt_url,
            data_dir=settings.data_dir,
            port=settings.mqtt_port,
            port_problem=port_problem,
            port_chosen="mqtt_port" in settings.model_fields_set,
        )
    except mosquitto.BrokerError as exc:
        print(f"iot: {exc}", file=sys.stderr)
        return 1
    # Every child learns where the broker is; only devices, its administrator, the password.
    service_env = {}
    if broker is not None:
        env["IOT_MQTT_URL"] = broker.display
        service_env["devices"] = {"IOT_MQTT_URL": broker.url}
    try:
        return asyncio.run(
            run_suite(
                settings,
                env=env,
                ready_timeout=args.ready_timeout,
                replicas=args.replicas,
                notes=[mqtt_line],
                service_env=service_env,
            )
        )
    except KeyboardInterrupt:
        # Only reachable before the launcher installs its own signal handling.
        return 130
    finally:
        if broker is not None:
            mosquitto.stop(broker.process)


def _gen(args: argparse.Namespace) -> int:
    from tools.gen_protos import OUT_DIR, generate

    protos = generate()
    print(f"generated Python code for {len(protos)} protos into {OUT_DIR / 'iot'}")
    return 0


def _configure_simulate(parser: argparse.ArgumentParser) -> None:
    # No import of tools.simulate here: it needs the generated code, which `iot gen` makes.
    parser.add_argument("--devices", type=int, default=3, metavar="N", help="devices (default: 3)")
    parser.add_argument(
        "--rate",
        type=float,
        default=10.0,
        metavar="HZ",
        help="readings per second per device (default: 10)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=60.0,
        metavar="S",
        help="how long to stream (default: 60; 0 runs until Ctrl-C)",
    )
    parser.add_argument(
        "--batch-ms",
        type=int,
        default=100,
        metavar="MS",
        help="send a batch every MS milliseconds (default: 100)",
    )
    parser.add_argument(
        "--email",
        help="account to use, registered on first use (default: a new account; its "
        "email and password are printed at start)",
    )
    parser.add_argument("--password", help="its password (default: generated and printed at start)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the signals (default: 1)")
    parser.add_argument(
        "--protocol",
        choices=("grpc", "mqtt"),
        default="grpc",
        help="how the devices send: a gRPC stream each (default), or MQTT to the broker of "
        "IOT_MQTT_URL or the one iot up started (127.0.0.1:IOT_MQTT_PORT)",
    )
    parser.add_argument(
        "--no-anomalies",
        action="store_true",
        help="no spikes, dips, jumps, gaps or stuck sensor",
    )


def _simulate(args: argparse.Namespace) -> int:
    from tools import simulate

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"iot: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.devices < 1 or args.rate <= 0 or args.batch_ms < 1 or args.seconds < 0:
        print(
            "iot simulate: --devices, --rate and --batch-ms must be positive, "
            "--seconds not negative",
            file=sys.stderr,
        )
        return 2
    options = simulate.Options(
        devices=args.devices,
        rate_hz=args.rate,
        seconds=args.seconds,
        batch_ms=args.batch_ms,
        email=args.email,
        password=args.password,
        seed=args.seed,
        anomalies=not args.no_anomalies,
        protocol=args.protocol,
    )
    return simulate.main(settings, options)


COMMANDS: dict[str, Command] = {
    "up": Command(
        help="start the five services and the gateway here, until Ctrl-C",
        run=_up,
        configure=_configure_up,
    ),
    "gen": Command(help="regenerate the Python gRPC code from protos/", run=_gen),
    "simulate": Command(
        help="stream realistic readings from simulated devices into a running suite",
        run=_simulate,
        configure=_configure_simulate,
    ),
    "admin": Command(help=admin_cli.HELP, run=admin_cli.run, configure=admin_cli.configure),
    "migrate": Command(help=migrate_cli.HELP, run=migrate_cli.run, configure=migrate_cli.configure),
}
"""Every subcommand of ``iot``, by name."""


def build_parser() -> argparse.ArgumentParser:
    """The ``iot`` argument parser with one subparser per entry of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="iot",
        description="iotsuite developer commands. Settings come from IOT_* environment variables.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        sub = subparsers.add_parser(name, help=command.help, description=command.help)
        command.configure(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``iot`` console script; answers the exit status."""
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
