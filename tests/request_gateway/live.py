"""`request-gateway serve` as operators run it: a real server with its worker processes, in a
process group of its own, and users synced into it through the gateway's own link code."""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx
import redis
from prometheus_client import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from airlink.records import ProfileType
from request_gateway.runtime import open_runtime, prepare_database
from request_gateway.settings import PREFIX, GatewaySettings
from servicekit.metrics import MULTIPROCESS_ENV
from servicekit.testing import MakeDatabase, free_port
from tests.request_gateway.conftest import PASSWORD, FakeProcessor, profile_type, user_record

CLI: Final = str(Path(sys.executable).with_name("request-gateway"))
JWT_SECRET: Final = "live-server-test-secret-" + "z" * 32
START_TIMEOUT_S: Final = 60.0
# A stop takes about 2 s (granian's workers, the feed's drain); on a machine as loaded as a
# full test run beside a benchmark it took over 10 s. The bound catches a hang, not slowness.
STOP_TIMEOUT_S: Final = 30.0


def gateway_environment(**settings: str) -> dict[str, str]:
    """This process's environment without any gateway setting, plus `settings` (GATEWAY_*)."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(PREFIX) and name != MULTIPROCESS_ENV
    }
    return {**inherited, **settings}


@dataclass(frozen=True)
class Member:
    """A user synced into the live gateway, signed in."""

    id: uuid.UUID
    username: str
    access_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@dataclass
class LiveGateway:
    """A running `request-gateway serve`, and how the test reaches and feeds it."""

    settings: GatewaySettings
    """What the server was started with (its data folder, database, Redis, secret)."""
    processor: FakeProcessor
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    ops_url: str
    """The operations port: /health and /metrics."""
    verify: ssl.SSLContext | bool = True
    """What clients check the users' port's certificate against (HTTPS)."""

    async def member(
        self, roles: Sequence[str] = ("user",), profile: ProfileType | None = None
    ) -> Member:
        """Sync a user (and their profile type) into the server's database, then log in."""
        profile = profile or profile_type()
        username = f"live{uuid.uuid4().hex[:10]}"
        record = await user_record(username, roles=roles, profile=profile.name)
        self.processor.send([profile, record])
        async with open_runtime(self.settings, listen=False) as runtime:
            report = await runtime.link.import_once()
        assert [batch.outcome for batch in report.batches] == ["applied"], report
        async with httpx.AsyncClient(base_url=self.url, timeout=30, verify=self.verify) as client:
            response = await client.post(
                "/api/v1/auth/login", json={"username": username, "password": PASSWORD}
            )
        assert response.status_code == 200, response.text
        return Member(record.id, username, response.json()["access_token"])

    def stop(self) -> int:
        """SIGTERM to the whole group; its exit code (a failure with its log if it hangs)."""
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the server outlived SIGTERM by {STOP_TIMEOUT_S:.0f} s; its log ends:\n"
                + self.output()
            ) from None

    def output(self) -> str:
        """The end of the server's log, for failure messages."""
        return self.log.read_text(errors="replace")[-4000:]


def live_settings(data_dir: Path, database_url: str, redis_url: str) -> GatewaySettings:
    """Settings for a live server and for the test's own runtime on the same data; Redis is
    emptied first (login limits of earlier tests count against 127.0.0.1 too)."""
    client = redis.Redis.from_url(redis_url)
    try:
        client.flushdb()
    finally:
        client.close()
    return GatewaySettings(
        data_dir=data_dir,
        database_url=database_url,
        redis_url=redis_url,
        jwt_secret=JWT_SECRET,
        log_format="json",
        # On a busy machine a worker's event loop can miss the default 250 ms for a rate
        # check; with `closed`, a check that fails anyway shows as a 503, never as a 202.
        rate_limit_on_redis_error="closed",
        rate_limit_timeout_s=10.0,
        # Small, so that a test can hold more idle-body connections than the limit.
        body_timeout_s=2.0,
        # Above the 60 connections the rate-limit test keeps alive, even if one worker
        # accepts them all: granian's backpressure counts idle keep-alive connections too.
        max_connections=96,
    )


def live_gateway(
    make_database: MakeDatabase, redis_url: str, data_dir: Path, *, workers: int = 2
) -> Iterator[LiveGateway]:
    """A module's live server on a fresh migrated database; it must stop cleanly (exit 0)."""
    database_url = make_database(prepare_database, key="request-gateway")
    with serve(live_settings(data_dir, database_url, redis_url), workers=workers) as gateway:
        yield gateway
        assert gateway.stop() == 0, gateway.output()


@contextlib.contextmanager
def serve(
    settings: GatewaySettings,
    *,
    workers: int = 2,
    url_files: bool = False,
    scheme: str = "http",
    verify: ssl.SSLContext | bool = True,
    **extra: str,
) -> Iterator[LiveGateway]:
    """Start `request-gateway serve` for `settings` (and `extra` GATEWAY_* variables); kill
    its group whatever happens.

    The fake processor's public key is placed first: the server reads its peer keys at start.
    With `url_files`, the database and Redis URLs are given as secret files (`*_URL_FILE`,
    as the compose files do) instead of variables.
    """
    processor = FakeProcessor(settings)
    port, ops_port = free_port(), free_port()
    environment = gateway_environment(
        GATEWAY_WORKERS=str(workers),
        GATEWAY_PORT=str(port),
        GATEWAY_OPS_PORT=str(ops_port),
        GATEWAY_DATA_DIR=str(settings.data_dir),
        GATEWAY_DATABASE_URL=str(settings.database_url),
        GATEWAY_REDIS_URL=str(settings.redis_url),
        GATEWAY_JWT_SECRET=settings.jwt_secret,
        GATEWAY_LOG_FORMAT="json",
        GATEWAY_RATE_LIMIT_ON_REDIS_ERROR=settings.rate_limit_on_redis_error,
        GATEWAY_RATE_LIMIT_TIMEOUT_S=str(settings.rate_limit_timeout_s),
        GATEWAY_BODY_TIMEOUT_S=str(settings.body_timeout_s),
        GATEWAY_MAX_CONNECTIONS=str(settings.max_connections),
        **extra,
    )
    if url_files:
        for name in ("GATEWAY_DATABASE_URL", "GATEWAY_REDIS_URL"):
            secret = settings.data_dir / f"{name.lower()}.txt"
            secret.write_text(environment.pop(name) + "\n")
            secret.chmod(0o600)
            environment[f"{name}_FILE"] = str(secret)
    log = settings.data_dir / "server.log"
    with log.open("ab") as output:
        process = subprocess.Popen(
            [CLI, "serve"], env=environment, stdout=output, stderr=output, process_group=0
        )
    live = LiveGateway(
        settings,
        processor,
        f"{scheme}://127.0.0.1:{port}",
        process,
        log,
        f"http://127.0.0.1:{ops_port}",
        verify,
    )
    try:
        _wait_until_live(live, verify)
        yield live
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_until_live(live: LiveGateway, verify: ssl.SSLContext | bool) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert live.process.poll() is None, f"the server exited:\n{live.output()}"
        with contextlib.suppress(httpx.TransportError):
            # The operations port opens first: the users' port says when the workers are up.
            ops = httpx.get(f"{live.ops_url}/health", timeout=1)
            users = httpx.get(f"{live.url}/health/live", timeout=1, verify=verify)
            if ops.status_code == users.status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"the server never answered /health and /health/live:\n{live.output()}")


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(body: str) -> Samples:
    """Every sample of a Prometheus text page: (name, sorted labels) -> value."""
    return _by_labels(text_string_to_metric_families(body))


def labelled(found: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(
        value
        for (sample, sample_labels), value in found.items()
        if sample == name and wanted <= set(sample_labels)
    )


def per_process(metrics_dir: Path, name: str, **labels: str) -> dict[int, float]:
    """`name`'s count (samples including `labels`) in each server process's own metrics file."""
    counts = {}
    for path in metrics_dir.glob("counter_*.db"):
        families = MultiProcessCollector.merge([str(path)])  # type: ignore[no-untyped-call]
        pid = int(path.stem.removeprefix("counter_"))
        counts[pid] = labelled(_by_labels(families), name, **labels)
    return counts


def _by_labels(families: Iterable[Metric]) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families
        for sample in family.samples
    }
