"""Signing in to the console and out of it, and the forced first password change.

A console session is an ordinary login (`authkit.routes.log_in`: the same limits, checks
and audit rows as ``POST /api/v1/auth/login``) whose refresh token stays on the server,
in the session; the browser holds only the session's random id. Every page reads the user
afresh: a deactivation or a password change (which moves the session version on) ends the
session at once, and signing out revokes the refresh token like ``POST /auth/logout``.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from litestar import Controller, Request, get, post
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromQuery
from litestar.response import Redirect, Template
from litestar.types import Guard

from authkit.guards import ALLOW_PASSWORD_CHANGE_PENDING, PASSWORD_CHANGE_PENDING_OPT
from authkit.middleware import UserLoader
from authkit.routes import LoginIn, RefreshIn, TokensOut, log_in, log_out
from response_processor.api.auth import PasswordIn, auth_services, change_own_password
from response_processor.api.context import runtime_of
from response_processor.domain.users import get_user
from response_processor.web.forms import FORM_ERROR, decode_form, field_errors, form_fields
from response_processor.web.render import render
from servicekit.errors import ApiError
from servicekit.web import WebConfig, flash, renew_session, see_other

USER_ID: Final = "user_id"
SESSION_VERSION: Final = "session_version"
REFRESH_TOKEN: Final = "refresh_token"  # noqa: S105 - the session key's name
USERNAME: Final = "username"


class SignInRequired(Exception):
    """No session, or one that has ended (``ended``): the sign-in page comes next."""

    def __init__(self, *, ended: bool) -> None:
        super().__init__("sign in required")
        self.ended = ended


class PasswordChangeDue(Exception):
    """The user must change their password before anything else."""


def signed_in_guard(load_user: UserLoader) -> Guard:
    """The session's user, read afresh, on ``request.user`` (or `SignInRequired`)."""

    async def guard(
        connection: ASGIConnection[Any, Any, Any, Any], route_handler: BaseRouteHandler
    ) -> None:
        # Litestar's automatic OPTIONS answer names the methods only, like the API's.
        if connection.scope.get("method") == "OPTIONS":
            return
        session = connection.scope.get("session")
        data = session if isinstance(session, dict) else {}
        user_id = _uuid(data.get(USER_ID))
        if user_id is None:
            raise SignInRequired(ended=False)
        user = await load_user(user_id)
        if user is None or not user.active or user.session_version != data.get(SESSION_VERSION):
            connection.clear_session()
            raise SignInRequired(ended=True)
        connection.scope["user"] = user
        if user.must_change_password and not route_handler.opt.get(ALLOW_PASSWORD_CHANGE_PENDING):
            raise PasswordChangeDue

    return guard


def session_controller(web: WebConfig) -> type[Controller]:
    """``/login`` and ``/logout``: the pages that need no session."""

    class SessionPages(Controller):
        """Sign in, sign out."""

        path = "/"

        @get("/login")
        async def login_form(
            self,
            request: Request[Any, Any, Any],
            next: FromQuery[str | None] = None,
            ended: FromQuery[bool] = False,
        ) -> Template:
            """The sign-in form."""
            notice = "Your session has ended; please sign in again." if ended else None
            return render(request, "login.html", next=_safe_next(web, next), notice=notice)

        @post("/login")
        async def login(self, request: Request[Any, Any, Any]) -> Template | Redirect:
            """Check the username and password like the API's login; start a session."""
            fields = await form_fields(request)
            next_path = _safe_next(web, fields.pop("next", None))
            try:
                data = decode_form(fields, LoginIn)
                tokens = await log_in(auth_services(request), request, data)
            except ApiError as exc:
                return render(
                    request,
                    "login.html",
                    exc.status_code,
                    next=next_path,
                    entered_username=fields.get("username", ""),
                    errors={FORM_ERROR: exc.message},
                )
            await _start(request, web, tokens)
            return see_other(next_path or f"{web.prefix}/")

        @post("/logout")
        async def logout(self, request: Request[Any, Any, Any]) -> Redirect:
            """Revoke the session's refresh token (audited like the API's logout); end it."""
            session = request.scope.get("session")
            token = session.get(REFRESH_TOKEN) if isinstance(session, dict) else None
            if isinstance(token, str):
                await log_out(auth_services(request), request, RefreshIn(token))
            request.clear_session()
            return see_other(f"{web.prefix}/login")

    return SessionPages


def password_controller(web: WebConfig) -> type[Controller]:
    """``/password``: one's own password change, open while a change is due."""

    class PasswordPages(Controller):
        """Change one's password."""

        path = "/password"
        opt = dict(PASSWORD_CHANGE_PENDING_OPT)  # noqa: RUF012 - Litestar's own attribute

        @get("/")
        async def form(self, request: Request[Any, Any, Any]) -> Template:
            """The password form (the only page open while a change is due)."""
            return render(request, "password.html", errors={})

        @post("/")
        async def change(self, request: Request[Any, Any, Any]) -> Template | Redirect:
            """The API's password change; then a new session with the new password."""
            fields = await form_fields(request)
            current, new = fields.get("current_password", ""), fields.get("new_password", "")
            if new != fields.get("confirm_password", ""):
                errors = {"confirm_password": "The two new passwords differ."}
                return render(request, "password.html", 400, errors=errors)
            try:
                decode_form({"current_password": current, "new_password": new}, PasswordIn)
                changed = await change_own_password(request, current, new)
            except ApiError as exc:
                errors = field_errors(exc)
                if "password" in errors:
                    errors["new_password"] = errors.pop("password")
                return render(request, "password.html", exc.status_code, errors=errors)
            # The change ended every session, this one too: sign in again with the new one.
            login = LoginIn(changed.username, new)
            await _start(request, web, await log_in(auth_services(request), request, login))
            flash(request, "Your password has been changed.", "success")
            return see_other(f"{web.prefix}/")

    return PasswordPages


async def _start(request: Request[Any, Any, Any], web: WebConfig, tokens: TokensOut) -> None:
    claims = runtime_of(request).verifier.verify(tokens.access_token)
    async with runtime_of(request).pool.acquire() as conn:
        username = (await get_user(conn, claims.sub)).username
    session = {
        USER_ID: str(claims.sub),
        USERNAME: username,
        SESSION_VERSION: claims.pv,
        REFRESH_TOKEN: tokens.refresh_token,
    }
    await renew_session(request, web, session)


def _safe_next(web: WebConfig, target: object) -> str | None:
    """Only a path of the console itself may be a redirect target (never another site)."""
    if not isinstance(target, str):
        return None
    if target != web.prefix and not target.startswith(f"{web.prefix}/"):
        return None
    if "//" in target or "\\" in target or any(ord(char) < 32 for char in target):
        return None
    return target


def _uuid(value: object) -> uuid.UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
