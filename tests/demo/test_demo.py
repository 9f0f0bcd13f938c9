"""`make demo` end to end: the whole system started by its launcher, used through the
gateway like a newcomer would, then stopped with SIGTERM leaving nothing behind."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.demo.launcher import (
    Launch,
    launch,
    port_is_free,
    processes_using,
    redis_sockets,
    running,
)

pytestmark = pytest.mark.timeout(240)

FINAL = {"completed", "failed", "cancelled", "expired"}
STOP_TIMEOUT_S = 15.0


@dataclass
class FirstRun:
    """The first start on a fresh data folder, shared by this module's tests."""

    launch: Launch
    ready_s: float
    credentials: dict[str, Any]
    keys: dict[str, bytes]


@pytest.fixture(scope="module")
def first_run() -> Iterator[FirstRun]:
    # Not under pytest's temp folder: as root, PostgreSQL runs as the `pgserver` user, which
    # must traverse every folder above its data, and pytest keeps its own at mode 700.
    folder = Path(tempfile.mkdtemp(prefix="airlock-demo-"))
    run = launch(folder / "data", folder / "first-start.out")
    try:
        ready_s = run.wait_ready()
        yield FirstRun(run, ready_s, run.credentials(), signing_keys(run.demo_dir))
    finally:
        run.kill_everything()
        shutil.rmtree(folder, ignore_errors=True)


def signing_keys(demo_dir: Path) -> dict[str, bytes]:
    return {str(path.relative_to(demo_dir)): path.read_bytes() for path in demo_dir.rglob("*.key")}


def sign_in(client: httpx.Client, api: str, username: str, password: str) -> dict[str, str]:
    response = client.post(f"{api}/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def submit(client: httpx.Client, run: Launch, auth: dict[str, str], kind: str, payload: Any) -> str:
    response = client.post(
        f"{run.gateway}/requests", json={"type": kind, "payload": payload}, headers=auth
    )
    assert response.status_code == 202, response.text
    request_id: str = response.json()["id"]
    return request_id


def final_state(
    client: httpx.Client, run: Launch, auth: dict[str, str], request_id: str
) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = client.get(f"{run.gateway}/requests/{request_id}", headers=auth)
        assert response.status_code == 200, response.text
        request: dict[str, Any] = response.json()
        if request["status"] in FINAL:
            return request
        time.sleep(0.2)
    raise AssertionError(f"request {request_id} still {request['status']} after 30 s")


def assert_stops_cleanly(run: Launch) -> None:
    """SIGTERM: exit 0 within the limit; no process, socket or port of the demo is left."""
    postgres_pid = int((run.demo_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    sockets = redis_sockets(run.demo_dir)
    assert all(sock.exists() for sock in sockets)
    children = run.child_pids()
    assert len(children) == 5, children

    code, took = run.terminate(timeout=STOP_TIMEOUT_S + 5)

    print(f"stopped in {took:.1f} s")
    assert code == 0, run.output_tail()
    assert took < STOP_TIMEOUT_S, f"stopping took {took:.1f} s"
    # A server that has just removed its pid file may still be exiting for a moment.
    deadline = time.monotonic() + 3
    while (left := processes_using(run.demo_dir)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == []
    for name, pid in {"postgres": postgres_pid, **children}.items():
        while running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not running(pid), f"{name} (pid {pid}) outlived the demo"
    assert not (run.demo_dir / "postgres" / "postmaster.pid").exists()
    assert not any(sock.exists() for sock in sockets)
    assert list((run.demo_dir / "run").glob("*.pid")) == []
    assert all(port_is_free(port) for port in run.ports.values())


def test_the_demo_answers_a_newcomers_requests_and_stops_cleanly(first_run: FirstRun) -> None:
    run, credentials = first_run.launch, first_run.credentials
    print(f"first start ready in {first_run.ready_s:.1f} s")
    assert stat.S_IMODE((run.demo_dir / "credentials.json").stat().st_mode) == 0o600
    assert set(credentials) >= {"admin", "user"}
    user, admin = credentials["user"], credentials["admin"]
    for log in (run.demo_dir / "logs").glob("*.log"):  # the banner showed them: not logged
        assert stat.S_IMODE(log.stat().st_mode) == 0o600, log.name
        text = log.read_text(errors="replace")
        assert user["password"] not in text, log.name
        assert admin["password"] not in text, log.name

    with httpx.Client(timeout=10) as client:
        # The admin's password is the changed one: it works without a change being due.
        admin_auth = sign_in(client, run.processor, admin["username"], admin["password"])
        assert client.get(f"{run.processor}/me", headers=admin_auth).status_code == 200

        auth = sign_in(client, run.gateway, user["username"], user["password"])
        payload = {"hello": "across the air gap", "nonce": uuid.uuid4().hex}
        echo_id = submit(client, run, auth, "echo", payload)
        search_id = submit(
            client, run, auth, "documents.search", {"query": "diode", "limit": 5, "offset": 0}
        )

        echo = final_state(client, run, auth, echo_id)
        assert (echo["status"], echo["response"], echo["error"]) == ("completed", payload, None)
        search = final_state(client, run, auth, search_id)
        assert search["status"] == "completed", search
        assert search["response"]["total"] >= 1
        hits = search["response"]["hits"]
        assert set(hits[0]) == {"id", "title", "snippet", "score"}
        assert hits[0]["title"] == "Data diodes"
        assert "«" in hits[0]["snippet"]

        # Processes that die are started again, the server's worker processes with them, and
        # requests go through the new ones.
        killed = {name: run.child_pids()[name] for name in ("gateway-api", "transfer-agent")}
        for pid in killed.values():
            os.kill(pid, signal.SIGKILL)
        wait_for_restarts(client, run, killed)
        again = final_state(client, run, auth, submit(client, run, auth, "echo", {"after": 1}))
        assert again["response"] == {"after": 1}
    for name in killed:
        assert f"{name} exited unexpectedly (killed by SIGKILL)" in run.output_tail(400)

    if shutil.which("curl"):
        session = subprocess.run(
            ["bash", str(run.demo_dir / "try-it.sh")],
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert session.returncode == 0, session.stderr
        assert session.stdout.count('"status": "completed"') == 2, session.stdout

    assert_stops_cleanly(run)


def wait_for_restarts(client: httpx.Client, run: Launch, killed: dict[str, int]) -> None:
    """Until each killed process has a new pid, its old process group is gone, and the
    gateway's API and the agent answer again."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pids = run.child_pids()
        if all(pids.get(name) not in (None, old) for name, old in killed.items()):
            try:
                answers = [
                    client.get(f"{run.gateway_origin}/health/live"),
                    client.get(f"{run.agent}/health/live"),
                ]
            except httpx.HTTPError:
                answers = []
            if answers and all(answer.status_code == 200 for answer in answers):
                for old in killed.values():
                    with pytest.raises(ProcessLookupError):
                        os.killpg(old, 0)
                return
        time.sleep(0.2)
    raise AssertionError(f"{sorted(killed)} were not restarted:\n{run.output_tail()}")


def test_a_second_start_reuses_keys_users_and_credentials(first_run: FirstRun) -> None:
    if first_run.launch.process.poll() is None:
        assert_stops_cleanly(first_run.launch)
    demo_dir = first_run.launch.demo_dir
    run = launch(demo_dir, demo_dir.parent / "second-start.out")
    try:
        print(f"second start ready in {run.wait_ready():.1f} s")
        output = run.output.read_text()
        assert "creating the demo user" not in output
        assert "loading" not in output
        assert run.credentials()["admin"] == first_run.credentials["admin"]
        assert run.credentials()["user"] == first_run.credentials["user"]
        assert signing_keys(demo_dir) == first_run.keys
        with httpx.Client(timeout=10) as client:
            admin = first_run.credentials["admin"]
            admin_auth = sign_in(client, run.processor, admin["username"], admin["password"])
            documents = client.get(f"{run.processor}/documents", headers=admin_auth).json()["items"]
            assert len(documents) == 15
            user = first_run.credentials["user"]
            auth = sign_in(client, run.gateway, user["username"], user["password"])
            echo = final_state(client, run, auth, submit(client, run, auth, "echo", {"n": 2}))
            assert echo["response"] == {"n": 2}
        assert_stops_cleanly(run)
    finally:
        run.kill_everything()
