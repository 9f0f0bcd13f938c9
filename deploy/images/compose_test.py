"""`make compose-test`: the three compose stacks started for real, used through their
published HTTPS ports only, a worker killed, everything restarted, then removed.

Run by deploy/images/compose-test.sh (which builds the images and the stand-ins first):

    python deploy/images/compose_test.py WORKDIR OVERRIDE_DB OVERRIDE_PROXY

WORKDIR holds a copy of deploy/compose (and deploy/transfer-agent) whose secrets
init-secrets.sh made; the overrides name the PostgreSQL, Redis and Caddy images to run. Each
phase prints its duration; a failure names its phase; every container, network and volume of
the stacks is removed at the end, also after a failure.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

GATEWAY_PORT = int(os.environ.get("AIRLOCK_GATEWAY_HTTPS_PORT", "18443"))
PROCESSOR_PORT = int(os.environ.get("AIRLOCK_PROCESSOR_HTTPS_PORT", "18444"))
GATEWAY = f"https://localhost:{GATEWAY_PORT}"
PROCESSOR = f"https://localhost:{PROCESSOR_PORT}"
STACKS = ("request-net", "response-net", "transfer")
# Named as the compose files name them (their `name:` and the networks' and volumes' names).
PROJECTS = ("airlock-request-net", "airlock-response-net", "airlock-transfer")
WORKER = "airlock-response-net_processor-worker_1"
# podman-compose's container names: the gateway API's replicas and the proxy in front.
REPLICAS = ("airlock-request-net_gateway-api-1_1", "airlock-request-net_gateway-api-2_1")
UPSTREAMS = ("gateway-api-1:8000", "gateway-api-2:8000")
GATEWAY_PROXY = "airlock-request-net_proxy_1"
# The rolling restart's client: a submission and a read of it, this often.
ROLLING_INTERVAL_S = 0.25
# After the proxy's reload, for the requests the previous configuration accepted to end.
RELOAD_SETTLE_S = 2.0
PODMAN_COMPOSE = os.environ.get("PODMAN_COMPOSE", "podman-compose").split()
READY_TIMEOUT_S = 240.0
SYNC_TIMEOUT_S = 180.0
DONE_TIMEOUT_S = 180.0
PENDING = {"queued", "exported", "delivered"}
PROFILE_TYPE = {
    "name": "compose-test",
    "requests_per_minute": 600,
    "burst": 100,
    "allowed_request_types": ["echo", "documents.search"],
    "max_payload_bytes": 65536,
    "max_pending_requests": 1000,
}
DOCUMENTS = [
    {
        "id": str(uuid.uuid4()),
        "title": f"Diode {n}",
        "body": f"A diode lets current pass one way ({n}).",
    }
    for n in range(5)
]


class PhaseError(Exception):
    """A phase failed; the message says what was expected."""


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)


@contextlib.contextmanager
def phase(name: str, timings: dict[str, float]) -> Iterator[None]:
    start = time.monotonic()
    say(f"phase {name}…")
    try:
        yield
    except Exception as exc:
        raise PhaseError(f"phase {name!r} failed: {exc}") from exc
    timings[name] = time.monotonic() - start
    say(f"phase {name}: {timings[name]:.1f} s")


def wait_for(what: str, check: Callable[[], Any], timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            if value := check():
                return value
        except (httpx.HTTPError, subprocess.CalledProcessError) as exc:
            last = exc
        time.sleep(1.0)
    raise PhaseError(f"{what}: not within {timeout_s:.0f} s (last error: {last!r})")


def expect(response: httpx.Response, status: int, what: str) -> Any:
    if response.status_code != status:
        raise PhaseError(f"{what}: {response.status_code} {response.text[:300]}")
    return response.json() if response.content else None


class Stacks:
    def __init__(self, workdir: Path, override_db: Path, override_proxy: Path) -> None:
        self.compose_dir = workdir / "deploy" / "compose"
        self.overrides = {
            "request-net": [override_db, override_proxy],
            "response-net": [override_db, override_proxy],
            "transfer": [],
        }
        self.env = os.environ | {
            "AIRLOCK_GATEWAY_HTTPS_PORT": str(GATEWAY_PORT),
            "AIRLOCK_PROCESSOR_HTTPS_PORT": str(PROCESSOR_PORT),
        }

    def compose(self, stack: str, *args: str) -> None:
        files = [f"{stack}.yml", *map(str, self.overrides[stack])]
        command = [*PODMAN_COMPOSE, *(arg for f in files for arg in ("-f", f)), *args]
        result = subprocess.run(
            command, cwd=self.compose_dir, env=self.env, capture_output=True, text=True
        )
        if result.returncode != 0:
            raise PhaseError(f"{' '.join(command)}: {result.stderr[-2000:]}")

    def up(self) -> None:
        # The transfer agent mounts the others' drop-zone volumes (external): last.
        for stack in STACKS:
            self.compose(stack, "up", "-d")

    def down(self, *, volumes: bool) -> None:
        for stack in reversed(STACKS):
            self.compose(stack, "down", *(["-v"] if volumes else []))

    def secret(self, name: str) -> str:
        return (self.compose_dir / "secrets" / name).read_text().strip()

    def client(self, side: str) -> httpx.Client:
        # The certificates init-secrets.sh made are their own CA: checked against it.
        cert = self.compose_dir / "secrets" / f"{side}_tls_cert.pem"
        base = GATEWAY if side == "gateway" else PROCESSOR
        return httpx.Client(base_url=f"{base}/api/v1", verify=str(cert), timeout=30.0)


def podman(*args: str) -> str:
    return subprocess.run(
        ["podman", *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def container_state(name: str) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(podman("inspect", "--format", "{{json .State}}", name))
    return state


def leftovers() -> list[str]:
    """Containers, networks and volumes of the stacks still there."""
    listings = {
        "container": ("ps", "-a", "--format", "{{.Names}}"),
        "network": ("network", "ls", "--format", "{{.Name}}"),
        "volume": ("volume", "ls", "--format", "{{.Name}}"),
    }
    return [
        f"{kind} {name}"
        for kind, listing in listings.items()
        for name in podman(*listing).split()
        if name.startswith("airlock-")
    ]


def ready(stacks: Stacks) -> None:
    for side in ("gateway", "processor"):
        with stacks.client(side) as client:
            url = f"{GATEWAY if side == 'gateway' else PROCESSOR}/health/live"

            def live(client: httpx.Client = client, url: str = url) -> bool:
                return client.get(url).status_code == httpx.codes.OK

            wait_for(f"{side} {url}", live, READY_TIMEOUT_S)


def health_checks() -> None:
    """Each container's own health check (the compose file's), run now: podman runs them on
    systemd timers, which a host without systemd does not have."""
    names = [n for n in podman("ps", "--format", "{{.Names}}").split() if n.startswith("airlock-")]
    failing = []
    for name in names:
        result = subprocess.run(
            ["podman", "healthcheck", "run", name], capture_output=True, text=True, check=False
        )
        if result.returncode != 0 and "no healthcheck" not in result.stderr.lower():
            failing.append(f"{name}: {(result.stdout + result.stderr).strip()[-200:]}")
    if failing:
        raise PhaseError(f"unhealthy: {failing}")
    say(f"{len(names)} containers healthy")


def login(client: httpx.Client, username: str, password: str) -> dict[str, str]:
    body = expect(
        client.post("/auth/login", json={"username": username, "password": password}),
        200,
        f"signing in as {username}",
    )
    return {"Authorization": f"Bearer {body['access_token']}"}


def synced(processor: httpx.Client, admin: dict[str, str], since: str) -> bool:
    """Every business batch of the processor acknowledged, one of them made after `since`."""
    page = expect(
        processor.get("/batches/outbound", params={"limit": 50}, headers=admin),
        200,
        "listing the processor's batches",
    )
    # One page, newest first: the processor has one peer, and the newest batches decide.
    business = [b for b in page["items"] if b["business_count"] > 0]
    return (
        bool(business)
        and all(b["acknowledged_at"] for b in business)
        and any(b["created_at"] >= since for b in business)
    )


def submit(client: httpx.Client, auth: dict[str, str], kind: str, payload: Any) -> str:
    body = expect(
        client.post("/requests", json={"type": kind, "payload": payload}, headers=auth),
        202,
        f"submitting {kind}",
    )
    return str(body["id"])


def completed(client: httpx.Client, auth: dict[str, str], ids: list[str]) -> None:
    def all_done() -> bool:
        statuses = {
            i: expect(client.get(f"/requests/{i}", headers=auth), 200, "reading a request")[
                "status"
            ]
            for i in ids
        }
        wrong = {i: s for i, s in statuses.items() if s not in PENDING | {"completed"}}
        if wrong:
            raise PhaseError(f"requests ended other than completed: {wrong}")
        return all(s == "completed" for s in statuses.values())

    wait_for(f"{len(ids)} requests completed", all_done, DONE_TIMEOUT_S)


def run(stacks: Stacks, timings: dict[str, float]) -> None:
    admin_password = secrets.token_urlsafe(18)
    user_password = secrets.token_urlsafe(18)
    with phase("up", timings):
        stacks.up()
        ready(stacks)
    with stacks.client("processor") as processor, stacks.client("gateway") as gateway:
        with phase("admin password", timings):
            bootstrap = stacks.secret("processor_admin_password.txt")
            token = login(processor, "admin", bootstrap)
            expect(
                processor.post(
                    "/auth/password",
                    json={"current_password": bootstrap, "new_password": admin_password},
                    headers=token,
                ),
                204,
                "changing the admin's password",
            )
            admin = login(processor, "admin", admin_password)
        with phase("profile type and user", timings):
            since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 2))
            expect(
                processor.post("/profile-types", json=PROFILE_TYPE, headers=admin),
                201,
                "creating the profile type",
            )
            expect(
                processor.post(
                    "/users",
                    json={
                        "username": "compose-user",
                        "password": user_password,
                        "roles": ["user"],
                        "profile_type": "compose-test",
                    },
                    headers=admin,
                ),
                201,
                "creating the user",
            )
            response = processor.post("/documents", json=DOCUMENTS, headers=admin)
            if response.status_code not in (200, 201):
                raise PhaseError(f"loading documents: {response.status_code} {response.text}")
            wait_for(
                "the user synced to the gateway",
                lambda: synced(processor, admin, since),
                SYNC_TIMEOUT_S,
            )
        with phase("requests", timings):
            auth = login(gateway, "compose-user", user_password)
            ids = [
                submit(gateway, auth, "echo", {"hello": "compose"}),
                submit(gateway, auth, "documents.search", {"query": "diode", "limit": 5}),
            ]
            completed(gateway, auth, ids)
            echo, search = (
                expect(gateway.get(f"/requests/{i}", headers=auth), 200, "reading")["response"]
                for i in ids
            )
            if "compose" not in json.dumps(echo) or "diode" not in json.dumps(search).lower():
                raise PhaseError(f"unexpected responses: echo {echo!r}, search {search!r}")
        with phase("health checks", timings):
            health_checks()
        with phase("worker killed", timings):
            ids += kill_worker_mid_traffic(gateway, auth)
            completed(gateway, auth, ids)
            seen = listed_ids(gateway, auth)
            if sorted(seen) != sorted(set(ids)) or len(seen) != len(ids):
                raise PhaseError(f"requests listed {len(seen)}, submitted {len(ids)}")
            processed_once(processor, admin, ids)
        with phase("rolling restart", timings):
            ids += rolling_restart(gateway, auth)
            completed(gateway, auth, ids)
    with phase("down", timings):
        stacks.down(volumes=False)
    with phase("up again", timings):
        stacks.up()
        ready(stacks)
        with stacks.client("processor") as processor, stacks.client("gateway") as gateway:
            login(processor, "admin", admin_password)
            auth = login(gateway, "compose-user", user_password)
            completed(gateway, auth, ids)


def listed_ids(client: httpx.Client, auth: dict[str, str]) -> list[str]:
    """Every request of the user's listing (all pages)."""
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 200} | ({"cursor": cursor} if cursor else {})
        page = expect(client.get("/requests", params=params, headers=auth), 200, "listing")
        seen += [str(item["id"]) for item in page["items"]]
        if not (cursor := page["next_cursor"]):
            return seen


def processed_once(processor: httpx.Client, admin: dict[str, str], ids: list[str]) -> None:
    """The processor holds each request once, completed; a job the kill interrupted ran
    again (attempts > 1) and still produced one response."""
    retried = 0
    for request_id in ids:
        held = expect(processor.get(f"/requests/{request_id}", headers=admin), 200, "reading")
        if held["status"] != "completed":
            raise PhaseError(f"the processor has {request_id} {held['status']}")
        retried += held["attempts"] > 1
    say(f"the processor completed all {len(ids)} requests, {retried} of them after a retry")


def kill_worker_mid_traffic(gateway: httpx.Client, auth: dict[str, str]) -> list[str]:
    """Submit for a while; halfway, SIGKILL the processor worker's main process (as an OOM
    kill would: not a `podman stop`), and wait until its restart policy brings it back."""
    ids: list[str] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def traffic() -> None:
        try:
            while not stop.is_set():
                ids.append(submit(gateway, auth, "echo", {"n": len(ids)}))
                time.sleep(0.2)
        except BaseException as exc:  # reported by the phase
            errors.append(exc)

    before = container_state(WORKER)
    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        time.sleep(3)
        os.kill(int(before["Pid"]), signal.SIGKILL)
        say(f"SIGKILL sent to {WORKER} (pid {before['Pid']})")
        wait_for(
            f"{WORKER} restarted",
            lambda: (
                (s := container_state(WORKER))["Running"] and s["StartedAt"] != before["StartedAt"]
            ),
            READY_TIMEOUT_S,
        )
        time.sleep(3)
    finally:
        stop.set()
        thread.join()
    if errors:
        raise PhaseError(f"submitting while the worker was down: {errors[0]!r}")
    say(f"{len(ids)} requests submitted around the kill")
    return ids


def rotate(upstreams: tuple[str, ...]) -> None:
    """Reload the gateway's proxy with these replicas in rotation (caddy-request/Caddyfile);
    the requests in progress finish on the previous configuration."""
    podman(
        "exec", "-e", f"GATEWAY_UPSTREAMS={' '.join(upstreams)}", GATEWAY_PROXY,
        "caddy", "reload", "--config", "/etc/caddy/Caddyfile",
    )  # fmt: skip
    time.sleep(RELOAD_SETTLE_S)


def healthy(name: str) -> bool:
    result = subprocess.run(["podman", "healthcheck", "run", name], capture_output=True)
    return result.returncode == 0


def rolling_restart(gateway: httpx.Client, auth: dict[str, str]) -> list[str]:
    """docs/deployment.md, "Rolling restart", while a client submits and reads through the
    proxy at a steady rate: each replica in turn taken out of the proxy's rotation, stopped
    (SIGTERM: granian finishes what it has), started, and put back once healthy. Every
    request must succeed; the figures are printed."""
    ids: list[str] = []
    failures: list[str] = []
    sent = retried = 0
    stop = threading.Event()

    def send(method: str, url: str, **kwargs: Any) -> httpx.Response:
        # A keep-alive connection the proxy closes at its reload, just as the client reuses
        # it, ends with no response at all (the race of RFC 9112 section 9.3.1). Both
        # requests are idempotent (a read; a submit with its Idempotency-Key, kept for the
        # retry), so a client may send them again; the retries are counted and printed.
        nonlocal retried
        try:
            return gateway.request(method, url, **kwargs)
        except httpx.RemoteProtocolError:
            retried += 1
            return gateway.request(method, url, **kwargs)

    def traffic() -> None:
        nonlocal sent
        while not stop.is_set():
            started = time.monotonic()
            try:
                sent += 1
                response = send(
                    "POST",
                    "/requests",
                    json={"type": "echo", "payload": {"rolling": len(ids)}},
                    headers=auth | {"Idempotency-Key": str(uuid.uuid4())},
                )
                if response.status_code not in (200, 202):  # 200: the retry's replay
                    failures.append(f"submit: {response.status_code} {response.text[:200]}")
                    continue
                ids.append(request_id := str(response.json()["id"]))
                sent += 1
                response = send("GET", f"/requests/{request_id}", headers=auth)
                if response.status_code != 200:
                    failures.append(f"read: {response.status_code} {response.text[:200]}")
            except httpx.HTTPError as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
            time.sleep(max(0.0, ROLLING_INTERVAL_S - (time.monotonic() - started)))

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        time.sleep(2)
        for name, upstream in zip(REPLICAS, UPSTREAMS, strict=True):
            start = time.monotonic()
            rotate(tuple(u for u in UPSTREAMS if u != upstream))
            podman("stop", "--time", "30", name)
            podman("start", name)
            wait_for(f"{name} healthy", functools.partial(healthy, name), READY_TIMEOUT_S)
            rotate(UPSTREAMS)
            say(f"{name} restarted and back in rotation in {time.monotonic() - start:.1f} s")
        time.sleep(2)
    finally:
        stop.set()
        thread.join()
    say(f"rolling restart: {sent} requests sent ({len(ids)} submitted and read), "
        f"{len(failures)} failed, {retried} sent again (connection closed unanswered)")  # fmt: skip
    if failures:
        raise PhaseError(f"{len(failures)} of {sent} requests failed: {failures[:5]}")
    return ids


def main() -> int:
    workdir, override_db, override_proxy = map(Path, sys.argv[1:4])
    stacks = Stacks(workdir, override_db, override_proxy)
    timings: dict[str, float] = {}
    failure = None
    try:
        run(stacks, timings)
    except PhaseError as exc:
        failure = str(exc)
        say(failure)
    finally:
        start = time.monotonic()
        with contextlib.suppress(PhaseError):
            stacks.down(volumes=True)
        left = leftovers()
        for item in left:  # what compose did not remove (a failed start)
            kind, name = item.split(" ", 1)
            subprocess.run(["podman", kind, "rm", "-f", name], capture_output=True)
        timings["clean up"] = time.monotonic() - start
        if left:
            say(f"removed what compose left: {left}")
        if still := leftovers():
            failure = failure or f"phase 'clean up' failed: left behind {still}"
    say("timings: " + ", ".join(f"{name} {s:.1f} s" for name, s in timings.items()))
    if failure:
        say(f"compose-test FAILED: {failure}")
        return 1
    say("compose-test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
