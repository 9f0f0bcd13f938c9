"""`/api/v1/auth` (authkit's routes), `/api/v1/me` and `/api/v1/api-keys`."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.connection import ASGIConnection
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED

from authkit.accounts import AppUserAccounts
from authkit.routes import AuthServices, auth_controller
from request_gateway.api.context import gateway_user, runtime_of
from request_gateway.domain import api_keys
from request_gateway.domain.api_keys import ApiKeyIn, ApiKeyOut, CreatedApiKey
from request_gateway.domain.audit import Action
from servicekit import audit
from servicekit.connection import client_address

_ACCOUNTS = AppUserAccounts()


def auth_services(connection: ASGIConnection[Any, Any, Any, Any]) -> AuthServices:
    runtime = runtime_of(connection)
    return AuthServices(
        pool=runtime.pool,
        issuer=runtime.issuer,
        login_limiter=runtime.login_limiter,
        store=_ACCOUNTS,
        policy=runtime.refresh_policy,
    )


AuthController = auth_controller(auth_services)


class Limits(msgspec.Struct, frozen=True):
    """The caller's profile type's limits (null until the profile type is synced)."""

    requests_per_minute: int
    burst: int
    allowed_request_types: list[str]
    max_payload_bytes: int
    max_pending_requests: int


class MeOut(msgspec.Struct, frozen=True):
    """The signed-in user, their roles, profile type and current limits."""

    id: uuid.UUID
    username: str
    roles: list[str]
    profile_type: str
    limits: Limits | None
    pending_requests: int


@get("/api/v1/me", tags=["auth"])
async def me(request: Request[Any, Any, Any]) -> MeOut:
    """Who am I, and what may I do."""
    return await read_me(request)


async def read_me(connection: ASGIConnection[Any, Any, Any, Any]) -> MeOut:
    """The signed-in user, their limits and pending requests (the API's and the portal's)."""
    runtime = runtime_of(connection)
    user = await gateway_user(connection)
    profile = await runtime.identity.profile(user.profile_type)
    async with runtime.pool.acquire() as conn:
        pending = await conn.fetchval("SELECT pending FROM user_quota WHERE user_id = $1", user.id)
    limits = None
    if profile is not None:
        limits = Limits(
            profile.requests_per_minute,
            profile.burst,
            sorted(profile.allowed_request_types),
            profile.max_payload_bytes,
            profile.max_pending_requests,
        )
    return MeOut(
        user.id, user.username, sorted(user.roles), user.profile_type, limits, pending or 0
    )


class ApiKeysController(Controller):
    """The caller's API keys: the secret is shown once, at creation."""

    path = "/api/v1/api-keys"
    tags = ("api-keys",)

    @post("/", status_code=HTTP_201_CREATED)
    async def create(
        self, request: Request[Any, Any, Any], data: JSONBody[ApiKeyIn]
    ) -> CreatedApiKey:
        """Make a key; `key` in the answer is the only time it is shown."""
        return await create_api_key(request, data)

    @get("/")
    async def list_keys(self, request: Request[Any, Any, Any]) -> list[ApiKeyOut]:
        """Every key of the caller, without secrets."""
        user = await gateway_user(request)
        async with runtime_of(request).pool.acquire() as conn:
            return await api_keys.list_keys(conn, user.id)

    @delete("/{key_id:uuid}", status_code=200)
    async def revoke(
        self, request: Request[Any, Any, Any], key_id: FromPath[uuid.UUID]
    ) -> ApiKeyOut:
        """Revoke a key at once (every server process forgets it)."""
        return await revoke_api_key(request, key_id)


async def create_api_key(
    connection: ASGIConnection[Any, Any, Any, Any], data: ApiKeyIn
) -> CreatedApiKey:
    """Make a key for the signed-in user, audited (the API's and the portal's)."""
    runtime = runtime_of(connection)
    user = await gateway_user(connection)
    async with runtime.pool.acquire() as conn:
        created = await api_keys.create(
            conn,
            user.id,
            data,
            max_days=runtime.settings.api_key_days,
            max_keys=runtime.settings.max_api_keys,
        )
        await audit.record(
            conn,
            audit.Actor(user.id, user.username, client_address(connection)),
            Action.API_KEY_CREATED,
            target=str(created.api_key.id),
            details={"prefix": created.api_key.prefix, "name": data.name},
        )
    return created


async def revoke_api_key(
    connection: ASGIConnection[Any, Any, Any, Any], key_id: uuid.UUID
) -> ApiKeyOut:
    """Revoke one of the signed-in user's keys, audited (the API's and the portal's)."""
    user = await gateway_user(connection)
    async with runtime_of(connection).pool.acquire() as conn:
        revoked = await api_keys.revoke(conn, user.id, key_id)
        await audit.record(
            conn,
            audit.Actor(user.id, user.username, client_address(connection)),
            Action.API_KEY_REVOKED,
            target=str(key_id),
            details={"prefix": revoked.prefix},
        )
    return revoked
