"""What a service's pages assemble into (`Site`) and the error page every one of them shows.

site = Site(web, [web.router([...], exception_handlers={**error_pages(render), ...}),
                  web.static_router()])
app = Litestar(route_handlers=[..., *site.routers], template_config=site.template_config())
site.open(app, redis_client)  # in the lifespan: sessions live in the service's Redis
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import redis.asyncio
from litestar import Litestar, Request, Router
from litestar.exceptions import HTTPException
from litestar.response import Template
from litestar.template.config import TemplateConfig
from litestar.types import ExceptionHandlersMap

from servicekit.error_codes import code_for_status
from servicekit.errors import ApiError
from servicekit.middleware import request_id_for
from servicekit.web import WebConfig, session_store

Render = Callable[..., Template]
"""A service's ``render(request, template, status_code=200, **context)``; its ``error.html``
gets ``title``, ``code``, ``message`` and ``request_id``."""

ERROR_TITLES: Final[Mapping[int, str]] = {
    400: "That did not work",
    401: "Please sign in",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    409: "Conflict",
    413: "Too large",
    429: "Too many attempts",
}


@dataclass(frozen=True)
class Site:
    """A service's pages: their configuration and the routers the app serves."""

    web: WebConfig
    routers: list[Router]

    def template_config(self) -> TemplateConfig[Any]:
        """The app's template configuration."""
        return self.web.template_config()

    def open(self, app: Litestar, client: redis.asyncio.Redis) -> None:
        """At start-up: the sessions live in the service's Redis."""
        app.stores.register(self.web.session_store, session_store(client), True)


def error_pages(render: Render) -> ExceptionHandlersMap:
    """The API's errors as pages: the same status and stable code, a title, the message and
    the request id to quote (a rejected CSRF token reads as an expired form)."""

    def error_page(request: Request[Any, Any, Any], exc: Exception) -> Template:
        if isinstance(exc, ApiError):
            status, code, message = exc.status_code, exc.code, exc.message
        else:
            assert isinstance(exc, HTTPException)
            status, code = exc.status_code, str(code_for_status(exc.status_code))
            message = exc.detail
        if (status == 403 and code == "forbidden") or code == "permission_denied":
            message = "Your roles do not allow this page or action."
        if isinstance(exc, HTTPException) and "CSRF" in exc.detail:
            code, message = "csrf_failed", "The form expired; go back, reload it and try again."
        return render(
            request,
            "error.html",
            status,
            title=ERROR_TITLES.get(status, "Something went wrong"),
            code=code,
            message=message,
            request_id=request_id_for(request.scope),
        )

    return {ApiError: error_page, HTTPException: error_page}
