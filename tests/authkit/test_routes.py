"""The login, refresh and logout routes on a tiny app: real PostgreSQL, real Redis."""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeAlias

import asyncpg
import httpx
import pytest
import redis.asyncio
from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.testing import AsyncTestClient

from authkit.login_limits import LoginLimiter, username_key
from authkit.middleware import AuthConfig, auth_middleware
from authkit.passwords import hash_password
from authkit.routes import Account, AuthEvent, AuthServices, auth_controller
from authkit.sessions import RefreshTokenPolicy
from authkit.tokens import AccessTokenClaims, AccessTokenIssuer, AccessTokenVerifier
from servicekit.database import Connection
from servicekit.logs import configure_logging
from servicekit.plugin import ServiceKitConfig, ServiceKitPlugin
from servicekit.testing import MakeDatabase
from tests.authkit.conftest import AUDIENCE, ISSUER, SECRET, migrated

Conn: TypeAlias = "asyncpg.Connection[Any]"
Client: TypeAlias = "AsyncTestClient[Litestar]"

ALICE = uuid.UUID("00000000-0000-4000-8000-00000000a11c")
CAROL = uuid.UUID("00000000-0000-4000-8000-0000000ca201")
ADMIN = uuid.UUID("00000000-0000-4000-8000-0000000000ad")
ALICE_PASSWORD = "alice's long passphrase 1"
CAROL_PASSWORD = "carol's long passphrase 2"
ADMIN_PASSWORD = "the bootstrap password 3"
WRONG_PASSWORD = "Wrong-Secret-123456"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
PER_USERNAME = 3


async def _service_tables(url: str) -> None:
    """Template: authkit's tables, and the accounts and audit log a service would own."""
    await migrated(url)
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            """CREATE TABLE account (
                id uuid PRIMARY KEY, username text UNIQUE NOT NULL, password_hash text,
                roles text[] NOT NULL, active bool NOT NULL, must_change_password bool NOT NULL,
                session_version int NOT NULL, last_login_at timestamptz)"""
        )
        await connection.execute(
            """CREATE TABLE auth_event (
                id bigserial PRIMARY KEY, event text NOT NULL, user_id uuid, username text,
                address text NOT NULL, why text)"""
        )
        await connection.executemany(
            "INSERT INTO account VALUES ($1, $2, $3, $4, $5, $6, 1, NULL)",
            [
                (ALICE, "alice", await hash_password(ALICE_PASSWORD), ["user"], True, False),
                (CAROL, "carol", await hash_password(CAROL_PASSWORD), ["user"], False, False),
                (ADMIN, "admin", await hash_password(ADMIN_PASSWORD), ["admin"], True, True),
            ],
        )
    finally:
        await connection.close()


COLUMNS = "id, username, password_hash, roles, active, must_change_password, session_version"


@dataclass
class Accounts:
    """The service's side of the routes: its `account` and `auth_event` tables."""

    fail_on_login: bool = False

    async def find_by_username(self, conn: Connection, username: str) -> Account | None:
        row = await conn.fetchrow(f"SELECT {COLUMNS} FROM account WHERE username = $1", username)  # noqa: S608
        return None if row is None else _account(row)

    async def get(self, conn: Connection, user_id: uuid.UUID) -> Account | None:
        row = await conn.fetchrow(f"SELECT {COLUMNS} FROM account WHERE id = $1", user_id)  # noqa: S608
        return None if row is None else _account(row)

    async def on_login(self, conn: Connection, account: Account) -> None:
        await conn.execute("UPDATE account SET last_login_at = now() WHERE id = $1", account.id)
        if self.fail_on_login:
            raise RuntimeError("the service's own login step failed")

    async def audit(
        self,
        conn: Connection,
        event: AuthEvent,
        *,
        user_id: uuid.UUID | None,
        username: str | None,
        address: str,
        why: str | None = None,
    ) -> None:
        await conn.execute(
            "INSERT INTO auth_event (event, user_id, username, address, why) "
            "VALUES ($1, $2, $3, $4, $5)",
            event,
            user_id,
            username,
            address,
            why,
        )


def _account(row: asyncpg.Record) -> Account:
    return Account(**(dict(row) | {"roles": frozenset(row["roles"])}))


def _services(connection: ASGIConnection[Any, Any, Any, Any]) -> AuthServices:
    services: AuthServices = connection.app.state.auth_services
    return services


def _verifier() -> AccessTokenVerifier:
    return AccessTokenVerifier(SECRET, issuer=ISSUER, audience=AUDIENCE)


def _app(
    database_url: str,
    redis_url: str,
    store: Accounts,
    *,
    policy: RefreshTokenPolicy | None = None,
    path: str = "/api/v1/auth",
) -> Litestar:
    # The pool and the Redis client open on the app's event loop, at its start.
    async def start(app: Litestar) -> None:
        app.state.redis = redis.asyncio.Redis.from_url(redis_url)
        app.state.auth_services = AuthServices(
            await asyncpg.create_pool(database_url, min_size=1, max_size=4),
            AccessTokenIssuer(SECRET, issuer=ISSUER, audience=AUDIENCE),
            LoginLimiter(app.state.redis, per_username=(PER_USERNAME, 300)),
            store,
            policy=policy,
        )

    async def stop(app: Litestar) -> None:
        await app.state.auth_services.pool.close()
        await app.state.redis.aclose()

    return Litestar(
        [auth_controller(_services, path=path, tags=["sessions"])],
        on_startup=[start],
        on_shutdown=[stop],
        # The routes must be public although every other route needs a token.
        middleware=[auth_middleware(AuthConfig(verifier=_verifier()))],
        plugins=[ServiceKitPlugin(ServiceKitConfig(service="authkit-routes-test"))],
    )


@pytest.fixture
def database_url(postgres_database: MakeDatabase) -> str:
    return postgres_database(_service_tables, key="authkit-routes")


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Conn]:
    """A connection of the test's own, to look at what the routes wrote."""
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
def store() -> Accounts:
    return Accounts()


MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
async def make_client(
    database_url: str, redis_url: str, store: Accounts
) -> AsyncIterator[MakeClient]:
    """Start the app (with options for `_app`) and return a client of it."""
    clients: list[Client] = []

    async def make(**options: Any) -> Client:
        client = AsyncTestClient(_app(database_url, redis_url, store, **options))
        await client.__aenter__()
        clients.append(client)
        return client

    try:
        yield make
    finally:
        for client in clients:
            await client.__aexit__(None, None, None)


@pytest.fixture
async def client(make_client: MakeClient) -> Client:
    return await make_client()


async def _login(client: Client, username: str, password: str) -> httpx.Response:
    return await client.post(LOGIN, json={"username": username, "password": password})


async def _tokens(client: Client, username: str = "alice", password: str = ALICE_PASSWORD) -> Any:
    response = await _login(client, username, password)
    assert response.status_code == 200, response.text
    return response.json()


async def _refresh(client: Client, token: str) -> httpx.Response:
    return await client.post(REFRESH, json={"refresh_token": token})


def _error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


async def _events(db: Conn) -> list[tuple[str, uuid.UUID | None, str | None, str, str | None]]:
    rows = await db.fetch(
        "SELECT event, user_id, username, address, why FROM auth_event ORDER BY id"
    )
    return [tuple(row) for row in rows]


async def _refresh_tokens(db: Conn) -> list[asyncpg.Record]:
    return await db.fetch("SELECT * FROM auth_refresh_token ORDER BY created_at, id")


def _claims(tokens: Any) -> AccessTokenClaims:
    return _verifier().verify(tokens["access_token"])


async def test_a_login_answers_the_designs_tokens_and_is_audited(client: Client, db: Conn) -> None:
    response = await client.post(
        LOGIN,
        json={"username": "alice", "password": ALICE_PASSWORD},
        headers={"User-Agent": "airlock-cli/1"},
    )
    assert response.status_code == 200
    tokens = response.json()
    assert set(tokens) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert (tokens["token_type"], tokens["expires_in"]) == ("bearer", 1800)
    claims = _claims(tokens)
    assert (claims.sub, claims.roles, claims.pv, claims.mcp) == (ALICE, ("user",), 1, False)
    [stored] = await _refresh_tokens(db)
    assert (stored["user_id"], stored["user_agent"], stored["ip"]) == (
        ALICE,
        "airlock-cli/1",
        "testclient",
    )
    assert await db.fetchval("SELECT last_login_at FROM account WHERE id = $1", ALICE) is not None
    assert await _events(db) == [("login", ALICE, "alice", "testclient", None)]


async def test_a_token_carries_a_pending_password_change(client: Client) -> None:
    claims = _claims(await _tokens(client, "admin", ADMIN_PASSWORD))
    assert (claims.sub, claims.roles, claims.mcp) == (ADMIN, ("admin",), True)


async def test_a_wrong_password_is_401_invalid_credentials_and_audited(
    client: Client, db: Conn
) -> None:
    response = await _login(client, "alice", WRONG_PASSWORD)
    assert _error(response) == (401, "invalid_credentials")
    assert response.headers["www-authenticate"] == "Bearer"
    assert await _events(db) == [("login_failed", None, "alice", "testclient", "bad_credentials")]
    assert await _refresh_tokens(db) == []
    assert await db.fetchval("SELECT last_login_at FROM account WHERE id = $1", ALICE) is None


async def test_an_unknown_user_gets_the_same_answer_as_a_wrong_password(
    client: Client, db: Conn
) -> None:
    unknown = await _login(client, "nobody", WRONG_PASSWORD)
    wrong = await _login(client, "alice", WRONG_PASSWORD)
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()
    assert ("login_failed", None, "nobody", "testclient", "bad_credentials") in await _events(db)


async def test_an_inactive_account_is_refused_like_a_wrong_password(
    client: Client, db: Conn
) -> None:
    response = await _login(client, "carol", CAROL_PASSWORD)
    assert _error(response) == (401, "invalid_credentials")
    assert await _events(db) == [("login_failed", None, "carol", "testclient", "inactive")]
    assert await _refresh_tokens(db) == []


async def test_too_many_failures_are_refused_with_429_even_with_the_right_password(
    client: Client, db: Conn
) -> None:
    for _ in range(PER_USERNAME):
        assert _error(await _login(client, "alice", WRONG_PASSWORD)) == (
            401,
            "invalid_credentials",
        )
    limited = await _login(client, "alice", ALICE_PASSWORD)
    assert _error(limited) == (429, "too_many_login_attempts")
    assert 1 <= int(limited.headers["retry-after"]) <= 300
    assert (await _events(db))[-1] == ("login_failed", None, "alice", "testclient", "rate_limited")
    assert await _refresh_tokens(db) == []


async def test_a_successful_login_forgets_the_usernames_failures(
    client: Client, redis_url: str
) -> None:
    for _ in range(PER_USERNAME - 1):
        await _login(client, "alice", WRONG_PASSWORD)
    await _tokens(client)
    redis_client = redis.asyncio.Redis.from_url(redis_url)
    try:
        assert await redis_client.exists(username_key("alice")) == 0
    finally:
        await redis_client.aclose()
    for _ in range(PER_USERNAME - 1):
        assert (await _login(client, "alice", WRONG_PASSWORD)).status_code == 401


async def test_the_login_commits_all_or_nothing(client: Client, db: Conn, store: Accounts) -> None:
    store.fail_on_login = True
    response = await _login(client, "alice", ALICE_PASSWORD)
    assert _error(response) == (500, "internal_error")
    assert await _refresh_tokens(db) == []
    assert await _events(db) == []
    assert await db.fetchval("SELECT last_login_at FROM account WHERE id = $1", ALICE) is None


async def test_refresh_rotates_and_the_access_token_has_the_current_roles(
    client: Client, db: Conn
) -> None:
    tokens = await _tokens(client)
    await db.execute("UPDATE account SET roles = '{operator}' WHERE id = $1", ALICE)
    response = await _refresh(client, tokens["refresh_token"])
    assert response.status_code == 200
    rotated = response.json()
    assert set(rotated) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert rotated["token_type"] == "bearer"
    assert rotated["refresh_token"] != tokens["refresh_token"]
    assert _claims(rotated).roles == ("operator",)
    first, second = await _refresh_tokens(db)
    assert first["used_at"] is not None
    assert second["family_id"] == first["family_id"]
    assert (await _refresh(client, rotated["refresh_token"])).status_code == 200


async def test_a_reused_refresh_token_revokes_its_family(client: Client) -> None:
    tokens = await _tokens(client)
    rotated = (await _refresh(client, tokens["refresh_token"])).json()
    reused = await _refresh(client, tokens["refresh_token"])
    assert _error(reused) == (401, "refresh_token_reused")
    # The token the rotation handed out is dead too: the thief's and the victim's alike.
    assert _error(await _refresh(client, rotated["refresh_token"])) == (401, "token_invalid")


async def test_refresh_for_a_vanished_account_is_token_invalid(client: Client, db: Conn) -> None:
    tokens = await _tokens(client)
    await db.execute("DELETE FROM account WHERE id = $1", ALICE)
    assert _error(await _refresh(client, tokens["refresh_token"])) == (401, "token_invalid")


async def test_refresh_for_a_deactivated_account_is_403_account_inactive(
    client: Client, db: Conn
) -> None:
    tokens = await _tokens(client)
    await db.execute("UPDATE account SET active = false WHERE id = $1", ALICE)
    assert _error(await _refresh(client, tokens["refresh_token"])) == (403, "account_inactive")


async def test_refresh_after_the_session_version_moved_on_is_refused_and_ends_the_family(
    client: Client, db: Conn
) -> None:
    # A password change whose refresh-token revocation never happened (the sync bug).
    tokens = await _tokens(client)
    await db.execute("UPDATE account SET session_version = 2 WHERE id = $1", ALICE)
    assert _error(await _refresh(client, tokens["refresh_token"])) == (401, "token_invalid")
    assert [row["revoked_reason"] for row in await _refresh_tokens(db)] == ["stale_session"] * 2
    # The version the family was started with is stamped on it: a fresh login refreshes.
    assert (await _refresh(client, (await _tokens(client))["refresh_token"])).status_code == 200


async def test_a_refresh_token_from_before_session_versions_were_recorded_is_refused(
    client: Client, db: Conn
) -> None:
    tokens = await _tokens(client)
    await db.execute("UPDATE auth_refresh_token SET session_version = NULL")
    assert _error(await _refresh(client, tokens["refresh_token"])) == (401, "token_invalid")


async def test_a_malformed_refresh_token_is_token_invalid(client: Client) -> None:
    assert _error(await _refresh(client, "not-a-refresh-token")) == (401, "token_invalid")


async def test_logout_revokes_the_family_and_is_audited(client: Client, db: Conn) -> None:
    tokens = await _tokens(client)
    response = await client.post(LOGOUT, json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 204
    assert response.content == b""
    assert _error(await _refresh(client, tokens["refresh_token"])) == (401, "token_invalid")
    assert (await _events(db))[-1] == ("logout", ALICE, None, "testclient", None)
    [stored] = await _refresh_tokens(db)
    assert stored["revoked_reason"] == "logout"


async def test_logout_of_an_unknown_token_is_204_and_not_audited(client: Client, db: Conn) -> None:
    for token in ("rt_" + "A" * 43, "whatever"):
        response = await client.post(LOGOUT, json={"refresh_token": token})
        assert response.status_code == 204
    assert await _events(db) == []


async def test_the_policy_bounds_the_family_whatever_the_refreshes(
    make_client: MakeClient, db: Conn
) -> None:
    policy = RefreshTokenPolicy(lifetime=timedelta(minutes=10), family_lifetime=timedelta(hours=1))
    client = await make_client(policy=policy)
    tokens = await _tokens(client)
    assert (await _refresh(client, tokens["refresh_token"])).status_code == 200
    first, second = await _refresh_tokens(db)
    assert first["expires_at"] - first["created_at"] == timedelta(minutes=10)
    assert first["family_expires_at"] - first["created_at"] == timedelta(hours=1)
    assert second["family_expires_at"] == first["family_expires_at"]


async def test_without_a_policy_a_family_lives_authkits_default_30_days(
    client: Client, db: Conn
) -> None:
    await _tokens(client)
    [stored] = await _refresh_tokens(db)
    assert stored["family_expires_at"] - stored["created_at"] == timedelta(days=30)


async def test_the_routes_mount_under_the_services_path_and_tags(
    make_client: MakeClient,
) -> None:
    client = await make_client(path="/auth")
    body = {"username": "alice", "password": ALICE_PASSWORD}
    assert (await client.post("/auth/login", json=body)).status_code == 200
    assert (await client.post(LOGIN, json=body)).status_code == 404
    schema = (await client.get("/schema/openapi.json")).json()
    assert {"/auth/login", "/auth/refresh", "/auth/logout"} <= set(schema["paths"])
    assert schema["paths"]["/auth/login"]["post"]["tags"] == ["sessions"]


@pytest.mark.parametrize(
    "body",
    [
        {"username": "alice"},
        {"username": "alice", "password": ""},
        {"username": "a" * 65, "password": WRONG_PASSWORD},
        {"username": "ali\u0000ce", "password": WRONG_PASSWORD},  # PostgreSQL text has no NUL
        {"username": "alice", "password": WRONG_PASSWORD, "remember": True},
    ],
)
async def test_a_malformed_login_is_400_and_never_echoes_the_password(
    client: Client, body: dict[str, Any]
) -> None:
    response = await client.post(LOGIN, json=body)
    assert _error(response) == (400, "validation_error")
    assert WRONG_PASSWORD not in response.text


async def test_no_response_or_log_line_carries_a_password_or_token(
    client: Client, db: Conn
) -> None:
    stream = io.StringIO()
    handler = configure_logging("authkit-routes-test", json=True, level="DEBUG", stream=stream)
    try:
        answers = [await _login(client, "alice", WRONG_PASSWORD)]
        answers.append(await _login(client, "carol", CAROL_PASSWORD))
        tokens = await _tokens(client)
        rotated = (await _refresh(client, tokens["refresh_token"])).json()
        answers.append(await _refresh(client, tokens["refresh_token"]))  # reused
        answers.append(await _refresh(client, rotated["refresh_token"]))  # revoked
        answers.append(await client.post(LOGOUT, json={"refresh_token": rotated["refresh_token"]}))
        answers.append(await client.post(LOGIN, json={"username": "alice", "pw": ALICE_PASSWORD}))
    finally:
        logging.getLogger().removeHandler(handler)
    output = stream.getvalue()
    assert "/api/v1/auth/login" in output  # the requests were logged...
    hashes = [row["password_hash"] for row in await db.fetch("SELECT password_hash FROM account")]
    secrets = [ALICE_PASSWORD, CAROL_PASSWORD, WRONG_PASSWORD, *hashes]
    secrets += [tokens["access_token"], tokens["refresh_token"]]
    secrets += [rotated["access_token"], rotated["refresh_token"]]
    for secret in secrets:
        assert secret not in output  # ...without a single secret
        for answer in answers:
            assert secret not in answer.text


def test_an_accounts_repr_hides_its_password_hash() -> None:
    account = Account(ALICE, "alice", "$argon2id$v=19$secret", frozenset({"user"}), True, False, 1)
    assert "argon2" not in repr(account)
    assert "argon2" not in str(account)
    assert "alice" in repr(account)
