"""The composition root of the gateway's HTTP API."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from typing import Final

from granian.utils.proxies import wrap_asgi_with_proxy_headers
from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.types import ASGIApp

from authkit.guards import password_change_guard
from authkit.identity import AuthUser
from authkit.middleware import AuthConfig, CredentialScheme, auth_middleware
from authkit.tokens import token_pair
from request_gateway.api.account import ApiKeysController, AuthController, me
from request_gateway.api.admin import AdminController, BatchesController
from request_gateway.api.request_events import RequestEventsController
from request_gateway.api.requests import RequestsController
from request_gateway.changes import running_feed
from request_gateway.health import health_checks
from request_gateway.identity.credentials import Credentials
from request_gateway.runtime import open_runtime
from request_gateway.settings import GatewaySettings, load
from request_gateway.web import build_portal
from servicekit.exposure import parse_proxies
from servicekit.metrics import mark_worker_dead
from servicekit.openapi import BEARER_JWT, api_key_header
from servicekit.plugin import ServiceKitConfig, ServiceKitPlugin
from servicekit.server import operational_app, runtime_health_checks

VERSION: Final = "0.1.0"
SERVICE: Final = "request-gateway"
API_KEY_HEADER: Final = "X-API-Key"


def create_app(settings: GatewaySettings) -> Litestar:
    """The Litestar app; its lifespan opens the runtime (database, Redis, cache, link)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with (
            open_runtime(settings) as runtime,
            running_feed(
                runtime.database_url,
                per_user=settings.max_open_waits_per_user,
                per_process=settings.max_open_waits,
            ) as changes,
        ):
            app.state.runtime = runtime
            app.state.changes = changes  # closed first on shutdown: open waits end
            app.state.credentials = Credentials(runtime.pool, runtime.identity)
            portal.open(app, runtime.redis)
            try:
                yield
            finally:
                mark_worker_dead(os.getpid())

    # The middleware is built before the lifespan makes the runtime: look it up per request.
    async def load_user(user_id: uuid.UUID) -> AuthUser | None:
        credentials: Credentials = app.state.credentials
        return await credentials.load_user(user_id)

    async def from_api_key(key: str) -> AuthUser | None:
        credentials: Credentials = app.state.credentials
        return await credentials.from_api_key(key)

    auth = AuthConfig(
        verifier=token_pair(settings)[1],
        load_user=load_user,
        credential_schemes=[CredentialScheme("api_key", API_KEY_HEADER, from_api_key)],
    )
    portal = build_portal(settings, load_user, auth.verifier)
    app = Litestar(
        template_config=portal.template_config(),
        route_handlers=[
            *portal.routers,
            AuthController,
            me,
            ApiKeysController,
            RequestsController,
            RequestEventsController,
            AdminController,
            BatchesController,
        ],
        plugins=[
            ServiceKitPlugin(
                ServiceKitConfig(
                    service=SERVICE,
                    # /health and /metrics: on the operations port (server.py)
                    operations=False,
                    cors_origins=settings.cors_origins,
                    max_body_bytes=settings.max_body_bytes,
                    body_timeout_s=settings.body_timeout_s,
                    security_schemes={
                        "bearer": BEARER_JWT,
                        "apiKey": api_key_header(API_KEY_HEADER),
                    },
                )
            )
        ],
        middleware=[auth_middleware(auth)],
        guards=[password_change_guard],
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(
            title="Airlock request gateway", version=VERSION, path="/schema"
        ),
    )
    return app


def app_from_environment() -> ASGIApp:
    """The app factory a server process imports (`request_gateway.app:app_from_environment`)."""
    from servicekit.logs import configure_logging

    settings = load()
    configure_logging("request-gateway", json=settings.json_logs, level=settings.log_level)
    app = create_app(settings)
    if not settings.trusted_proxies:
        return app
    # granian's own wrapper: X-Forwarded-For (and -Proto) from these peers name the client.
    proxies = [str(network) for network in parse_proxies(settings.trusted_proxies)]
    wrapped: ASGIApp = wrap_asgi_with_proxy_headers(app, trusted_hosts=proxies)
    return wrapped


def operations_app(api: Litestar) -> Litestar:
    """The operations port's app: /health (over `api`'s runtime, once its lifespan made it),
    /health/live and /metrics; the API's own port keeps only /health/live."""
    return operational_app(SERVICE, runtime_health_checks(api, health_checks))
