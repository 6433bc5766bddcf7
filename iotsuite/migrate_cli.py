"""``iot migrate``: each service's schema migrations, by hand.

``iot migrate`` brings every service's database to the head of its history
(what each service does as it starts); ``--service NAME`` only that one;
``--to REV`` a given revision instead, older ones included (a downgrade, which
the revisions' ``downgrade`` functions make without losing the data they
moved). ``iot migrate --status`` lists each service's database revision and
the code's head, changing nothing. The databases are found from the same
``IOT_*`` settings as the services.

Only ``argparse`` is imported at first, so that ``iot --help`` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from iotkit.config import Settings
    from iotkit.migrations import History, Outcome

HELP = "apply each service's schema migrations (--status: where each database is)"


def configure(parser: argparse.ArgumentParser) -> None:
    """The options of ``iot migrate``."""
    from iotkit.config import SERVICES

    parser.add_argument(
        "--service", choices=SERVICES, help="only this service (default: every one)"
    )
    parser.add_argument(
        "--to",
        default="head",
        metavar="REV",
        help="the revision to reach, older ones included (default: head); needs --service",
    )
    parser.add_argument(
        "--status",
        action="store_true",
        help="show each database's revision and the code's head; change nothing",
    )


def history(service: str) -> History:
    """``service``'s migration history (its wiring module declares it)."""
    wiring = import_module(f"services.{service}.wiring")
    found: History = wiring.MIGRATIONS
    return found


async def status(settings: Settings, service: str, *, schema: str | None = None) -> str | None:
    """The revision ``service``'s database is at (None: empty, or made before migrations)."""
    # A bare MetaData creates nothing: opening only connects (and makes the schema).
    from sqlalchemy import MetaData

    from iotkit.db import open_database
    from iotkit.migrations import current

    database = await open_database(
        service=service, settings=settings, tables=MetaData(), schema=schema
    )
    try:
        async with database.engine.connect() as connection:
            return await connection.run_sync(lambda sync: current(sync, schema=database.schema))
    finally:
        await database.close()


async def migrate(
    settings: Settings, service: str, *, target: str = "head", schema: str | None = None
) -> Outcome:
    """Bring ``service``'s database to ``target``; answers what was done."""
    from sqlalchemy import MetaData

    from iotkit.db import open_database
    from iotkit.migrations import upgrade

    found = history(service)
    database = await open_database(
        service=service, settings=settings, tables=MetaData(), schema=schema
    )
    try:
        async with database.engine.begin() as connection:
            outcome = await connection.run_sync(
                lambda sync: upgrade(sync, found, schema=database.schema, target=target)
            )
    finally:
        await database.close()
    return outcome


def run(args: argparse.Namespace) -> int:
    """Run ``iot migrate``; answers the exit status (4 when a database is refused)."""
    from iotkit.config import SERVICES, ConfigError, load_settings
    from iotkit.db import DatabaseUnavailable
    from iotkit.migrations import MigrationRefused

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"iot: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.to != "head" and not args.service:
        print("iot migrate: --to needs --service (each has its own history)", file=sys.stderr)
        return 2
    services = [args.service] if args.service else list(SERVICES)
    try:
        for service in services:
            head = history(service).head
            if args.status:
                at = asyncio.run(status(settings, service))
                mark = "" if at == head else "  (behind: starting it migrates)"
                if at is None:
                    mark = "  (empty or made before migrations: starting it builds or adopts)"
                elif not history(service).knows(at):
                    mark = "  (unknown to this code: it refuses to start)"
                print(f"{service:<10} database {at or 'none':<8} head {head}{mark}")
                continue
            done = asyncio.run(migrate(settings, service, target=args.to))
            change = "already at" if done.before == done.after else f"{done.before or 'empty'} ->"
            adopted = f" (adopted: stamped {done.before} first)" if done.adopted else ""
            print(f"{service:<10} {change} {done.after}{adopted}")
    except MigrationRefused as exc:
        print(f"iot migrate: {exc}", file=sys.stderr)
        return 4
    except DatabaseUnavailable as exc:
        print(f"iot migrate: {exc}", file=sys.stderr)
        return 3
    except ValueError as exc:
        print(f"iot migrate: {exc}", file=sys.stderr)
        return 2
    return 0
