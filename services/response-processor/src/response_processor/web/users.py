"""Users: list and search (operators and admins); create, edit, deactivate, reset (admins).

Each form decodes into the API's own `UserIn` / `UserPatch` and calls the same domain
functions, so the rules, the audit rows and the sync to the gateway are the API's.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Final
from urllib.parse import urlencode

from litestar import Controller, Request, get, post
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template

from authkit.web import PASSWORD_PROBLEMS
from response_processor.api.context import actor_of, runtime_of
from response_processor.api.guards import MANAGE, READ
from response_processor.domain.profile_types import list_profile_types
from response_processor.domain.users import (
    UserIn,
    UserPatch,
    create_user,
    get_user,
    list_users,
    update_user,
)
from response_processor.web.render import render
from servicekit.errors import ApiError
from servicekit.fields import NO_NUL
from servicekit.paging import Cursor
from servicekit.web import flash, see_other
from servicekit.web.forms import decode_form, field_errors, form_fields

PAGE_SIZE: Final = 50
ROLES: Final = ("user", "operator", "admin")
Search = Annotated[str | None, QueryParameter(max_length=64, pattern=NO_NUL)]


class UserPages(Controller):
    """``/console/users``."""

    path = "/users"

    @get("/", guards=[READ])
    async def index(
        self, request: Request[Any, Any, Any], q: Search = None, cursor: Cursor = None
    ) -> Template:
        """Users by name; ``q`` keeps those whose name contains it."""
        async with runtime_of(request).pool.acquire() as conn:
            page = await list_users(conn, cursor=cursor, limit=PAGE_SIZE, name_contains=q or None)
        next_url = None
        if page.next_cursor is not None:
            query = urlencode({**({"q": q} if q else {}), "cursor": page.next_cursor})
            next_url = f"{request.url.path}?{query}"
        return render(request, "users.html", users=page.items, q=q or "", next_url=next_url)

    @get("/new", guards=[MANAGE])
    async def new(self, request: Request[Any, Any, Any]) -> Template:
        """The form for a new user."""
        return await _user_form(request, None, {}, {"roles": ["user"]})

    @post("/new", guards=[MANAGE])
    async def create(self, request: Request[Any, Any, Any]) -> Template | Redirect:
        """Create the user (the API's `create_user`)."""
        fields = await form_fields(request, lists=("roles",))
        fields["must_change_password"] = "must_change_password" in fields
        try:
            data = decode_form(fields, UserIn)
            async with runtime_of(request).pool.acquire() as conn:
                user = await create_user(conn, data, actor_of(request))
        except ApiError as exc:
            fields.pop("password", None)
            return await _user_form(
                request, None, field_errors(exc, PASSWORD_PROBLEMS), fields, exc.status_code
            )
        flash(request, f"User {user.username} created.", "success")
        return see_other(f"{request.app.route_reverse('console-user', user_id=user.id)}")

    @get("/{user_id:uuid}", guards=[READ], name="console-user")
    async def show(self, request: Request[Any, Any, Any], user_id: FromPath[uuid.UUID]) -> Template:
        """One user; admins get the edit, deactivate and reset forms."""
        async with runtime_of(request).pool.acquire() as conn:
            user = await get_user(conn, user_id)
        return await _user_form(request, user, {}, {})

    @post("/{user_id:uuid}", guards=[MANAGE])
    async def update(
        self, request: Request[Any, Any, Any], user_id: FromPath[uuid.UUID]
    ) -> Template | Redirect:
        """Roles, profile type, active, must-change (the API's `update_user`)."""
        fields = await form_fields(request, lists=("roles",))
        changes = {
            "roles": fields.get("roles", []),
            "profile_type": fields.get("profile_type", ""),
            "active": "active" in fields,
            "must_change_password": "must_change_password" in fields,
        }
        return await _apply(request, user_id, changes, "Changes saved.")

    @post("/{user_id:uuid}/password", guards=[MANAGE])
    async def reset_password(
        self, request: Request[Any, Any, Any], user_id: FromPath[uuid.UUID]
    ) -> Template | Redirect:
        """A new password: every session of the user ends (and API keys, when asked)."""
        fields = await form_fields(request)
        changes = {
            "password": fields.get("password", ""),
            "must_change_password": "must_change_password" in fields,
            "revoke_api_keys": "revoke_api_keys" in fields,
        }
        keys = " and API keys on the gateway" if changes["revoke_api_keys"] else ""
        done = f"Password reset: every session{keys} of this user ended; they sign in anew."
        return await _apply(request, user_id, changes, done)


async def _apply(
    request: Request[Any, Any, Any], user_id: uuid.UUID, changes: dict[str, Any], done: str
) -> Template | Redirect:
    runtime = runtime_of(request)
    try:
        patch = decode_form(changes, UserPatch)
        async with runtime.pool.acquire() as conn:
            user = await update_user(conn, user_id, patch, actor_of(request))
    except ApiError as exc:
        if exc.status_code == 404:
            raise
        async with runtime.pool.acquire() as conn:
            current = await get_user(conn, user_id)
        return await _user_form(
            request, current, field_errors(exc, PASSWORD_PROBLEMS), {}, exc.status_code
        )
    flash(request, done, "success")
    return see_other(request.app.route_reverse("console-user", user_id=user.id))


async def _user_form(
    request: Request[Any, Any, Any],
    user: Any,
    errors: dict[str, str],
    values: dict[str, Any],
    status_code: int = 200,
) -> Template:
    async with runtime_of(request).pool.acquire() as conn:
        profile_types = await list_profile_types(conn)
    return render(
        request,
        "user.html",
        status_code,
        subject=user,
        errors=errors,
        values=values,
        roles=ROLES,
        profile_types=[profile_type.name for profile_type in profile_types],
    )
