"""The authentication middleware on a tiny app, with users and API keys in a real database."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import jwt
import pytest
from litestar import Litestar, Request, get, post
from litestar.testing import AsyncTestClient

from authkit.guards import PASSWORD_CHANGE_PENDING_OPT, password_change_guard, requires_roles
from authkit.identity import AuthUser, Role, current_user
from authkit.middleware import AuthConfig, CredentialScheme, auth_middleware
from authkit.sessions import issue_refresh_token
from authkit.tokens import AccessTokenIssuer, AccessTokenVerifier
from servicekit.middleware import PUBLIC_ENDPOINT_OPT
from servicekit.plugin import ServiceKitConfig, ServiceKitPlugin
from servicekit.testing import MakeDatabase
from tests.authkit.conftest import AUDIENCE, ISSUER, SECRET, migrated

ALICE = uuid.UUID("00000000-0000-4000-8000-00000000a11c")
ADMIN = uuid.UUID("00000000-0000-4000-8000-0000000000ad")
API_KEY = "ak_test_key_for_alice"


async def _service_tables(url: str) -> None:
    """Template: authkit's tables plus the users and API keys a service would own."""
    await migrated(url)
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "CREATE TABLE app_user (id uuid PRIMARY KEY, roles text[] NOT NULL, "
            "session_version int NOT NULL, must_change_password bool NOT NULL, "
            "active bool NOT NULL)"
        )
        await connection.execute(
            "CREATE TABLE app_api_key (key_hash bytea PRIMARY KEY, user_id uuid NOT NULL)"
        )
        await connection.executemany(
            "INSERT INTO app_user VALUES ($1, $2, 1, $3, true)",
            [(ALICE, ["user"], False), (ADMIN, ["admin"], True)],
        )
        await connection.execute(
            "INSERT INTO app_api_key VALUES ($1, $2)",
            hashlib.sha256(API_KEY.encode()).digest(),
            ALICE,
        )
    finally:
        await connection.close()


@dataclass
class Users:
    """The service's side: user lookup and API keys, straight from its database.

    The app runs on the test client's own event loop, so its pool opens at app start-up;
    the tests change the database through their own connections.
    """

    url: str
    pool: asyncpg.Pool[Any] | None = None

    async def start(self) -> None:
        self.pool = await asyncpg.create_pool(self.url, min_size=1, max_size=4)

    async def stop(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    async def load(self, user_id: uuid.UUID) -> AuthUser | None:
        assert self.pool is not None
        row = await self.pool.fetchrow("SELECT * FROM app_user WHERE id = $1", user_id)
        if row is None:
            return None
        return AuthUser(
            id=row["id"],
            roles=frozenset(row["roles"]),
            session_version=row["session_version"],
            must_change_password=row["must_change_password"],
            active=row["active"],
        )

    async def by_api_key(self, key: str) -> AuthUser | None:
        assert self.pool is not None
        user_id = await self.pool.fetchval(
            "SELECT user_id FROM app_user JOIN app_api_key ON user_id = id WHERE key_hash = $1",
            hashlib.sha256(key.encode()).digest(),
        )
        return None if user_id is None else await self.load(user_id)

    async def execute(self, statement: str, *args: Any) -> None:
        connection = await asyncpg.connect(self.url)
        try:
            await connection.execute(statement, *args)
        finally:
            await connection.close()

    async def change(self, user_id: uuid.UUID, column: str, value: Any) -> None:
        # Column names come from the tests only.
        await self.execute(f"UPDATE app_user SET {column} = $2 WHERE id = $1", user_id, value)  # noqa: S608


@get("/api/v1/me")
async def me(request: Request[Any, Any, Any]) -> dict[str, Any]:
    user = current_user(request)
    via = request.auth if isinstance(request.auth, str) else "bearer"
    return {"id": str(user.id), "roles": sorted(user.roles), "via": via}


@get("/api/v1/admin/batches", guards=[requires_roles(Role.OPERATOR, Role.ADMIN)])
async def admin_batches() -> dict[str, bool]:
    return {"ok": True}


@post("/api/v1/auth/password", opt=dict(PASSWORD_CHANGE_PENDING_OPT), status_code=204)
async def change_password() -> None:
    return None


@post("/api/v1/auth/login", opt=dict(PUBLIC_ENDPOINT_OPT))
async def login() -> dict[str, bool]:
    return {"public": True}


def _app(config: AuthConfig, users: Users | None = None) -> Litestar:
    return Litestar(
        [me, admin_batches, change_password, login],
        on_startup=[users.start] if users else [],
        on_shutdown=[users.stop] if users else [],
        middleware=[auth_middleware(config)],
        guards=[password_change_guard],
        plugins=[ServiceKitPlugin(ServiceKitConfig(service="authkit-test"))],
    )


def _verifier() -> AccessTokenVerifier:
    return AccessTokenVerifier(SECRET, issuer=ISSUER, audience=AUDIENCE)


def _token(user_id: uuid.UUID = ALICE, *, roles: tuple[str, ...] = ("user",), **issuer: Any) -> str:
    options: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE, **issuer}
    key = options.pop("key", SECRET)
    return AccessTokenIssuer(key, **options).issue(user_id, roles=roles, session_version=1).token


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def users(postgres_database: MakeDatabase) -> Users:
    return Users(postgres_database(_service_tables, key="authkit-middleware"))


@pytest.fixture
async def client(users: Users) -> AsyncIterator[AsyncTestClient[Litestar]]:
    config = AuthConfig(
        verifier=_verifier(),
        load_user=users.load,
        credential_schemes=[CredentialScheme("api_key", "X-API-Key", users.by_api_key)],
    )
    async with AsyncTestClient(_app(config, users)) as test_client:
        yield test_client


async def _refusal(
    client: AsyncTestClient[Litestar], headers: dict[str, str], path: str = "/api/v1/me"
) -> tuple[int, str]:
    response = await client.get(path, headers=headers)
    body = response.json()
    assert set(body) == {"error"}
    for value in headers.values():
        assert value.split()[-1] not in response.text  # no credential is ever echoed
    return response.status_code, body["error"]["code"]


async def test_a_valid_token_authenticates(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/api/v1/me", headers=_bearer(_token()))
    assert response.status_code == 200
    assert response.json() == {"id": str(ALICE), "roles": ["user"], "via": "bearer"}


async def test_no_credential_is_401_with_a_bearer_challenge(
    client: AsyncTestClient[Litestar],
) -> None:
    response = await client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_an_expired_token_is_401_token_expired(client: AsyncTestClient[Litestar]) -> None:
    expired = _token(clock=lambda: time.time() - 7200)
    assert await _refusal(client, _bearer(expired)) == (401, "token_expired")


async def test_a_token_for_another_audience_is_refused(client: AsyncTestClient[Litestar]) -> None:
    token = _token(audience="airlock-gateway")
    assert await _refusal(client, _bearer(token)) == (401, "token_invalid")


async def test_a_token_from_another_issuer_is_refused(client: AsyncTestClient[Litestar]) -> None:
    token = _token(issuer="https://gateway.airlock.test")
    assert await _refusal(client, _bearer(token)) == (401, "token_invalid")


async def test_an_unsigned_token_is_refused(client: AsyncTestClient[Litestar]) -> None:
    header, payload, _ = _token().split(".")
    none_header = jwt.utils.base64url_encode(json.dumps({"alg": "none"}).encode()).decode()
    assert await _refusal(client, _bearer(f"{none_header}.{payload}.")) == (401, "token_invalid")
    assert header != none_header


async def test_a_tampered_signature_is_refused(client: AsyncTestClient[Litestar]) -> None:
    header, payload, signature = _token().split(".")
    flipped = signature[:-4] + ("AAAA" if not signature.endswith("AAAA") else "BBBB")
    assert await _refusal(client, _bearer(f"{header}.{payload}.{flipped}")) == (
        401,
        "token_invalid",
    )


async def test_a_refresh_token_is_refused_as_an_access_token(
    client: AsyncTestClient[Litestar], users: Users
) -> None:
    connection = await asyncpg.connect(users.url)
    try:
        refresh, _ = await issue_refresh_token(connection, ALICE)
    finally:
        await connection.close()
    assert await _refusal(client, _bearer(refresh)) == (401, "token_invalid")


async def test_a_jwt_of_another_type_is_refused(client: AsyncTestClient[Litestar]) -> None:
    claims = jwt.decode(_token(), options={"verify_signature": False}) | {"typ": "refresh"}
    forged = jwt.encode(claims, SECRET, algorithm="HS256")
    assert await _refusal(client, _bearer(forged)) == (401, "token_invalid")


async def test_another_authorization_scheme_is_refused(client: AsyncTestClient[Litestar]) -> None:
    assert await _refusal(client, {"Authorization": "Basic YWxpY2U6cHc="}) == (401, "token_invalid")
    assert await _refusal(client, {"Authorization": "Bearer"}) == (401, "token_invalid")


async def test_a_token_of_a_user_whose_session_version_moved_on_is_refused(
    client: AsyncTestClient[Litestar], users: Users
) -> None:
    token = _token()
    await users.change(ALICE, "session_version", 2)  # e.g. the password was changed
    response = await client.get("/api/v1/me", headers=_bearer(token))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_invalid"


async def test_a_deactivated_user_is_refused_at_once(
    client: AsyncTestClient[Litestar], users: Users
) -> None:
    token = _token()
    await users.change(ALICE, "active", False)
    assert await _refusal(client, _bearer(token)) == (403, "account_inactive")


async def test_a_deactivated_user_hears_so_even_when_the_version_moved_on(
    client: AsyncTestClient[Litestar], users: Users
) -> None:
    token = _token()
    await users.change(ALICE, "active", False)
    await users.change(ALICE, "session_version", 2)
    assert await _refusal(client, _bearer(token)) == (403, "account_inactive")


async def test_a_deleted_user_is_refused(client: AsyncTestClient[Litestar], users: Users) -> None:
    token = _token()
    await users.execute("DELETE FROM app_user WHERE id = $1", ALICE)
    assert await _refusal(client, _bearer(token)) == (401, "token_invalid")


async def test_roles_come_from_the_fresh_user_not_the_token(
    client: AsyncTestClient[Litestar],
) -> None:
    stale_admin_token = _token(roles=("admin",))
    assert await _refusal(client, _bearer(stale_admin_token), "/api/v1/admin/batches") == (
        403,
        "forbidden",
    )


async def test_a_user_who_must_change_their_password_may_only_change_it(
    client: AsyncTestClient[Litestar], users: Users
) -> None:
    token = _token(ADMIN, roles=("admin",))
    assert await _refusal(client, _bearer(token), "/api/v1/admin/batches") == (
        403,
        "password_change_required",
    )
    assert await _refusal(client, _bearer(token)) == (403, "password_change_required")
    response = await client.post("/api/v1/auth/password", headers=_bearer(token))
    assert response.status_code == 204
    await users.change(ADMIN, "must_change_password", False)
    response = await client.get("/api/v1/admin/batches", headers=_bearer(token))
    assert response.status_code == 200


async def test_public_routes_need_no_credential(client: AsyncTestClient[Litestar]) -> None:
    assert (await client.post("/api/v1/auth/login")).status_code == 201
    assert (await client.get("/health/live")).status_code == 200
    assert (await client.get("/health")).status_code == 200
    assert (await client.get("/metrics")).status_code == 200
    assert (await client.get("/schema/openapi.json")).status_code == 200


async def test_public_paths_are_anchored(client: AsyncTestClient[Litestar]) -> None:
    assert (await client.get("/api/v1/me", params={"next": "/health"})).status_code == 401


async def test_an_api_key_authenticates_through_the_services_scheme(
    client: AsyncTestClient[Litestar],
) -> None:
    response = await client.get("/api/v1/me", headers={"X-API-Key": API_KEY})
    assert response.status_code == 200
    assert response.json() == {"id": str(ALICE), "roles": ["user"], "via": "api_key"}


async def test_an_unknown_api_key_is_refused(client: AsyncTestClient[Litestar]) -> None:
    assert await _refusal(client, {"X-API-Key": "ak_wrong"}) == (401, "invalid_credentials")


async def test_an_api_key_of_a_deactivated_user_is_refused(
    client: AsyncTestClient[Litestar], users: Users
) -> None:
    await users.change(ALICE, "active", False)
    assert await _refusal(client, {"X-API-Key": API_KEY}) == (403, "account_inactive")


async def test_two_credentials_at_once_are_refused(client: AsyncTestClient[Litestar]) -> None:
    headers = {**_bearer(_token()), "X-API-Key": API_KEY}
    assert await _refusal(client, headers) == (401, "invalid_credentials")


async def test_without_a_user_lookup_the_token_is_the_user() -> None:
    async with AsyncTestClient(_app(AuthConfig(verifier=_verifier()))) as client:
        response = await client.get("/api/v1/me", headers=_bearer(_token(roles=("operator",))))
        assert response.json()["roles"] == ["operator"]
        admin = _token(ADMIN, roles=("admin",))
        assert (
            await client.get("/api/v1/admin/batches", headers=_bearer(admin))
        ).status_code == 200
        pending = AccessTokenIssuer(SECRET, issuer=ISSUER, audience=AUDIENCE).issue(
            ADMIN, roles=["admin"], session_version=1, must_change_password=True
        )
        response = await client.get("/api/v1/me", headers=_bearer(pending.token))
        assert response.json()["error"]["code"] == "password_change_required"
