"""`response-processor serve|worker|migrate|create-admin|backup|restore|restore-drill`.

Exit codes: 0 ok, 1 failure (details on stderr), 2 usage or configuration error; backup and
restore add 3 and 4 (servicekit.maintenance).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import asyncpg
import structlog

from response_processor.db.piccolo_app import APPS
from response_processor.domain.bootstrap import (
    CreatedAdmin,
    announce,
    create_admin,
    prepare_database,
)
from response_processor.settings import PREFIX, ProcessorSettings, load
from servicekit.embedded import resolve_service_urls
from servicekit.maintenance import (
    BACKUP_COMMANDS,
    EPILOG,
    ServiceDatabase,
    add_backup_commands,
    add_rollback_arguments,
    run_backup_command,
    run_rollback,
    run_service_command,
)

EXIT_OK: Final = 0

log = structlog.get_logger("response_processor")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="response-processor",
        description="Airlock's response processor (settings: PROCESSOR_* variables).",
        epilog=f"Exit codes: 0 ok, 1 failure, 2 usage or configuration error; {EPILOG}",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("serve", help="the admin HTTP API (port 8001 by default)")
    commands.add_parser("worker", help="run requests (arq), the link, reconciliation, retention")
    migrate = commands.add_parser(
        "migrate", help="apply migrations, seed profile types, make the admin (or --back-to)"
    )
    add_rollback_arguments(migrate, default_app="processor")
    admin = commands.add_parser("create-admin", help="add an admin who must change password")
    admin.add_argument("--username", required=True)
    admin.add_argument("--password-file", type=Path, help="default: generate and print one")
    add_backup_commands(commands)
    args = parser.parse_args(argv)
    return run_service_command(
        args, service="response-processor", load=load, dispatch=_dispatch, prefix=PREFIX
    )


def _dispatch(args: argparse.Namespace, settings: ProcessorSettings) -> int:
    database = ServiceDatabase(settings.database_url, settings.data_dir, "processor", APPS)
    if args.command in BACKUP_COMMANDS:
        return run_backup_command(args, database)
    if args.command == "migrate" and args.back_to:
        return run_rollback(args, APPS, database)
    if args.command == "serve":
        from response_processor.server import serve

        asyncio.run(serve(settings))
    elif args.command == "worker":
        from response_processor.worker import run_worker

        asyncio.run(run_worker(settings))
    elif args.command == "migrate":
        asyncio.run(_migrate(settings))
    else:
        announce(asyncio.run(_create_admin(settings, args.username, args.password_file)))
    return EXIT_OK


async def _migrate(settings: ProcessorSettings) -> None:
    services = resolve_service_urls(
        settings.database_url, settings.redis_url, settings.data_dir, database="processor"
    )
    try:
        created = await prepare_database(services.database_url, settings)
        if created is not None:
            announce(created)
    finally:
        services.stop()


async def _create_admin(
    settings: ProcessorSettings, username: str, password_file: Path | None
) -> CreatedAdmin:
    services = resolve_service_urls(
        settings.database_url, settings.redis_url, settings.data_dir, database="processor"
    )
    try:
        connection = await asyncpg.connect(services.database_url)
        try:
            return await create_admin(connection, username, password_file)
        finally:
            await connection.close()
    finally:
        services.stop()


if __name__ == "__main__":
    sys.exit(main())
