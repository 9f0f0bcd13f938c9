"""The whole system for end-to-end tests: `make demo`'s launcher (tests/demo/launcher.py)
with test timings, and every way into it the tests need: both APIs, both databases, the
drop zones, and the supervised processes (to pause or kill them)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import asyncpg
import httpx

from tests.demo.launcher import Launch, launch

Side = Literal["gateway", "processor"]
SIDES: Final[tuple[Side, ...]] = ("gateway", "processor")

FINAL: Final = frozenset({"completed", "failed", "cancelled", "expired"})
# Short link timings: a lost batch is sent again after RESEND_AFTER_S, which must stay
# above the heartbeat interval (acks of heartbeats ride on the peer's next heartbeat).
LINK_ENV: Final = {
    f"{prefix}_{name}": value
    for prefix in ("GATEWAY", "PROCESSOR")
    for name, value in (("HEARTBEAT_INTERVAL_S", "2"), ("RESEND_AFTER_S", "6"))
}
RESEND_AFTER_S: Final = 6.0
FINAL_TIMEOUT_S: Final = 45.0
SYNC_TIMEOUT_S: Final = 45.0
# Set to keep a stack's data folder (logs, drop zones) after the tests, for a post-mortem.
KEEP_VARIABLE: Final = "AIRLOCK_E2E_KEEP"


@contextlib.contextmanager
def running_stack(
    name: str, *, workers: tuple[int, int] = (1, 1), env: Mapping[str, str] | None = None
) -> Iterator[Stack]:
    """Start the whole system on a fresh data folder; stop it and remove the folder after."""
    # Not under pytest's temp folder: as root, PostgreSQL runs as the `pgserver` user, which
    # must traverse every folder above its data, and pytest keeps its own at mode 700.
    folder = Path(tempfile.mkdtemp(prefix=f"airlock-{name}-"))
    run = launch(
        folder / "data", folder / "launcher.out", workers=workers, env={**LINK_ENV, **(env or {})}
    )
    try:
        ready_s = run.wait_ready()
        print(f"\n{name}: the stack was ready in {ready_s:.1f} s ({folder})")
        with Stack.open(run) as stack:
            yield stack
    finally:
        run.kill_everything()
        if os.environ.get(KEEP_VARIABLE):
            print(f"{name}: data folder kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Stack:
    """A running system and an admin session on the processor."""

    run: Launch
    http: httpx.Client
    admin: dict[str, str]
    database_urls: dict[Side, str]

    @classmethod
    @contextlib.contextmanager
    def open(cls, run: Launch) -> Iterator[Stack]:
        """An admin session on the processor of a running system."""
        admin = run.credentials()["admin"]
        urls: dict[Side, str] = {
            "gateway": run.child_env("gateway-api")["GATEWAY_DATABASE_URL"],
            "processor": run.child_env("processor-api")["PROCESSOR_DATABASE_URL"],
        }
        with httpx.Client(timeout=30) as http:
            auth = login(http, run.processor, admin["username"], admin["password"])
            yield cls(run, http, auth, urls)

    # --- folders ----------------------------------------------------------------------------

    def data_dir(self, side: Side) -> Path:
        """A side's data folder (GATEWAY_DATA_DIR / PROCESSOR_DATA_DIR)."""
        return self.run.demo_dir / side

    def inbox(self, side: Side) -> Path:
        """Where the agent delivers the peer's batches to `side`."""
        return self.data_dir(side) / "inbox"

    def outbox(self, side: Side) -> Path:
        """Where `side` publishes its batches."""
        return self.data_dir(side) / "outbox"

    # --- databases --------------------------------------------------------------------------

    def query(self, side: Side, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Rows of one query on a side's database (a connection of its own)."""
        return asyncio.run(self.query_async(side, sql, *args))

    async def query_async(self, side: Side, sql: str, *args: Any) -> list[asyncpg.Record]:
        """The same, from async code."""
        connection = await asyncpg.connect(self.database_urls[side], timeout=30)
        try:
            rows: list[asyncpg.Record] = await connection.fetch(sql, *args, timeout=30)
            return rows
        finally:
            await connection.close()

    # --- the processor's admin API ----------------------------------------------------------

    def create_profile_type(self, name: str, **limits: Any) -> None:
        """A profile type allowing echo and documents.search, with generous default limits."""
        body = {
            "name": name,
            "requests_per_minute": 600,
            "burst": 100,
            "allowed_request_types": ["echo", "documents.search"],
            "max_payload_bytes": 65536,
            "max_pending_requests": 1000,
        } | limits
        response = self.http.post(
            f"{self.run.processor}/profile-types", json=body, headers=self.admin
        )
        assert response.status_code == 201, response.text

    def create_user(self, username: str, profile_type: str) -> tuple[uuid.UUID, str]:
        """A user on the processor (the authority); its id and password."""
        password = secrets.token_urlsafe(18)
        body = {
            "username": username,
            "password": password,
            "roles": ["user"],
            "profile_type": profile_type,
        }
        response = self.http.post(f"{self.run.processor}/users", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        return uuid.UUID(response.json()["id"]), password

    def patch_user(self, user_id: uuid.UUID, changes: dict[str, Any]) -> dict[str, Any]:
        """Change a user on the processor; the user as it is now."""
        response = self.http.patch(
            f"{self.run.processor}/users/{user_id}", json=changes, headers=self.admin
        )
        assert response.status_code == 200, response.text
        user: dict[str, Any] = response.json()
        return user

    def wait_synced(
        self, user_versions: Mapping[uuid.UUID, int], profile_types: Sequence[str] = ()
    ) -> None:
        """Until the gateway's database holds these users (at least at these versions) and
        profile types. Signing in before that would count as a failed login."""
        deadline = time.monotonic() + SYNC_TIMEOUT_S
        while time.monotonic() < deadline:
            users = self.query(
                "gateway",
                "SELECT id, version FROM app_user WHERE id = ANY($1)",
                list(user_versions),
            )
            names = self.query(
                "gateway", "SELECT name FROM profile_type WHERE name = ANY($1)", list(profile_types)
            )
            synced = {row["id"] for row in users if row["version"] >= user_versions[row["id"]]}
            if synced == set(user_versions) and len(names) == len(profile_types):
                return
            time.sleep(0.2)
        raise AssertionError(f"not synced to the gateway within {SYNC_TIMEOUT_S:.0f} s")

    # --- the gateway's users' API -----------------------------------------------------------

    def login(self, username: str, password: str) -> dict[str, str]:
        """A bearer header for a user of the gateway."""
        return login(self.http, self.run.gateway, username, password)

    def submit(
        self,
        auth: Mapping[str, str],
        kind: str,
        payload: Any,
        *,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        """POST /requests as it answers."""
        headers = dict(auth) | ({"Idempotency-Key": idempotency_key} if idempotency_key else {})
        return self.http.post(
            f"{self.run.gateway}/requests", json={"type": kind, "payload": payload}, headers=headers
        )

    def submitted(self, auth: Mapping[str, str], kind: str, payload: Any) -> uuid.UUID:
        """Submit, expecting 202; the request's id."""
        response = self.submit(auth, kind, payload)
        assert response.status_code == 202, response.text
        return uuid.UUID(response.json()["id"])

    def request(self, auth: Mapping[str, str], request_id: uuid.UUID) -> dict[str, Any]:
        """GET /requests/{id}."""
        response = self.http.get(f"{self.run.gateway}/requests/{request_id}", headers=auth)
        assert response.status_code == 200, response.text
        request: dict[str, Any] = response.json()
        return request

    def wait_status(
        self,
        auth: Mapping[str, str],
        request_id: uuid.UUID,
        statuses: frozenset[str] = FINAL,
        timeout_s: float = FINAL_TIMEOUT_S,
    ) -> dict[str, Any]:
        """Until the request has one of `statuses` (by default: a final one)."""
        deadline = time.monotonic() + timeout_s
        while True:
            request = self.request(auth, request_id)
            if request["status"] in statuses:
                return request
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"request {request_id} still {request['status']} after {timeout_s:.0f} s"
                )
            time.sleep(0.2)

    def processor_request(self, request_id: uuid.UUID) -> httpx.Response:
        """The processor's view of a request (GET /api/v1/requests/{id}, as the admin)."""
        return self.http.get(f"{self.run.processor}/requests/{request_id}", headers=self.admin)

    # --- processes --------------------------------------------------------------------------

    @contextlib.contextmanager
    def paused(self, name: str, *, idle_side: Side | None = None) -> Iterator[None]:
        """Freeze a supervised process's group (SIGSTOP) for the block, then let it go on.

        With `idle_side`, freeze it only at a moment when no transaction is open on that
        side's database, so that the frozen process holds no row lock the test would wait on.
        """
        pgid = self.run.child_pids()[name]
        for _ in range(200):
            os.killpg(pgid, signal.SIGSTOP)
            if idle_side is None or not self.query(idle_side, OPEN_TRANSACTIONS_SQL):
                break
            os.killpg(pgid, signal.SIGCONT)
            time.sleep(0.02)
        else:
            raise AssertionError(f"{name} never left its transaction")
        try:
            yield
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGCONT)


# Other sessions in a transaction (ours is the one asking).
OPEN_TRANSACTIONS_SQL: Final = """
    SELECT pid FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid()
      AND backend_type = 'client backend' AND xact_start IS NOT NULL
"""


def login(client: httpx.Client, api: str, username: str, password: str) -> dict[str, str]:
    """Sign in on one of the APIs; the bearer header."""
    response = client.post(f"{api}/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}
