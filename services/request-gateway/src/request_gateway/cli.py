"""`request-gateway serve|worker|migrate`.

Exit codes: 0 ok, 1 failure (details on stderr), 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Final

import asyncpg
import structlog

from request_gateway.runtime import embedded_services, prepare_database
from request_gateway.settings import GatewaySettings, load
from servicekit.logs import configure_logging
from servicekit.migrations import MigrationError
from servicekit.settings import SettingsError, settings_for_log

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2

log = structlog.get_logger("request_gateway")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="request-gateway",
        description="Airlock's request gateway (settings: GATEWAY_* variables).",
        epilog="Exit codes: 0 ok, 1 failure, 2 usage or configuration error.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("serve", help="the users' HTTP API (port 8000, GATEWAY_WORKERS processes)")
    commands.add_parser("worker", help="the link to the processor, and request expiry")
    commands.add_parser("migrate", help="apply the database migrations")
    args = parser.parse_args(argv)
    try:
        settings = load()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging("request-gateway", json=settings.json_logs, level=settings.log_level)
    log.info("starting", command=args.command, settings=settings_for_log(settings))
    try:
        _dispatch(args.command, settings)
    except MigrationError as exc:
        print(f"error: {exc}\n{exc.output}", file=sys.stderr)
        return EXIT_FAILED
    except (OSError, asyncpg.PostgresError) as exc:
        log.error("failed", command=args.command, error=f"{type(exc).__name__}: {exc}")
        return EXIT_FAILED
    return EXIT_OK


def _dispatch(command: str, settings: GatewaySettings) -> None:
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


if __name__ == "__main__":
    sys.exit(main())
