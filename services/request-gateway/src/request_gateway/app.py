"""The composition root of the gateway's HTTP API."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from typing import Final

from litestar import Litestar
from litestar.openapi import OpenAPIConfig

from authkit.guards import password_change_guard
from authkit.identity import AuthUser
from authkit.middleware import AuthConfig, CredentialScheme, auth_middleware
from authkit.tokens import token_pair
from request_gateway.api.account import ApiKeysController, AuthController, me
from request_gateway.api.admin import AdminController, BatchesController
from request_gateway.api.requests import RequestsController
from request_gateway.health import health_checks
from request_gateway.identity.credentials import Credentials
from request_gateway.runtime import open_runtime
from request_gateway.settings import GatewaySettings, load
from servicekit.metrics import mark_worker_dead
from servicekit.openapi import BEARER_JWT, api_key_header
from servicekit.plugin import ServiceKitConfig, ServiceKitPlugin

VERSION: Final = "0.1.0"
API_KEY_HEADER: Final = "X-API-Key"


def create_app(settings: GatewaySettings) -> Litestar:
    """The Litestar app; its lifespan opens the runtime (database, Redis, cache, link)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_runtime(settings) as runtime:
            app.state.runtime = runtime
            app.state.credentials = Credentials(runtime.pool, runtime.identity)
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
    app = Litestar(
        route_handlers=[
            AuthController,
            me,
            ApiKeysController,
            RequestsController,
            AdminController,
            BatchesController,
        ],
        plugins=[
            ServiceKitPlugin(
                ServiceKitConfig(
                    service="request-gateway",
                    health_checks=lambda app: health_checks(app.state.runtime),
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


def app_from_environment() -> Litestar:
    """The app factory a server process imports (`request_gateway.app:app_from_environment`)."""
    from servicekit.logs import configure_logging

    settings = load()
    configure_logging("request-gateway", json=settings.json_logs, level=settings.log_level)
    return create_app(settings)
