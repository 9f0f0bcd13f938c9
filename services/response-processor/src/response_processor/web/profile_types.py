"""Profile types: listed for operators and admins; created and changed by admins.

The forms decode into the API's `ProfileTypeIn` / `ProfileTypePatch` and call its domain
functions (same rules, same audit rows, same sync record for the gateway).
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template

from response_processor.api.context import actor_of, runtime_of
from response_processor.api.guards import MANAGE, READ
from response_processor.domain.profile_types import (
    ProfileTypeIn,
    ProfileTypePatch,
    create_profile_type,
    get_profile_type,
    list_profile_types,
    update_profile_type,
)
from response_processor.web.render import render
from servicekit.errors import ApiError
from servicekit.fields import TextPath
from servicekit.web import flash, see_other
from servicekit.web.forms import decode_form, field_errors, form_fields

LIMIT_FIELDS = ("requests_per_minute", "burst", "max_payload_bytes", "max_pending_requests")


class ProfileTypePages(Controller):
    """``/console/profile-types``."""

    path = "/profile-types"

    @get("/", guards=[READ])
    async def index(self, request: Request[Any, Any, Any]) -> Template:
        """Every profile type, with the form for a new one (admins)."""
        return await _listing(request, {}, {})

    @post("/", guards=[MANAGE])
    async def create(self, request: Request[Any, Any, Any]) -> Template | Redirect:
        """Create a profile type (the API's `create_profile_type`)."""
        fields = _with_types(await form_fields(request))
        try:
            data = decode_form(fields, ProfileTypeIn)
            async with runtime_of(request).pool.acquire() as conn:
                created = await create_profile_type(conn, data, actor_of(request))
        except ApiError as exc:
            return await _listing(request, field_errors(exc), fields, exc.status_code)
        flash(request, f"Profile type {created.name} created.", "success")
        return see_other(f"{request.url.path}")

    @get("/{name:str}", guards=[READ])
    async def show(self, request: Request[Any, Any, Any], name: TextPath) -> Template:
        """One profile type; admins may change its limits."""
        async with runtime_of(request).pool.acquire() as conn:
            profile_type = await get_profile_type(conn, name)
        return render(request, "profile_type.html", profile_type=profile_type, errors={})

    @post("/{name:str}", guards=[MANAGE])
    async def update(self, request: Request[Any, Any, Any], name: TextPath) -> Template | Redirect:
        """Change the limits (the API's `update_profile_type`: the version goes up)."""
        fields = _with_types(await form_fields(request))
        runtime = runtime_of(request)
        try:
            patch = decode_form(fields, ProfileTypePatch)
            async with runtime.pool.acquire() as conn:
                await update_profile_type(conn, name, patch, actor_of(request))
        except ApiError as exc:
            if exc.status_code == 404:
                raise
            async with runtime.pool.acquire() as conn:
                current = await get_profile_type(conn, name)
            return render(
                request,
                "profile_type.html",
                exc.status_code,
                profile_type=current,
                errors=field_errors(exc),
            )
        flash(request, f"Profile type {name} saved.", "success")
        return see_other(request.url.path)


def _with_types(fields: dict[str, Any]) -> dict[str, Any]:
    """The request types field is one comma- or line-separated text."""
    text = str(fields.pop("allowed_request_types", ""))
    types = [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]
    return {**fields, "allowed_request_types": types}


async def _listing(
    request: Request[Any, Any, Any],
    errors: dict[str, str],
    values: dict[str, Any],
    status_code: int = 200,
) -> Template:
    async with runtime_of(request).pool.acquire() as conn:
        profile_types = await list_profile_types(conn)
    return render(
        request,
        "profile_types.html",
        status_code,
        profile_types=profile_types,
        errors=errors,
        values=values,
    )
