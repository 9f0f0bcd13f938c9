"""pytest plugin (entry point ``servicekit``): real PostgreSQL and Redis for every test suite.

Fixtures:

- ``postgres_server_url`` (session): an admin URL; ``AIRLOCK_TEST_DATABASE_URL`` when set,
  else an embedded server under a short temporary folder, stopped at the end of the session;
- ``redis_server_url`` (session): likewise with ``AIRLOCK_TEST_REDIS_URL``;
- ``postgres_database`` (per test) and ``postgres_module_database`` (per module): factories
  ``make(setup=None, *, key=None) -> url`` giving a fresh database cloned from a template.
  The template for a key is built once per session by running ``await setup(url)`` in it
  (migrations, fixtures); cloning it is a cheap ``CREATE DATABASE ... TEMPLATE``. Databases
  are dropped when their test or module ends;
- ``redis_url`` (per test): the Redis URL with its logical database flushed first;
- ``unreachable_redis`` (per test): a redis-py asyncio client whose server is gone (nothing
  listens on its socket); ``silent_redis``: one whose server accepts connections and never
  answers (a hung Redis).

Helpers: ``await table_contents(connection)`` for tests that must find every row again
(backups, migrations); ``imported_modules(path)`` for tests of what a module may import;
and the one way tests poll for something to happen: ``wait_until(check, what=...)``
(sync) and ``await eventually(check, what=...)`` (async), each returning the first truthy
value of ``check()`` or failing with ``what`` after a timeout.

This module loads in every pytest run, so it imports nothing heavy until a fixture runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pytest

__all__ = [
    "DATABASE_URL_ENV",
    "REDIS_URL_ENV",
    "DatabaseFactory",
    "MakeDatabase",
    "TemplateSetup",
    "eventually",
    "explain",
    "free_port",
    "free_ports",
    "imported_modules",
    "table_contents",
    "wait_until",
]

DATABASE_URL_ENV: Final = "AIRLOCK_TEST_DATABASE_URL"
REDIS_URL_ENV: Final = "AIRLOCK_TEST_REDIS_URL"

TemplateSetup = Callable[[str], Awaitable[None]]
"""Prepares a template database, given its URL (runs migrations, loads fixtures)."""

T = TypeVar("T")


class MakeDatabase(Protocol):
    """The factory the ``postgres_database`` fixtures give: returns a fresh database's URL."""

    def __call__(self, setup: TemplateSetup | None = None, *, key: str | None = None) -> str:
        """Create a database cloned from the template for ``key`` (built by ``setup``)."""
        ...


def _run_async(function: Callable[[], Awaitable[T]]) -> T:
    """Run an async function to completion from sync code, even inside a running loop."""

    async def main() -> T:
        return await function()

    # A private loop in a worker thread: the caller may be an async fixture whose loop is
    # running, where asyncio.run would refuse.
    with ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(asyncio.run, main()).result()


async def table_contents(
    connection: Any, *, exclude: Collection[str] = ("migration",)
) -> dict[str, list[dict[str, object]]]:
    """Every row of every table in the ``public`` schema, by table, in a stable order.

    ``connection`` is an asyncpg connection. Rows are dicts of column values, sorted by
    their text form, so two databases holding the same data compare equal.
    """
    tables = await connection.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
    )
    contents: dict[str, list[dict[str, object]]] = {}
    for (table,) in tables:
        if table in exclude:
            continue
        # Names come from the catalogue; quote_ident keeps odd ones valid.
        quoted = await connection.fetchval("SELECT quote_ident($1)", table)
        rows = await connection.fetch(f"SELECT * FROM {quoted} AS t ORDER BY t::text")  # noqa: S608
        contents[table] = [dict(row) for row in rows]
    return contents


def imported_modules(path: Path) -> set[str]:
    """Every module a Python source file imports by absolute name (``a.b`` for ``from a.b``)."""
    import ast

    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


async def explain(conn: Any, query: str, *args: Any) -> str:
    """PostgreSQL's plan for ``query`` with ``args`` (EXPLAIN, not run), one text."""
    return "\n".join(row[0] for row in await conn.fetch("EXPLAIN " + query, *args))


def need_tool(command: str, package: str) -> str:
    """The path of `command`; fails the test (never skips) naming the Debian package to install.

    `.ci/run` installs every tool the tests drive, so a missing one is a machine to fix.
    """
    path = shutil.which(command)
    assert path, f"{command} is missing: apt-get install {package} (.ci/run installs it)"
    return path


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that nothing listens on right now.

    Bound together before any is released: ports asked for one at a time can come back
    equal (the kernel hands a just-released port out again).
    """
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def free_port() -> int:
    """One TCP port nothing listens on right now (several at once: `free_ports`)."""
    return free_ports(1)[0]


def wait_until(
    check: Callable[[], T | None], *, what: str, timeout_s: float = 15.0, interval_s: float = 0.05
) -> T:
    """The first truthy value of ``check()``, polled; fails naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)
    return value


async def eventually(
    check: Callable[[], Awaitable[T | None]],
    *,
    what: str = "the condition",
    timeout_s: float = 15.0,
    interval_s: float = 0.02,
) -> T:
    """``wait_until`` for an async ``check``, sleeping on the event loop between tries."""
    deadline = time.monotonic() + timeout_s
    while not (value := await check()):
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(interval_s)
    return value


def _database_url(server_url: str, database: str) -> str:
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{database}"))


def _identifier(*parts: str) -> str:
    """A PostgreSQL database name (at most 63 bytes) unique to ``parts``."""
    readable = re.sub(r"[^a-z0-9]+", "_", "_".join(parts).lower()).strip("_")[:40]
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]
    return f"{readable}_{digest}"


class DatabaseFactory:
    """Creates databases on one server from per-key templates, and drops them again."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        # Distinct names per session, so concurrent runs can share an external server.
        self._session = uuid.uuid4().hex[:8]
        self._templates: dict[str, str] = {}
        self._count = 0
        self._clone_strategy: str | None = None

    def create(self, setup: TemplateSetup | None = None, *, key: str | None = None) -> str:
        """Return the URL of a new database cloned from the template for ``key``."""
        template = self._template(setup, key or _default_key(setup))
        self._count += 1
        name = _identifier("sk", self._session, str(self._count))
        statement = f'CREATE DATABASE "{name}" TEMPLATE "{template}"{self._strategy()}'
        _run_async(partial(self._execute, statement))
        return _database_url(self.server_url, name)

    def drop(self, url: str) -> None:
        """Drop the database of ``url``, closing any connection a test left open."""
        self._drop(urlsplit(url).path.lstrip("/"))

    def close(self) -> None:
        """Drop every template this factory built."""
        for template in self._templates.values():
            self._drop(template)
        self._templates.clear()

    def _drop(self, name: str) -> None:
        # FORCE: a test that forgot to close its pool must not make the drop fail.
        _run_async(partial(self._execute, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def _strategy(self) -> str:
        """Clone by copying files where the server can (PostgreSQL 15+): faster for small DBs."""
        if self._clone_strategy is None:
            version = _run_async(partial(self._fetch, "SHOW server_version_num"))
            self._clone_strategy = " STRATEGY FILE_COPY" if int(str(version)) >= 150000 else ""
        return self._clone_strategy

    def _template(self, setup: TemplateSetup | None, key: str) -> str:
        if key in self._templates:
            return self._templates[key]
        name = _identifier("sk_tmpl", self._session, key)
        _run_async(partial(self._execute, f'CREATE DATABASE "{name}"'))
        try:
            if setup is not None:
                _run_async(partial(setup, _database_url(self.server_url, name)))
            _run_async(partial(self._seal, name))
        except BaseException:
            self._drop(name)
            raise
        self._templates[key] = name
        return name

    async def _execute(self, statement: str, *args: object) -> None:
        # Database names come from _identifier only, so quoting them into DDL is safe (DDL
        # takes no bind parameters).
        import asyncpg

        connection = await asyncpg.connect(self.server_url, timeout=30)
        try:
            await connection.execute(statement, *args)
        finally:
            await connection.close()

    async def _fetch(self, query: str) -> object:
        import asyncpg

        connection = await asyncpg.connect(self.server_url, timeout=30)
        try:
            return await connection.fetchval(query)
        finally:
            await connection.close()

    async def _seal(self, name: str) -> None:
        """Make the template cloneable: no connection may be open on it, now or later."""
        await self._execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        await self._execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )


def _default_key(setup: TemplateSetup | None) -> str:
    """Name a template after its setup function; the line number tells lambdas apart."""
    if setup is None:
        return "empty"
    code = getattr(setup, "__code__", None)
    line = f":{code.co_firstlineno}" if code is not None else ""
    name = getattr(setup, "__qualname__", repr(setup))
    return f"{getattr(setup, '__module__', '')}.{name}{line}"


async def _trade_durability_for_speed(url: str) -> None:
    """Turn off fsync on the throwaway test server: creating databases gets ~10x faster."""
    import asyncpg

    connection = await asyncpg.connect(url, timeout=30)
    try:
        for setting in ("fsync", "full_page_writes", "synchronous_commit"):
            await connection.execute(f"ALTER SYSTEM SET {setting} = off")
        await connection.execute("SELECT pg_reload_conf()")
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def servicekit_data_dir() -> Iterator[Path]:
    """A short temporary folder for the embedded servers (unix socket paths must stay short)."""
    path = Path(tempfile.mkdtemp(prefix="sk-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server_url(servicekit_data_dir: Path) -> Iterator[str]:
    """Admin URL of the test PostgreSQL server (external or embedded)."""
    if external := os.environ.get(DATABASE_URL_ENV):
        yield external
        return
    from servicekit.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(servicekit_data_dir)
    try:
        url = server.start()
        _run_async(partial(_trade_durability_for_speed, url))
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server_url(servicekit_data_dir: Path) -> Iterator[str]:
    """URL of the test Redis server (external or embedded)."""
    if external := os.environ.get(REDIS_URL_ENV):
        yield external
        return
    from servicekit.embedded import EmbeddedRedis

    server = EmbeddedRedis(servicekit_data_dir)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server_url: str) -> str:
    """The test Redis URL, its logical database emptied before the test."""
    import redis

    client = redis.Redis.from_url(redis_server_url)
    try:
        client.flushdb()
    finally:
        client.close()
    return redis_server_url


@pytest.fixture(scope="session")
def database_factory(postgres_server_url: str) -> Iterator[DatabaseFactory]:
    """The session's database factory; its templates are dropped at the end."""
    factory = DatabaseFactory(postgres_server_url)
    try:
        yield factory
    finally:
        factory.close()


def _scoped_databases(factory: DatabaseFactory) -> Iterator[MakeDatabase]:
    created: list[str] = []

    def make(setup: TemplateSetup | None = None, *, key: str | None = None) -> str:
        url = factory.create(setup, key=key)
        created.append(url)
        return url

    try:
        yield make
    finally:
        for url in created:
            factory.drop(url)


@pytest.fixture
def postgres_database(database_factory: DatabaseFactory) -> Iterator[MakeDatabase]:
    """Factory of fresh databases, dropped after the test."""
    yield from _scoped_databases(database_factory)


@pytest.fixture(scope="module")
def postgres_module_database(database_factory: DatabaseFactory) -> Iterator[MakeDatabase]:
    """Factory of fresh databases, dropped after the test module."""
    yield from _scoped_databases(database_factory)


@pytest.fixture
async def unreachable_redis(tmp_path: Path) -> AsyncIterator[Any]:
    """A redis-py asyncio client whose server is gone (nothing listens on its socket)."""
    import redis.asyncio

    client = redis.asyncio.Redis(unix_socket_path=str(tmp_path / "gone.sock"))
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def silent_redis() -> AsyncIterator[Any]:
    """A redis-py asyncio client whose server accepts connections and then never answers."""
    import redis.asyncio

    connections: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = redis.asyncio.Redis(host="127.0.0.1", port=port)
    try:
        yield client
    finally:
        await client.aclose()
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()
