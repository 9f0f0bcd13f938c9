"""The user portal: server-rendered pages over the gateway's own API functions.

`Portal.build` assembles the pages under ``/portal`` with `servicekit.web` (templates,
server-side session, CSRF, the page policy, static assets) and `authkit.web` (sign-in).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from litestar import Litestar, Request, Router
from litestar.exceptions import HTTPException
from litestar.response import Template
from litestar.template.config import TemplateConfig

from authkit.middleware import UserLoader
from authkit.tokens import AccessTokenVerifier
from authkit.web import WebSignIn, signed_in_guard
from request_gateway.api.account import auth_services
from request_gateway.runtime import Runtime
from request_gateway.settings import GatewaySettings
from request_gateway.web.pages import KeyPages, RequestPages, home, password_due
from request_gateway.web.render import render
from servicekit.error_codes import code_for_status
from servicekit.errors import ApiError
from servicekit.middleware import request_id_for
from servicekit.web import WebConfig, session_store

PREFIX: Final = "/portal"
HERE: Final = Path(__file__).parent


@dataclass(frozen=True)
class Portal:
    """The portal's routers and what the app needs to serve them."""

    web: WebConfig
    routers: list[Router]

    @classmethod
    def build(
        cls, settings: GatewaySettings, load_user: UserLoader, verifier: AccessTokenVerifier
    ) -> Portal:
        """Sign in, requests, API keys, limits."""
        web = WebConfig(
            prefix=PREFIX,
            secret=settings.jwt_secret,
            secure_cookies=settings.env != "development",
            template_dirs=[HERE / "templates"],
            static_dirs=[HERE / "static"],
            template_globals={"site_name": "Airlock"},
        )
        sign_in = WebSignIn(web, auth_services, verifier, render)
        signed_in = Router(
            path="/",
            guards=[signed_in_guard(load_user)],
            route_handlers=[home, password_due, RequestPages, KeyPages],
        )
        pages = web.router(
            [sign_in.controller(), signed_in],
            exception_handlers={
                **sign_in.exception_handlers(),
                ApiError: _error_page,
                HTTPException: _error_page,
            },
        )
        return cls(web, [pages, web.static_router()])

    def template_config(self) -> TemplateConfig[Any]:
        """The app's template configuration."""
        return self.web.template_config()

    def open(self, app: Litestar, runtime: Runtime) -> None:
        """At start-up: sessions live in the gateway's Redis."""
        app.stores.register(self.web.session_store, session_store(runtime.redis), True)


def _error_page(request: Request[Any, Any, Any], exc: Exception) -> Template:
    if isinstance(exc, ApiError):
        status, code, message = exc.status_code, exc.code, exc.message
    else:
        assert isinstance(exc, HTTPException)
        status, code, message = exc.status_code, str(code_for_status(exc.status_code)), exc.detail
    if isinstance(exc, HTTPException) and "CSRF" in exc.detail:
        code, message = "csrf_failed", "The form expired; go back, reload it and try again."
    return render(
        request,
        "error.html",
        status,
        title="That did not work" if status < 500 else "Something went wrong",
        code=code,
        message=message,
        request_id=request_id_for(request.scope),
    )
