"""Expand/contract, checked: the previous release's SQL still runs after every later migration.

The rule (docs/operations.md, "Upgrades without downtime"): during a rolling upgrade the
previous release's processes run against the new release's schema, so a release's migrations
only add (expand); what the previous release still uses is removed one release later
(contract), once no process runs the code that used it.

A release's file, `tests/<service>/released_queries.json`, freezes what that release shipped:
the last migration of each Piccolo app, and every SQL statement its code holds as a
module-level `*_SQL` constant. `check_release`:

1. migrates a fresh database to the release's schema, and prepares every statement there
   (PostgreSQL parses and plans it against the schema: tables, columns, types, functions),
   which shows that the file matches its release;
2. applies each later migration, one at a time, and prepares every statement again after
   each one. A migration that drops, renames or retypes what the release uses is named, with
   the statements it broke.

Freeze a release's file (run from the repository root, when the release is made):

    uv run python -m tests.release_queries {gateway|processor} VERSION
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import pkgutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import asyncpg

from servicekit.embedded import resolve_service_urls
from servicekit.migrations import app_migrations, migrate, migrate_to

STATEMENT_WORDS: Final = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")


@dataclass(frozen=True)
class Service:
    """One service's migrations (Piccolo apps, in `migrate` order) and the code holding its SQL."""

    apps: Sequence[str]
    packages: Sequence[str]
    file: Path


def service(name: str) -> Service:
    """The gateway's or the processor's."""
    tests = Path(__file__).parent
    if name == "gateway":
        from request_gateway.db.piccolo_app import APPS as GATEWAY_APPS

        return Service(
            GATEWAY_APPS,
            ["request_gateway", "airlink", "authkit", "servicekit"],
            tests / "request_gateway" / "released_queries.json",
        )
    from response_processor.db.piccolo_app import APPS as PROCESSOR_APPS

    return Service(
        PROCESSOR_APPS,
        ["response_processor", "airlink", "authkit", "servicekit"],
        tests / "response_processor" / "released_queries.json",
    )


@dataclass(frozen=True)
class Release:
    """A release as its file froze it."""

    version: str
    migrations: dict[str, str]  # Piccolo app name → the release's last migration id
    queries: dict[str, str]  # "module.NAME" → statement


def load_release(path: Path) -> Release:
    """A frozen release file."""
    document = json.loads(path.read_text(encoding="utf-8"))
    return Release(document["release"], document["migrations"], document["queries"])


def collect_queries(packages: Sequence[str]) -> dict[str, str]:
    """Every module-level `*_SQL` statement of the packages (each text once, by first name)."""
    found: dict[str, str] = {}
    seen: set[str] = set()
    for module in _modules(packages):
        for name, value in sorted(vars(module).items()):
            if not (name.endswith("_SQL") and isinstance(value, str)):
                continue
            words = value.split(None, 1)
            if not words or words[0].upper() not in STATEMENT_WORDS or value in seen:
                continue
            seen.add(value)
            found[f"{module.__name__}.{name}"] = value
    return found


def _modules(packages: Sequence[str]) -> Iterator[ModuleType]:
    for package_name in packages:
        package = importlib.import_module(package_name)
        yield package
        for info in sorted(pkgutil.walk_packages(package.__path__, f"{package_name}."),
                           key=lambda info: info.name):  # fmt: skip
            parts = info.name.split(".")
            if "migrations" in parts[1:-1] or (info.ispkg and parts[-1] == "migrations"):
                continue  # Piccolo's migration modules: not the code's queries
            yield importlib.import_module(info.name)


async def prepare_failures(url: str, queries: dict[str, str]) -> dict[str, str]:
    """The statements PostgreSQL cannot prepare on this database, with its message."""
    connection = await asyncpg.connect(url)
    failures = {}
    try:
        for name, sql in queries.items():
            try:
                await connection.prepare(sql)
            except asyncpg.PostgresError as exc:
                failures[name] = f"{type(exc).__name__}: {exc}"
    finally:
        await connection.close()
    return failures


def later_migrations(apps: Sequence[str], release: Release) -> list[tuple[str, str]]:
    """(app, migration id) of every migration after the release's, in the order `migrate`
    runs them: app by app."""
    later = []
    for app_module in apps:
        app_name, ids = app_migrations(app_module)
        last = release.migrations.get(app_name)
        start = ids.index(last) + 1 if last is not None else 0
        later += [(app_name, migration_id) for migration_id in ids[start:]]
    return later


async def migrate_to_release(url: str, apps: Sequence[str], release: Release) -> None:
    """Bring a fresh database to the release's schema (apps it did not have stay empty)."""
    for app_module in apps:
        app_name, _ = app_migrations(app_module)
        if app_name in release.migrations:
            await migrate_to(url, apps, app_name, release.migrations[app_name])


@dataclass(frozen=True)
class CheckReport:
    """What broke: at the release itself (the file is wrong), or after a later migration."""

    at_release: dict[str, str]
    after: dict[tuple[str, str], dict[str, str]]

    @property
    def broken(self) -> bool:
        return bool(self.at_release) or any(self.after.values())


async def check_release(url: str, apps: Sequence[str], release: Release) -> CheckReport:
    """Prepare the release's statements at its schema, then after each later migration."""
    await migrate_to_release(url, apps, release)
    at_release = await prepare_failures(url, release.queries)
    after = {}
    for app_name, migration_id in later_migrations(apps, release):
        await migrate_to(url, apps, app_name, migration_id)
        after[(app_name, migration_id)] = await prepare_failures(url, release.queries)
    return CheckReport(at_release, after)


async def freeze(name: str, version: str) -> Path:
    """Write the release file of `name` for the code and migrations of this checkout."""
    chosen = service(name)
    migrations = dict(app_migrations(app_module) for app_module in chosen.apps)
    queries = collect_queries(chosen.packages)
    with tempfile.TemporaryDirectory(prefix="release-queries-") as folder:
        servers = resolve_service_urls(None, "unused://", Path(folder), database="release")
        try:
            await migrate(servers.database_url, chosen.apps)
            # Statements on a session's own temporary tables cannot be prepared cold.
            unpreparable = await prepare_failures(servers.database_url, queries)
        finally:
            servers.stop()
    document: dict[str, Any] = {
        "release": version,
        "migrations": {app: ids[-1] for app, ids in migrations.items() if ids},
        "queries": {k: v for k, v in queries.items() if k not in unpreparable},
        "not_checked": unpreparable,
    }
    chosen.file.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return chosen.file


def main(argv: Sequence[str] | None = None) -> int:
    """Freeze a release's file (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m tests.release_queries")
    parser.add_argument("service", choices=["gateway", "processor"])
    parser.add_argument("version")
    args = parser.parse_args(argv)
    path = asyncio.run(freeze(args.service, args.version))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
