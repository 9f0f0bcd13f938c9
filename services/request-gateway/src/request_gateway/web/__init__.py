"""The user portal: server-rendered pages over the gateway's own API functions.

`build_portal` assembles the pages under ``/portal`` with `servicekit.web` (templates,
server-side session, CSRF, the page policy, static assets) and `authkit.web` (sign-in).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from litestar import Router

from authkit.middleware import UserLoader
from authkit.tokens import AccessTokenVerifier
from authkit.web import WebSignIn, signed_in_guard
from request_gateway.api.account import auth_services
from request_gateway.settings import GatewaySettings
from request_gateway.web.pages import KeyPages, RequestPages, home, password_due
from request_gateway.web.render import render
from servicekit.web import WebConfig
from servicekit.web.site import Site, error_pages

PREFIX: Final = "/portal"
HERE: Final = Path(__file__).parent


def build_portal(
    settings: GatewaySettings, load_user: UserLoader, verifier: AccessTokenVerifier
) -> Site:
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
        exception_handlers={**sign_in.exception_handlers(), **error_pages(render)},
    )
    return Site(web, [pages, web.static_router()])
