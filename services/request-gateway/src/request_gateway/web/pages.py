"""The portal's pages: one's own requests (submit, follow, list, cancel), API keys, limits.

Every page calls the API's own functions (`submit_request`, the domain's listing and
cancel, `create_api_key`, `revoke_api_key`, `read_me`, the event stream): the same rules,
limits and audit. The request pages name the stream of changes after the ones they show
(``/portal/requests/events?last_event_id=N``), so a script following it misses none.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Final

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect, ServerSentEvent, Template

from authkit.guards import PASSWORD_CHANGE_PENDING_OPT
from request_gateway.api.account import create_api_key, read_me, revoke_api_key
from request_gateway.api.context import gateway_user, runtime_of
from request_gateway.api.request_events import LastEventId, LastEventIdQuery, event_stream
from request_gateway.api.requests import RequestIn, submit_request
from request_gateway.domain import api_keys, requests
from request_gateway.domain.api_keys import ApiKeyIn
from request_gateway.domain.requests import Status
from request_gateway.web.render import render
from servicekit.errors import ApiError
from servicekit.fields import NO_NUL
from servicekit.web import flash, see_other
from servicekit.web.forms import FORM_ERROR, decode_form, field_errors, form_fields

PAGE_SIZE: Final = 25
FINAL: Final = frozenset({"completed", "failed", "cancelled", "expired"})
Cursor = Annotated[str | None, QueryParameter(max_length=200, pattern=NO_NUL)]


class RequestPages(Controller):
    """``/portal/requests``: the signed-in user's own requests."""

    path = "/requests"

    @get("/")
    async def index(
        self,
        request: Request[Any, Any, Any],
        status: FromQuery[Status | None] = None,
        cursor: Cursor = None,
    ) -> Template:
        """Newest first, filtered by status; the submit form on top."""
        user = await gateway_user(request)
        async with runtime_of(request).pool.acquire() as conn:
            seen = await requests.latest_change(conn, user.id)
            listing = await requests.list_page(
                conn, user_id=user.id, status=status, cursor=cursor, limit=PAGE_SIZE
            )
        return await _index(request, listing, seen, status, {}, {})

    @post("/")
    async def submit(self, request: Request[Any, Any, Any]) -> Template | Redirect:
        """Submit (the API's submit); payload errors are shown beside the field."""
        fields = await form_fields(request)
        errors: dict[str, str] = {}
        try:
            payload = msgspec.json.decode(str(fields.get("payload") or "{}"))
        except msgspec.DecodeError as exc:
            errors = {"payload": f"Not valid JSON: {exc}"}
        if not errors:
            try:
                data = decode_form({"type": fields.get("type"), "payload": payload}, RequestIn)
                submitted = await submit_request(request, data, None)
            except ApiError as exc:
                errors = field_errors(exc)
            else:
                assert isinstance(submitted.content, requests.RequestOut)
                flash(request, "Request submitted.", "success")
                return see_other(f"{request.url.path.rstrip('/')}/{submitted.content.id}")
        user = await gateway_user(request)
        async with runtime_of(request).pool.acquire() as conn:
            seen = await requests.latest_change(conn, user.id)
            listing = await requests.list_page(
                conn, user_id=user.id, status=None, cursor=None, limit=PAGE_SIZE
            )
        return await _index(request, listing, seen, None, errors, fields, 400)

    @get("/events", name="portal_request_events")
    async def events(
        self,
        request: Request[Any, Any, Any],
        last_event_id: LastEventId = None,
        after: LastEventIdQuery = None,
    ) -> ServerSentEvent:
        """The API's event stream (`GET /api/v1/requests/events`, same bounds) for the
        session's user: what the pages' script follows."""
        return await event_stream(request, last_event_id if last_event_id is not None else after)

    @get("/{request_id:uuid}")
    async def show(
        self, request: Request[Any, Any, Any], request_id: FromPath[uuid.UUID]
    ) -> Template:
        """One request; until it is final, the page follows its changes (with scripts on)."""
        user = await gateway_user(request)
        async with runtime_of(request).pool.acquire() as conn:
            seen = await requests.latest_change(conn, user.id)
            found = await requests.get(conn, request_id, user.id)
        return render(
            request,
            "request.html",
            item=found,
            final=found.status in FINAL,
            events_url=_events_url(request, seen),
        )

    @post("/{request_id:uuid}/cancel")
    async def cancel(
        self, request: Request[Any, Any, Any], request_id: FromPath[uuid.UUID]
    ) -> Redirect:
        """Cancel (the API's cancel): at once when queued, else forwarded."""
        user = await gateway_user(request)
        async with runtime_of(request).pool.acquire() as conn:
            _, settled = await requests.cancel(conn, request_id, user.id)
        said = "Request cancelled." if settled else "Cancel forwarded to the processor."
        flash(request, said, "success")
        return see_other(request.url.path.removesuffix("/cancel"))


def _events_url(request: Request[Any, Any, Any], seen: int) -> str:
    """The portal's stream of the user's changes after number `seen` (what the page shows)."""
    return f"{request.app.route_reverse('portal_request_events')}?last_event_id={seen}"


async def _index(
    request: Request[Any, Any, Any],
    listing: requests.Page,
    seen: int,
    status: str | None,
    errors: dict[str, str],
    values: dict[str, Any],
    status_code: int = 200,
) -> Template:
    me = await read_me(request)
    return render(
        request,
        "requests.html",
        status_code,
        listing=listing,
        events_url=_events_url(request, seen),
        final_statuses=FINAL,
        status=status or "",
        statuses=["queued", "exported", "delivered", "completed", "failed", "cancelled", "expired"],
        request_types=me.limits.allowed_request_types if me.limits else [],
        errors=errors,
        values=values,
    )


class KeyPages(Controller):
    """``/portal/api-keys``: create (shown once), list, revoke."""

    path = "/api-keys"

    @get("/")
    async def index(self, request: Request[Any, Any, Any]) -> Template:
        """The user's keys, without their secrets."""
        return await _keys(request, {}, None)

    @post("/")
    async def create(self, request: Request[Any, Any, Any]) -> Template:
        """Make a key; the page shows it this once."""
        fields = await form_fields(request)
        if not fields.get("expires_in_days"):
            fields.pop("expires_in_days", None)
        try:
            created = await create_api_key(request, decode_form(fields, ApiKeyIn))
        except ApiError as exc:
            return await _keys(request, field_errors(exc), None, exc.status_code)
        return await _keys(request, {}, created)

    @post("/{key_id:uuid}/revoke")
    async def revoke(
        self, request: Request[Any, Any, Any], key_id: FromPath[uuid.UUID]
    ) -> Redirect:
        """Revoke at once."""
        revoked = await revoke_api_key(request, key_id)
        flash(request, f"Key {revoked.name} ({revoked.prefix}…) revoked.", "success")
        return see_other(request.url.path.removesuffix(f"/{key_id}/revoke"))


async def _keys(
    request: Request[Any, Any, Any], errors: dict[str, str], created: Any, status_code: int = 200
) -> Template:
    user = await gateway_user(request)
    async with runtime_of(request).pool.acquire() as conn:
        keys = await api_keys.list_keys(conn, user.id)
    return render(request, "api_keys.html", status_code, keys=keys, created=created, errors=errors)


@get("/")
async def home(request: Request[Any, Any, Any]) -> Template:
    """Who you are and your limits."""
    return render(request, "home.html", me=await read_me(request), form_error=FORM_ERROR)


@get("/password", opt=dict(PASSWORD_CHANGE_PENDING_OPT))
async def password_due(request: Request[Any, Any, Any]) -> Template:
    """A password change is due: it is made on the response network."""
    return render(request, "password.html")
