"""Server-rendered pages for a service: templates, sessions, CSRF, static assets, one policy.

    web = WebConfig(prefix="/console", secret=settings.jwt_secret, secure_cookies=True,
                    template_dirs=[HERE / "templates"], static_dirs=[HERE / "static"])
    app = Litestar(
        route_handlers=[web.router([...pages...]), web.static_router()],
        template_config=web.template_config(),
        stores={web.session_store: session_store(redis)},   # or registered in the lifespan
    )

- Pages are Jinja2 templates (Litestar's engine, autoescaped); servicekit's own layout
  (``web/base.html``), stylesheet and script come first in the search path, so every
  service's pages look and behave alike. Nothing is loaded from anywhere but the app.
- The session is server side (Litestar's `ServerSideSessionConfig`, in Redis): the cookie
  holds only a random id and is HttpOnly, SameSite=Strict, Secure unless ``secure_cookies``
  is off (development over plain HTTP), and scoped to ``prefix``.
- Every unsafe request under ``prefix`` must carry the CSRF token (Litestar's
  `CSRFMiddleware`, double submit: the ``_csrf_token`` form field, or the ``X-CSRFToken``
  header for scripts, must match the HttpOnly cookie it signed). Forms get it with
  ``{{ csrf_input | safe }}``.
- Answers of these routes carry `servicekit.middleware.PAGE_CONTENT_SECURITY_POLICY`
  (scripts and styles from the app only, no ``unsafe-inline``), set where every other
  security header is set.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import redis.asyncio
from litestar import Request, Router
from litestar.config.csrf import CSRFConfig
from litestar.connection import ASGIConnection
from litestar.datastructures import CacheControlHeader
from litestar.middleware.base import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware
from litestar.middleware.session.server_side import (
    ServerSideSessionBackend,
    ServerSideSessionConfig,
)
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router
from litestar.stores.redis import RedisStore
from litestar.template.config import TemplateConfig
from litestar.types import (
    ControllerRouterHandler,
    Empty,
    ExceptionHandlersMap,
    Guard,
    Message,
    ScopeSession,
)
from litestar.types.composite_types import PathType

from servicekit.middleware import PAGE_OPT_KEY

__all__ = [
    "PAGE_OPT",
    "SHARED_STATIC",
    "SHARED_TEMPLATES",
    "WebConfig",
    "derive_secret",
    "flash",
    "page",
    "renew_session",
    "see_other",
    "session_store",
]

HERE: Final = Path(__file__).parent
SHARED_TEMPLATES: Final = HERE / "templates"
SHARED_STATIC: Final = HERE / "static"

PAGE_OPT: Final[Mapping[str, bool]] = {
    # Pages authenticate with the session, not with a bearer token.
    "exclude_from_auth": True,
    PAGE_OPT_KEY: True,
}
"""``opt`` of every page route (set on the router `WebConfig.router` builds)."""

CSRF_HEADER: Final = "x-csrftoken"
_RENEWED_SESSION_ID: Final = "servicekit_web_renewed_session_id"
_FLASH_KEY: Final = "flash"
FlashLevel = Literal["info", "success", "error"]


def derive_secret(secret: str, purpose: str) -> str:
    """A key for one purpose from a service secret (so one secret never signs two things)."""
    return hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def session_store(client: redis.asyncio.Redis, namespace: str = "web-session") -> RedisStore:
    """The Redis store sessions live in (register it under `WebConfig.session_store`)."""
    return RedisStore(client, namespace=namespace)


@dataclass(frozen=True)
class WebConfig:
    """What a service's pages share: where they live, how they are secured."""

    prefix: str
    """Path prefix of every page, e.g. ``/console``; cookies are scoped to it."""
    secret: str
    """A service secret; the CSRF signing key is derived from it."""
    secure_cookies: bool
    """Mark cookies Secure (off only in development over plain HTTP)."""
    template_dirs: Sequence[Path] = ()
    static_dirs: Sequence[Path] = ()
    session_store: str = "web_sessions"
    session_cookie: str = "airlock_session"
    csrf_cookie: str = "airlock_csrf"
    session_max_age_s: int = 8 * 3600
    template_globals: Mapping[str, Any] = field(default_factory=dict)

    @property
    def static_prefix(self) -> str:
        """Where the static assets are served."""
        return f"{self.prefix}/static"

    def template_config(self) -> TemplateConfig[JinjaTemplateEngine]:
        """The app's template configuration: the service's templates, then servicekit's."""
        directories: list[PathType] = [*self.template_dirs, SHARED_TEMPLATES]

        def add_globals(engine: JinjaTemplateEngine) -> None:
            engine.engine.globals.update(
                static_url=lambda name: f"{self.static_prefix}/{name}",
                prefix=self.prefix,
                **self.template_globals,
            )

        return TemplateConfig(
            directory=directories, engine=JinjaTemplateEngine, engine_callback=add_globals
        )

    def csrf_config(self) -> CSRFConfig:
        """Litestar's double-submit CSRF check, its cookie as strict as the session's."""
        return CSRFConfig(
            secret=derive_secret(self.secret, "servicekit.web.csrf"),
            cookie_name=self.csrf_cookie,
            cookie_path=self.prefix,
            cookie_secure=self.secure_cookies,
            cookie_httponly=True,
            cookie_samesite="strict",
            header_name=CSRF_HEADER,
        )

    def session_config(self) -> ServerSideSessionConfig:
        """The server-side session: a random id in an HttpOnly, SameSite=Strict cookie."""
        return _RenewableSessionConfig(
            store=self.session_store,
            key=self.session_cookie,
            path=self.prefix,
            max_age=self.session_max_age_s,
            secure=self.secure_cookies,
            httponly=True,
            samesite="strict",
        )

    def router(
        self,
        route_handlers: Sequence[ControllerRouterHandler],
        *,
        guards: Sequence[Guard] = (),
        exception_handlers: ExceptionHandlersMap | None = None,
    ) -> Router:
        """The pages under ``prefix``, with the session and the CSRF check."""
        return Router(
            path=self.prefix,
            route_handlers=list(route_handlers),
            guards=list(guards),
            middleware=[
                self.session_config().middleware,
                DefineMiddleware(CSRFMiddleware, config=self.csrf_config()),
            ],
            exception_handlers=exception_handlers or {},
            opt=dict(PAGE_OPT),
            include_in_schema=False,
        )

    def static_router(self) -> Router:
        """Our stylesheet and scripts (servicekit's, then the service's), cacheable for an hour."""
        return create_static_files_router(
            path=self.static_prefix,
            directories=[*self.static_dirs, SHARED_STATIC],
            cache_control=CacheControlHeader(max_age=3600, private=True),
            opt=dict(PAGE_OPT),
            include_in_schema=False,
        )


class _RenewableSessionBackend(ServerSideSessionBackend):
    """Litestar's backend, but a session renewed by `renew_session` gets a fresh id."""

    def get_session_id(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str:
        renewed = connection.scope["state"].get(_RENEWED_SESSION_ID)
        if isinstance(renewed, str):
            return renewed
        return super().get_session_id(connection)

    async def store_in_message(
        self,
        scope_session: ScopeSession,
        message: Message,
        connection: ASGIConnection[Any, Any, Any, Any],
    ) -> None:
        # Litestar stores even an empty session, so every anonymous page view would leave a
        # cookie and a Redis entry: an empty session is no session (and ends one).
        if not scope_session:
            if self.config.key not in connection.cookies:
                return
            scope_session = Empty
        await super().store_in_message(scope_session, message, connection)


class _RenewableSessionConfig(ServerSideSessionConfig):
    _backend_class = _RenewableSessionBackend


async def renew_session(
    request: Request[Any, Any, Any], config: WebConfig, data: Mapping[str, Any]
) -> None:
    """Start a new session holding ``data`` under a new id (at sign-in: a session id
    planted before it is worth nothing after); the old id's data is deleted."""
    old_id = request.cookies.get(config.session_cookie)
    if old_id:
        await request.app.stores.get(config.session_store).delete(old_id)
    request.scope["state"][_RENEWED_SESSION_ID] = _RenewableSessionBackend(
        config=config.session_config()
    ).generate_session_id()
    request.set_session(dict(data))


def page(
    request: Request[Any, Any, Any], template: str, status_code: int = 200, **context: Any
) -> Template:
    """Render ``template`` with ``context``, the pending flash message and the request."""
    session = request.scope.get("session")
    flashed = session.pop(_FLASH_KEY, None) if isinstance(session, dict) else None
    return Template(
        template_name=template,
        context={"request": request, "flashed": flashed, **context},
        status_code=status_code,
    )


def flash(request: Request[Any, Any, Any], message: str, level: FlashLevel = "info") -> None:
    """A message for the next page the user sees (after a redirect)."""
    request.session[_FLASH_KEY] = {"message": message, "level": level}


def see_other(path: str) -> Redirect:
    """A 303 after a form post (post, redirect, get: a reload never posts twice)."""
    return Redirect(path, status_code=303)
