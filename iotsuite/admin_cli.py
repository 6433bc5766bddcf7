"""``iot admin``: administrators from the command line.

``iot admin create --email ADDRESS [--password PASSWORD]`` creates an active,
verified admin, or promotes the existing account of that address. Without
``--password`` a new account's password is asked for on the terminal (so it
stays out of the shell history); an existing account keeps its password.
It writes auth's own database, found from the same ``IOT_*`` settings as the
auth process.

Only ``argparse`` is imported at first, so that ``iot --help`` stays fast and
works before the generated code exists.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from iotkit.config import Settings
    from services.auth.admin.bootstrap import AdminOutcome

HELP = "manage administrators (iot admin create --email ADDRESS)"


def configure(parser: argparse.ArgumentParser) -> None:
    """The options of ``iot admin``."""
    actions = parser.add_subparsers(dest="admin_action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        help="create an admin, or promote an existing account",
        description="Create an active, verified admin, or promote the account of --email.",
    )
    create.add_argument("--email", required=True, help="the admin's login email")
    create.add_argument(
        "--password",
        help="the password of a new account (asked for when omitted); replaces an existing one",
    )


def _ask_password() -> str:
    if not sys.stdin.isatty():
        raise SystemExit("iot admin: a new account needs --password (no terminal to ask on)")
    first = getpass.getpass("Password for the new admin: ")
    if first != getpass.getpass("Repeat it: "):
        raise SystemExit("iot admin: the passwords differ")
    return first


async def create_admin_account(
    settings: Settings,
    *,
    email: str,
    password: str | None,
    schema: str | None = None,
    ask: Callable[[], str] = _ask_password,
) -> AdminOutcome:
    """Create or promote the admin ``email`` in auth's database."""
    from argon2 import PasswordHasher

    from services.auth.admin.bootstrap import create_admin
    from services.auth.admin.service import AdminService
    from services.auth.admin.store import AdminStore
    from services.auth.core.store import AuthStore
    from services.auth.link_tokens import LinkTokenStore
    from services.auth.passwords import Passwords
    from services.auth.security.store import SecurityLog
    from services.auth.wiring import open_auth_database

    database = await open_auth_database(settings, schema=schema)
    try:
        store = AuthStore(database.sessions)
        admins = AdminStore(database.sessions)
        if password is None and await store.user_by_email(email=email.strip().lower()) is None:
            password = ask()
        # The AdminService the gRPC API uses: a promotion ends the user's sessions there too.
        admin = AdminService(
            store=admins,
            accounts=store,
            links=LinkTokenStore(database.sessions),
            log=SecurityLog(database.sessions),
        )
        return await create_admin(
            store=store,
            admins=admins,
            passwords=Passwords(PasswordHasher()),
            admin=admin,
            email=email,
            password=password,
        )
    finally:
        await database.close()


def run(args: argparse.Namespace) -> int:
    """Run ``iot admin ACTION``; answers the exit status."""
    from iotkit.config import ConfigError, load_settings
    from iotkit.errors import ValidationFailed

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"iot: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        outcome = asyncio.run(
            create_admin_account(settings, email=args.email, password=args.password)
        )
    except ValidationFailed as exc:
        for violation in exc.violations:
            print(f"iot admin: {violation.field}: {violation.message}", file=sys.stderr)
        return 2
    print(f"{outcome.action} admin {outcome.email}")
    return 0
