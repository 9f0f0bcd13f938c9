"""Signing in to a service's pages (`servicekit.web`) with authkit's own login.

A page session is an ordinary login (`authkit.routes.log_in`: the same limits, checks and
audit rows as ``POST /api/v1/auth/login``) whose refresh token stays on the server, in the
session; the browser holds only the session's random id. `signed_in_guard` reads the user
afresh on every page: a deactivation or a password change (which moves the session version
on) ends the session at once. Signing out revokes the refresh token like the API's logout.

    sign_in = WebSignIn(web, services_of, verifier, render)
    pages = web.router([sign_in.controller(), Router("/", guards=[signed_in_guard(load_user)],
                                                     route_handlers=[...])],
                       exception_handlers={**sign_in.exception_handlers(), ...})
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from litestar import Controller, Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromQuery
from litestar.response import Redirect, Template
from litestar.types import ExceptionHandlersMap, Guard

from authkit.guards import ALLOW_PASSWORD_CHANGE_PENDING
from authkit.identity import AuthUser
from authkit.middleware import UserLoader
from authkit.passwords import MIN_PASSWORD_LENGTH, PasswordProblem
from authkit.routes import LoginIn, RefreshIn, ServicesOf, TokensOut, log_in, log_out
from authkit.tokens import AccessTokenVerifier
from servicekit.errors import ApiError
from servicekit.web import WebConfig, page, renew_session, see_other
from servicekit.web.forms import FORM_ERROR, decode_form, form_fields
from servicekit.web.site import Render

__all__ = [
    "PASSWORD_PROBLEMS",
    "PasswordChangeDue",
    "SignInRequired",
    "WebSignIn",
    "page_renderer",
    "signed_in_guard",
]

USER_ID: Final = "user_id"
SESSION_VERSION: Final = "session_version"
REFRESH_TOKEN: Final = "refresh_token"  # noqa: S105 - the session key's name
USERNAME: Final = "username"

PASSWORD_PROBLEMS: Final[Mapping[str, str]] = {
    PasswordProblem.TOO_SHORT: f"Use at least {MIN_PASSWORD_LENGTH} characters.",
    PasswordProblem.TOO_LONG: "That password is too long.",
    PasswordProblem.SAME_AS_USERNAME: "The password may not be the username.",
    PasswordProblem.TOO_COMMON: "That password is too common; choose another.",
}
"""What to say for each of a weak password's problem codes (`servicekit.web.forms`)."""


def page_renderer(
    folder: str, rights: Callable[[AuthUser | None], Mapping[str, Any]] | None = None
) -> Render:
    """A service's `Render`: ``{folder}/{template}`` with the signed-in user (None on the
    sign-in page), their username, the page's path and what `rights` adds for the user."""

    def render(
        request: Request[Any, Any, Any], template: str, status_code: int = 200, **context: Any
    ) -> Template:
        scoped = request.scope.get("user")
        user = scoped if isinstance(scoped, AuthUser) else None
        session = request.scope.get("session")
        username = session.get(USERNAME) if user and isinstance(session, dict) else None
        return page(
            request,
            f"{folder}/{template}",
            status_code,
            user=user,
            username=username,
            path=request.url.path,
            **(rights(user) if rights else {}),
            **context,
        )

    return render


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


@dataclass(frozen=True)
class WebSignIn:
    """The sign-in and sign-out pages of one service, and starting a session."""

    web: WebConfig
    services_of: ServicesOf
    verifier: AccessTokenVerifier
    render: Render
    password_path: str = "/password"  # noqa: S105 - a path, not a password

    def controller(self) -> type[Controller]:
        """``/login`` (GET, POST) and ``/logout`` (POST): the pages that need no session."""
        sign_in = self

        class SignInPages(Controller):
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
                return sign_in.render(
                    request, "login.html", next=sign_in.safe_next(next), notice=notice
                )

            @post("/login")
            async def login(self, request: Request[Any, Any, Any]) -> Template | Redirect:
                """Check the username and password like the API's login; start a session."""
                fields = await form_fields(request)
                next_path = sign_in.safe_next(fields.pop("next", None))
                try:
                    data = decode_form(fields, LoginIn)
                    tokens = await log_in(sign_in.services_of(request), request, data)
                except ApiError as exc:
                    return sign_in.render(
                        request,
                        "login.html",
                        exc.status_code,
                        next=next_path,
                        entered_username=fields.get("username", ""),
                        errors={FORM_ERROR: exc.message},
                    )
                await sign_in.start(request, tokens)
                return see_other(next_path or f"{sign_in.web.prefix}/")

            @post("/logout")
            async def logout(self, request: Request[Any, Any, Any]) -> Redirect:
                """Revoke the session's refresh token (audited like the API's logout)."""
                session = request.scope.get("session")
                token = session.get(REFRESH_TOKEN) if isinstance(session, dict) else None
                if isinstance(token, str):
                    await log_out(sign_in.services_of(request), request, RefreshIn(token))
                request.clear_session()
                return see_other(f"{sign_in.web.prefix}/login")

        return SignInPages

    async def log_in_again(
        self, request: Request[Any, Any, Any], username: str, password: str
    ) -> None:
        """After one's own password change (which ended every session): a new one."""
        tokens = await log_in(self.services_of(request), request, LoginIn(username, password))
        await self.start(request, tokens)

    async def start(self, request: Request[Any, Any, Any], tokens: TokensOut) -> None:
        """A new session (under a new id) for the user the tokens were issued to."""
        claims = self.verifier.verify(tokens.access_token)
        services = self.services_of(request)
        async with services.pool.acquire() as conn:
            account = await services.store.get(conn, claims.sub)
        session = {
            USER_ID: str(claims.sub),
            USERNAME: account.username if account is not None else "",
            SESSION_VERSION: claims.pv,
            REFRESH_TOKEN: tokens.refresh_token,
        }
        await renew_session(request, self.web, session)

    def safe_next(self, target: object) -> str | None:
        """Only a path of these pages may be a redirect target (never another site)."""
        prefix = self.web.prefix
        if not isinstance(target, str):
            return None
        if target != prefix and not target.startswith(f"{prefix}/"):
            return None
        if "//" in target or "\\" in target or any(ord(char) < 32 for char in target):
            return None
        return target

    def exception_handlers(self) -> ExceptionHandlersMap:
        """Redirects: to the sign-in page, or to the password change that is due."""
        prefix, password_path = self.web.prefix, self.password_path

        def to_sign_in(request: Request[Any, Any, Any], exc: SignInRequired) -> Response[Any]:
            if exc.ended:
                return Redirect(f"{prefix}/login?ended=true", status_code=303)
            target = request.url.path if request.method == "GET" else f"{prefix}/"
            return Redirect(f"{prefix}/login", query_params={"next": target}, status_code=303)

        def to_password(request: Request[Any, Any, Any], exc: PasswordChangeDue) -> Response[Any]:
            return Redirect(f"{prefix}{password_path}", status_code=303)

        return {SignInRequired: to_sign_in, PasswordChangeDue: to_password}


def _uuid(value: object) -> uuid.UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
