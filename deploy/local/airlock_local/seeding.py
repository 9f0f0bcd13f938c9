"""Seed the demo through the processor's admin API, then wait for the user at the gateway.

Everything goes through the real APIs: the admin signs in with the bootstrap password,
changes it (as every new admin must), creates the profile type `demo`, the user `demo`
and the document collection; the user reaches the gateway through the link like any other
change. Each step skips what an earlier start already did.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import httpx

from airlock_local.documents import demo_documents
from airlock_local.layout import DemoLayout, Generated
from airlock_local.provisioning import ensure_secret

ADMIN_USERNAME: Final = "admin"
USER_USERNAME: Final = "demo"
PROFILE_TYPE: Final = {
    "name": "demo",
    "requests_per_minute": 120,
    "burst": 30,
    "allowed_request_types": ["echo", "documents.search"],
    "max_payload_bytes": 65536,
    "max_pending_requests": 100,
}
HTTP_TIMEOUT_S: Final = 30.0
SYNC_TIMEOUT_S: Final = 180.0
# The processor exports what its outbox holds every 0.5 s (the demo's export window): after
# this long the user's change is in a batch, and once every batch is acknowledged, applied.
SYNC_SETTLE_S: Final = 2.0
# When no batch made after the change shows up, it left in one whose pass began just before.
SYNC_FALLBACK_S: Final = 5.0
# authkit locks a username out after 5 failed logins in 5 minutes: stay well below.
GATEWAY_LOGIN_ATTEMPTS: Final = 3
GATEWAY_LOGIN_PAUSE_S: Final = 3.0

Say = Callable[[str], None]


class SeedError(Exception):
    """Seeding cannot go on; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Seeded:
    """The passwords that work now (the admin's is the changed one)."""

    admin_password: str
    user_password: str


async def seed_and_sync(
    layout: DemoLayout, processor_url: str, gateway_url: str, say: Say
) -> Seeded:
    """Seed the processor, then wait until the demo user can sign in on the gateway."""
    timeout = httpx.Timeout(HTTP_TIMEOUT_S)
    async with (
        httpx.AsyncClient(base_url=f"{processor_url}/api/v1", timeout=timeout) as processor,
        httpx.AsyncClient(base_url=f"{gateway_url}/api/v1", timeout=timeout) as gateway,
    ):
        token, admin_password = await _admin_session(processor, layout, say)
        admin = {"Authorization": f"Bearer {token}"}
        await _ensure_profile_type(processor, admin, say)
        user_password = ensure_secret(layout.secret(Generated.USER))
        changed_at = await _ensure_user(processor, admin, user_password, say)
        await _ensure_documents(processor, admin, say)
        say("waiting for the demo user to reach the gateway through the link…")
        if changed_at is not None:
            await _wait_for_export(processor, admin, changed_at)
        await _gateway_login(gateway, USER_USERNAME, user_password)
    return Seeded(admin_password, user_password)


async def login(client: httpx.AsyncClient, username: str, password: str) -> str | None:
    """An access token, or None when the credentials are refused (401)."""
    response = await client.post("/auth/login", json={"username": username, "password": password})
    if response.status_code == httpx.codes.UNAUTHORIZED:
        return None
    _expect(response, httpx.codes.OK, what=f"signing in as {username!r}")
    token: str = response.json()["access_token"]
    return token


async def _admin_session(
    client: httpx.AsyncClient, layout: DemoLayout, say: Say
) -> tuple[str, str]:
    """Sign in as the admin; on the first start, make the required password change."""
    changed = layout.secret(Generated.ADMIN)
    if changed.exists():
        password = ensure_secret(changed)
        token = await login(client, ADMIN_USERNAME, password)
        if token is not None:
            return token, password
    bootstrap = ensure_secret(layout.secret(Generated.ADMIN_BOOTSTRAP))
    token = await login(client, ADMIN_USERNAME, bootstrap)
    if token is None:
        raise SeedError(
            f"neither of the admin passwords in {layout.secrets_dir} is accepted by the "
            f"processor; to start afresh, stop the demo and delete {layout.root}"
        )
    say("changing the admin's bootstrap password (required at first login)…")
    # Stored before the change: a crash right after it cannot lose the new password.
    password = ensure_secret(changed)
    response = await client.post(
        "/auth/password",
        json={"current_password": bootstrap, "new_password": password},
        headers={"Authorization": f"Bearer {token}"},
    )
    _expect(response, httpx.codes.NO_CONTENT, what="changing the admin's password")
    token = await login(client, ADMIN_USERNAME, password)
    if token is None:
        raise SeedError("the admin's new password was refused right after the change")
    return token, password


async def _ensure_profile_type(client: httpx.AsyncClient, admin: dict[str, str], say: Say) -> None:
    name = PROFILE_TYPE["name"]
    response = await client.get(f"/profile-types/{name}", headers=admin)
    if response.status_code == httpx.codes.OK:
        return
    _expect(response, httpx.codes.NOT_FOUND, what=f"reading profile type {name!r}")
    say(f"creating the profile type {name!r}…")
    response = await client.post("/profile-types", json=PROFILE_TYPE, headers=admin)
    _expect(response, httpx.codes.CREATED, what=f"creating profile type {name!r}")


async def _ensure_user(
    client: httpx.AsyncClient, admin: dict[str, str], password: str, say: Say
) -> datetime | None:
    """Create the demo user, or make its password the stored one; None if nothing changed.

    Otherwise return a time just before the change was committed (this machine's clock,
    which the processor shares).
    """
    user = await _find_user(client, admin, USER_USERNAME)
    started = datetime.now(UTC)
    if user is None:
        say(f"creating the demo user {USER_USERNAME!r}…")
        body = {
            "username": USER_USERNAME,
            "password": password,
            "roles": ["user"],
            "profile_type": PROFILE_TYPE["name"],
        }
        response = await client.post("/users", json=body, headers=admin)
        _expect(response, httpx.codes.CREATED, what=f"creating user {USER_USERNAME!r}")
        return started
    if await login(client, USER_USERNAME, password) is not None:
        return None
    say(f"resetting the password of {USER_USERNAME!r} to the one in credentials.json…")
    response = await client.patch(
        f"/users/{user['id']}", json={"password": password}, headers=admin
    )
    _expect(response, httpx.codes.OK, what=f"changing the password of {USER_USERNAME!r}")
    return started


async def _find_user(
    client: httpx.AsyncClient, admin: dict[str, str], username: str
) -> dict[str, Any] | None:
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 500} | ({"cursor": cursor} if cursor else {})
        response = await client.get("/users", params=params, headers=admin)
        _expect(response, httpx.codes.OK, what="listing users")
        page = response.json()
        users: list[dict[str, Any]] = page["items"]
        for user in users:
            if user["username"].casefold() == username.casefold():
                return user
        if (cursor := page["next_cursor"]) is None:
            return None


async def _ensure_documents(client: httpx.AsyncClient, admin: dict[str, str], say: Say) -> None:
    response = await client.get("/documents", params={"limit": 1000}, headers=admin)
    _expect(response, httpx.codes.OK, what="listing documents")
    present = {document["id"] for document in response.json()["items"]}
    missing = [document for document in demo_documents() if document["id"] not in present]
    if not missing:
        return
    say(f"loading {len(missing)} documents for documents.search…")
    response = await client.post("/documents", json=missing, headers=admin)
    _expect(response, (httpx.codes.OK, httpx.codes.CREATED), what="loading documents")


async def _wait_for_export(
    client: httpx.AsyncClient, admin: dict[str, str], changed_at: datetime
) -> None:
    """Until the processor's batch carrying the user's change has been acknowledged.

    An acknowledgement means the gateway has applied the batch. Signing in before that
    would count as a failed login against the user.
    """
    deadline = time.monotonic() + SYNC_TIMEOUT_S
    fallback_at = time.monotonic() + SYNC_FALLBACK_S
    await asyncio.sleep(SYNC_SETTLE_S)
    while time.monotonic() < deadline:
        response = await client.get("/batches/outbound", params={"limit": 50}, headers=admin)
        _expect(response, httpx.codes.OK, what="listing the processor's batches")
        business = [batch for batch in response.json()["items"] if batch["business_count"] > 0]
        unacknowledged = [batch for batch in business if batch["acknowledged_at"] is None]
        newer = [batch for batch in business if _time(batch["created_at"]) >= changed_at]
        if not unacknowledged and (newer or time.monotonic() >= fallback_at):
            return
        await asyncio.sleep(0.25)
    raise SeedError(
        f"the processor's batches were not acknowledged within {SYNC_TIMEOUT_S:.0f} s: "
        "see logs/transfer-agent.log and logs/gateway-worker.log"
    )


async def _gateway_login(client: httpx.AsyncClient, username: str, password: str) -> None:
    """Sign in on the gateway, with a few paced attempts (each refusal counts against the user)."""
    for attempt in range(1, GATEWAY_LOGIN_ATTEMPTS + 1):
        response = await client.post(
            "/auth/login", json={"username": username, "password": password}
        )
        if response.status_code == httpx.codes.OK:
            return
        if response.status_code != httpx.codes.UNAUTHORIZED:
            _expect(response, httpx.codes.OK, what=f"signing in as {username!r} on the gateway")
        if attempt < GATEWAY_LOGIN_ATTEMPTS:
            await asyncio.sleep(GATEWAY_LOGIN_PAUSE_S)
    raise SeedError(f"{username!r} cannot sign in on the gateway; see logs/gateway-worker.log")


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _expect(response: httpx.Response, expected: int | tuple[int, ...], *, what: str) -> None:
    wanted = expected if isinstance(expected, tuple) else (expected,)
    if response.status_code in wanted:
        return
    try:
        error = response.json()["error"]
        detail = f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        detail = response.text[:200]
    raise SeedError(f"{what} failed: HTTP {response.status_code} ({detail})")
