"""The composition root of the processor's HTTP API."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Final

from litestar import Litestar, Router
from litestar.openapi import OpenAPIConfig

from authkit.accounts import AppUserAccounts
from authkit.guards import password_change_guard
from authkit.identity import AuthUser
from authkit.middleware import AuthConfig, auth_middleware
from authkit.routes import AuthServices, auth_controller
from authkit.tokens import token_pair
from response_processor.api.audit import read_audit
from response_processor.api.auth import PasswordController, auth_services, me
from response_processor.api.batches import BatchesController
from response_processor.api.documents import DocumentsController
from response_processor.api.guards import address_guard, parse_networks
from response_processor.api.profile_types import ProfileTypesController
from response_processor.api.requests import DeadLettersController, RequestsController
from response_processor.api.users import UsersController
from response_processor.health import health_checks
from response_processor.runtime import Runtime, open_runtime
from response_processor.settings import ProcessorSettings
from response_processor.web import build_console
from servicekit.openapi import BEARER_JWT
from servicekit.plugin import ServiceKitConfig, ServiceKitPlugin
from servicekit.server import operational_app, runtime_health_checks

VERSION: Final = "0.1.0"
SERVICE: Final = "response-processor"

LOAD_USER_SQL: Final = """
    SELECT id, roles, session_version, must_change_password, active FROM app_user WHERE id = $1
"""


def create_app(settings: ProcessorSettings) -> Litestar:
    """The Litestar app; its lifespan opens the runtime (database, Redis, keys, link)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_runtime(settings) as runtime:
            app.state.runtime = runtime
            console.open(app, runtime.redis)
            app.state.auth_services = AuthServices(
                runtime.pool, runtime.issuer, runtime.login_limiter, AppUserAccounts()
            )
            yield

    async def load_user(user_id: uuid.UUID) -> AuthUser | None:
        # Read fresh on every request: a deactivation or password change applies at once.
        runtime: Runtime = app.state.runtime
        async with runtime.pool.acquire() as conn:
            row = await conn.fetchrow(LOAD_USER_SQL, user_id)
        if row is None:
            return None
        return AuthUser(
            id=row["id"],
            roles=frozenset(row["roles"]),
            session_version=row["session_version"],
            must_change_password=row["must_change_password"],
            active=row["active"],
        )

    _, verifier = token_pair(settings)
    networks = parse_networks(settings.admin_allowed_networks)
    console = build_console(settings, load_user, verifier, networks)
    api = Router(
        path="/",
        guards=[address_guard(networks)],
        route_handlers=[
            auth_controller(auth_services),
            PasswordController,
            me,
            UsersController,
            ProfileTypesController,
            RequestsController,
            DeadLettersController,
            DocumentsController,
            BatchesController,
            read_audit,
        ],
    )
    app = Litestar(
        route_handlers=[api, *console.routers],
        template_config=console.template_config(),
        plugins=[
            ServiceKitPlugin(
                ServiceKitConfig(
                    service=SERVICE,
                    # /health and /metrics: on the operations port (server.py)
                    operations=False,
                    cors_origins=settings.cors_origins,
                    max_body_bytes=settings.max_body_bytes,
                    body_timeout_s=settings.body_timeout_s,
                    security_schemes={"bearer": BEARER_JWT},
                )
            )
        ],
        middleware=[auth_middleware(AuthConfig(verifier=verifier, load_user=load_user))],
        guards=[password_change_guard],
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(
            title="Airlock response processor", version=VERSION, path="/schema"
        ),
    )
    return app


def operations_app(api: Litestar) -> Litestar:
    """The operations port's app: /health (over `api`'s runtime, once its lifespan made it),
    /health/live and /metrics; the API's own port keeps only /health/live."""
    return operational_app(SERVICE, runtime_health_checks(api, health_checks))
