"""`/api/v1/profile-types`: admins manage them; operators read them."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, patch, post
from litestar.params import JSONBody

from response_processor.api.context import actor_of, runtime_of
from response_processor.api.guards import MANAGE, READ
from response_processor.domain.profile_types import (
    ProfileTypeIn,
    ProfileTypeOut,
    ProfileTypePatch,
    create_profile_type,
    get_profile_type,
    list_profile_types,
    update_profile_type,
)
from servicekit.fields import TextPath


class ProfileTypesController(Controller):
    """Profile types; the gateway receives every change through the link."""

    path = "/api/v1/profile-types"
    tags = ("profile types",)

    @get("/", guards=[READ])
    async def list(self, request: Request[Any, Any, Any]) -> list[ProfileTypeOut]:
        """Every profile type."""
        async with runtime_of(request).pool.acquire() as conn:
            return await list_profile_types(conn)

    @post("/", guards=[MANAGE])
    async def create(
        self, request: Request[Any, Any, Any], data: JSONBody[ProfileTypeIn]
    ) -> ProfileTypeOut:
        """Create a profile type (201)."""
        async with runtime_of(request).pool.acquire() as conn:
            return await create_profile_type(conn, data, actor_of(request))

    @get("/{name:str}", guards=[READ])
    async def read(self, request: Request[Any, Any, Any], name: TextPath) -> ProfileTypeOut:
        """One profile type."""
        async with runtime_of(request).pool.acquire() as conn:
            return await get_profile_type(conn, name)

    @patch("/{name:str}", guards=[MANAGE])
    async def update(
        self, request: Request[Any, Any, Any], name: TextPath, data: JSONBody[ProfileTypePatch]
    ) -> ProfileTypeOut:
        """Change a profile type (its version goes up; the gateway takes the new one)."""
        async with runtime_of(request).pool.acquire() as conn:
            return await update_profile_type(conn, name, data, actor_of(request))
