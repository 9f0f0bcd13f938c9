"""The operator console: server-rendered pages over the processor's own domain code.

`Console.build` assembles the pages under ``/console`` with `servicekit.web` (templates,
server-side session, CSRF, the page security policy, static assets). Pages call the same
domain functions and guards as the JSON API, so the rules and the audit rows are the API's.
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
from response_processor.api.auth import auth_services
from response_processor.api.guards import Network, address_guard
from response_processor.runtime import Runtime
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
from servicekit.error_codes import code_for_status
from servicekit.errors import ApiError
from servicekit.middleware import request_id_for
from servicekit.web import WebConfig, session_store

PREFIX: Final = "/console"
HERE: Final = Path(__file__).parent


@dataclass(frozen=True)
class Console:
    """The console's routers and what the app needs to serve them."""

    web: WebConfig
    routers: list[Router]

    @classmethod
    def build(
        cls,
        settings: ProcessorSettings,
        load_user: UserLoader,
        verifier: AccessTokenVerifier,
        networks: list[Network],
    ) -> Console:
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
        """At start-up: sessions live in the processor's Redis."""
        app.stores.register(self.web.session_store, session_store(runtime.redis), True)


_TITLES: Final = {
    400: "That did not work",
    401: "Please sign in",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    409: "Conflict",
    413: "Too large",
    429: "Too many attempts",
}


def _error_page(request: Request[Any, Any, Any], exc: Exception) -> Template:
    """The API's error, as a page (same status, same code)."""
    if isinstance(exc, ApiError):
        status, code, message = exc.status_code, exc.code, exc.message
    else:
        assert isinstance(exc, HTTPException)
        status, code, message = exc.status_code, _http_code(exc), exc.detail
    if (status == 403 and code == "forbidden") or code == "permission_denied":
        message = "Your roles do not allow this page or action."
    if isinstance(exc, HTTPException) and "CSRF" in exc.detail:
        code, message = "csrf_failed", "The form expired; go back, reload it and try again."
    return render(
        request,
        "error.html",
        status,
        title=_TITLES.get(status, "Something went wrong"),
        code=code,
        message=message,
        request_id=request_id_for(request.scope),
    )


def _http_code(exc: HTTPException) -> str:
    return str(code_for_status(exc.status_code))
