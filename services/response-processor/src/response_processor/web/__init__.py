"""The operator console: server-rendered pages over the processor's own domain code.

`build_console` assembles the pages under ``/console`` with `servicekit.web` (templates,
server-side session, CSRF, the page security policy, static assets). Pages call the same
domain functions and guards as the JSON API, so the rules and the audit rows are the API's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from litestar import Router

from authkit.middleware import UserLoader
from authkit.tokens import AccessTokenVerifier
from authkit.web import WebSignIn, signed_in_guard
from response_processor.api.auth import auth_services
from response_processor.api.guards import Network, address_guard
from response_processor.settings import ProcessorSettings
from response_processor.web.audit import audit_log
from response_processor.web.batches import batches
from response_processor.web.dashboard import dashboard
from response_processor.web.dead_letters import DeadLetterPages
from response_processor.web.documents import DocumentPages
from response_processor.web.profile_types import ProfileTypePages
from response_processor.web.render import render
from response_processor.web.session import password_controller
from response_processor.web.users import UserPages
from servicekit.web import WebConfig
from servicekit.web.site import Site, error_pages

PREFIX: Final = "/console"
HERE: Final = Path(__file__).parent


def build_console(
    settings: ProcessorSettings,
    load_user: UserLoader,
    verifier: AccessTokenVerifier,
    networks: list[Network],
) -> Site:
    """The pages, behind the admin address allow-list like the API."""
    web = WebConfig(
        prefix=PREFIX,
        secret=settings.jwt_secret,
        secure_cookies=settings.env != "development",
        template_dirs=[HERE / "templates"],
        template_globals={"site_name": "Airlock console"},
    )
    sign_in = WebSignIn(web, auth_services, verifier, render)
    signed_in = Router(
        path="/",
        guards=[signed_in_guard(load_user)],
        route_handlers=[
            password_controller(sign_in),
            dashboard,
            UserPages,
            ProfileTypePages,
            DeadLetterPages,
            batches,
            DocumentPages,
            audit_log,
        ],
    )
    pages = web.router(
        [sign_in.controller(), signed_in],
        guards=[address_guard(networks)],
        exception_handlers={**sign_in.exception_handlers(), **error_pages(render)},
    )
    return Site(web, [pages, web.static_router()])
