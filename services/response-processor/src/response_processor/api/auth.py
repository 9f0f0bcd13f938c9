"""The processor's own auth routes: `POST /api/v1/auth/password` and `GET /api/v1/me`.

Login, refresh and logout are `authkit.routes`, mounted by `response_processor.app`.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.connection import ASGIConnection
from litestar.params import JSONBody
from litestar.status_codes import HTTP_204_NO_CONTENT

from authkit.guards import PASSWORD_CHANGE_PENDING_OPT
from authkit.identity import current_user
from authkit.routes import AuthServices, verify_password_attempt
from response_processor.api.context import runtime_of
from response_processor.domain.users import UserOut, get_user, set_password
from servicekit.connection import client_address

Secret = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


class PasswordIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """DESIGN: `{"current_password", "new_password"}`."""

    current_password: Secret
    new_password: Secret


class PasswordController(Controller):
    """A user's own password change, the one route open while a change is due."""

    path = "/api/v1/auth"
    tags = ("auth",)

    @post("/password", opt=dict(PASSWORD_CHANGE_PENDING_OPT), status_code=HTTP_204_NO_CONTENT)
    async def change_password(
        self, request: Request[Any, Any, Any], data: JSONBody[PasswordIn]
    ) -> None:
        """Change one's own password; every session ends, log in again with the new one."""
        await change_own_password(request, data.current_password, data.new_password)


async def change_own_password(
    connection: ASGIConnection[Any, Any, Any, Any], current_password: str, new_password: str
) -> UserOut:
    """The signed-in user's password change (the API's and the console's): the current
    password is checked as a login attempt (limited, audited), then every session ends."""
    runtime = runtime_of(connection)
    user = current_user(connection)
    async with runtime.pool.acquire() as conn:
        username = (await get_user(conn, user.id)).username
    # A login attempt like any other: limited and audited, so it cannot be used to guess.
    await verify_password_attempt(
        auth_services(connection), username, current_password, client_address(connection)
    )
    async with runtime.pool.acquire() as conn:
        return await set_password(conn, user.id, new_password)


@get("/api/v1/me", tags=["auth"])
async def me(request: Request[Any, Any, Any]) -> UserOut:
    """The signed-in user."""
    async with runtime_of(request).pool.acquire() as conn:
        return await get_user(conn, current_user(request).id)


def auth_services(connection: ASGIConnection[Any, Any, Any, Any]) -> AuthServices:
    """The login routes' services, built by the app's lifespan."""
    services: AuthServices = connection.app.state.auth_services
    return services
