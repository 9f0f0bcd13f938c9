"""`/api/v1/users`: admins manage users; operators read them."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, get, patch, post
from litestar.params import FromPath, JSONBody, QueryParameter

from response_processor.api.context import actor_of, runtime_of
from response_processor.api.guards import MANAGE, READ
from response_processor.domain.users import (
    UserIn,
    UserOut,
    UserPage,
    UserPatch,
    create_user,
    get_user,
    list_users,
    update_user,
)
from servicekit.paging import Cursor


class UsersController(Controller):
    """Users of both networks; the gateway receives every change through the link."""

    path = "/api/v1/users"
    tags = ("users",)

    @get("/", guards=[READ])
    async def list(
        self,
        request: Request[Any, Any, Any],
        cursor: Cursor = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> UserPage:
        """Users by username; pass `next_cursor` as `cursor` for the next page."""
        async with runtime_of(request).pool.acquire() as conn:
            return await list_users(conn, cursor=cursor, limit=limit)

    @post("/", guards=[MANAGE])
    async def create(self, request: Request[Any, Any, Any], data: JSONBody[UserIn]) -> UserOut:
        """Create a user (201 with its id)."""
        async with runtime_of(request).pool.acquire() as conn:
            return await create_user(conn, data, actor_of(request))

    @get("/{user_id:uuid}", guards=[READ])
    async def read(self, request: Request[Any, Any, Any], user_id: FromPath[uuid.UUID]) -> UserOut:
        """One user."""
        async with runtime_of(request).pool.acquire() as conn:
            return await get_user(conn, user_id)

    @patch("/{user_id:uuid}", guards=[MANAGE])
    async def update(
        self,
        request: Request[Any, Any, Any],
        user_id: FromPath[uuid.UUID],
        data: JSONBody[UserPatch],
    ) -> UserOut:
        """Change a user; `{"active": false}` deactivates it everywhere at once."""
        async with runtime_of(request).pool.acquire() as conn:
            return await update_user(conn, user_id, data, actor_of(request))
