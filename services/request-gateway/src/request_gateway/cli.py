"""`request-gateway serve|worker|migrate|backup|restore|restore-drill`.

Exit codes: 0 ok, 1 failure (details on stderr), 2 usage or configuration error; backup and
restore add 3 and 4 (servicekit.maintenance).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Final

import structlog

from request_gateway.db.piccolo_app import APPS
from request_gateway.runtime import embedded_services, prepare_database
from request_gateway.settings import PREFIX, GatewaySettings, load
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

log = structlog.get_logger("request_gateway")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="request-gateway",
        description="Airlock's request gateway (settings: GATEWAY_* variables).",
        epilog=f"Exit codes: 0 ok, 1 failure, 2 usage or configuration error; {EPILOG}",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("serve", help="the users' HTTP API (port 8000, GATEWAY_WORKERS processes)")
    commands.add_parser("worker", help="the link to the processor, request expiry, retention")
    migrate = commands.add_parser("migrate", help="apply the database migrations (or --back-to)")
    add_rollback_arguments(migrate, default_app="gateway")
    add_backup_commands(commands)
    args = parser.parse_args(argv)
    return run_service_command(
        args, service="request-gateway", load=load, dispatch=_dispatch, prefix=PREFIX
    )


def _dispatch(args: argparse.Namespace, settings: GatewaySettings) -> int:
    command = args.command
    database = ServiceDatabase(settings.database_url, settings.data_dir, "gateway", APPS)
    if command in BACKUP_COMMANDS:
        return run_backup_command(args, database)
    if command == "migrate" and args.back_to:
        return run_rollback(args, APPS, database)
    if command == "serve":
        from request_gateway.server import serve

        serve(settings)
    elif command == "worker":
        from request_gateway.worker import run_worker

        asyncio.run(run_worker(settings))
    else:
        services = embedded_services(settings)
        try:
            asyncio.run(prepare_database(services.database_url))
        finally:
            services.stop()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
