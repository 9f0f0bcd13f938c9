"""`ServiceKitPlugin`: everything a service's HTTP API shares, added to an app in one line.

    app = Litestar(
        route_handlers=[...],
        plugins=[ServiceKitPlugin(ServiceKitConfig(service="request-gateway", ...))],
    )

It registers the error handlers, ``/health``, ``/health/live`` and ``/metrics`` (with
``operations=False`` only ``/health/live``: a public API serves the others on its operations
port, `servicekit.server.operational_app`), the request id middleware, the access log,
Prometheus request metrics (labelled by route template and status; operational endpoints
excluded), security headers, CORS for the configured origins only, and the request body
limit. It amends the OpenAPI document (our error body on every operation, closed schemas,
security schemes) and serves the docs page without a CDN (see `servicekit.openapi`). It also
switches Litestar's own logging configuration off: `servicekit.logs.configure_logging` owns
logging, and Litestar's would replace its handlers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from litestar import Litestar, Request, Response
from litestar.config.app import AppConfig
from litestar.config.cors import CORSConfig
from litestar.enums import ScopeType
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import SecurityScheme
from litestar.plugins import InitPluginProtocol, ReceiveRoutePlugin
from litestar.plugins.prometheus import PrometheusConfig
from litestar.routes import BaseRoute, HTTPRoute
from litestar.types import Message, Method, Scope

from servicekit.error_codes import ErrorCode
from servicekit.errors import ErrorBody, error_response, exception_handlers
from servicekit.health import (
    DEFAULT_BUDGET_S,
    DEFAULT_REPORT_MAX_AGE_S,
    HealthCheck,
    HealthChecksProvider,
    SharedReport,
    live_handler,
    report_handler,
)
from servicekit.http_metrics import RequestMetricsMiddleware
from servicekit.metrics import metrics_handler
from servicekit.middleware import (
    CLIENT_DISCONNECTED_STATUS,
    METRICS_EXCLUDE_OPT_KEY,
    REQUEST_ID_HEADER,
    BodyLimitMiddleware,
    BodyTimeoutError,
    ClientDisconnectedError,
    RequestContextMiddleware,
    ResponseFinisher,
)
from servicekit.openapi import ApiDocs, add_schema_plugins

__all__ = ["ServiceKitConfig", "ServiceKitPlugin"]

DEFAULT_MAX_BODY_BYTES: Final = 1024 * 1024
DEFAULT_BODY_TIMEOUT_S: Final = 30.0

_CORS_METHODS: Final[Sequence[Method]] = ("GET", "POST", "PUT", "PATCH", "DELETE")
_CORS_REQUEST_HEADERS: Final = [
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "X-API-Key",
    REQUEST_ID_HEADER,
]
_CORS_EXPOSED_HEADERS: Final = [
    REQUEST_ID_HEADER,
    "Retry-After",
    "RateLimit",
    "RateLimit-Policy",
    "Idempotent-Replayed",
]


def _no_health_checks(app: object) -> Sequence[HealthCheck]:
    return ()


@dataclass(frozen=True)
class ServiceKitConfig:
    """What differs between services using the plugin."""

    service: str
    """Service name: the ``app_name`` label of the request metrics."""
    health_checks: HealthChecksProvider = _no_health_checks
    """Builds the dependency checks of ``GET /health`` from the app, per request."""
    health_budget_s: float = DEFAULT_BUDGET_S
    health_max_age_s: float = DEFAULT_REPORT_MAX_AGE_S
    """A health report serves every probe for this long (0: run the checks for each)."""
    cors_origins: Sequence[str] = field(default=())
    """Origins allowed to call the API from a browser; none by default (no CORS headers)."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """Larger request bodies are refused with 413 ``payload_too_large``."""
    body_timeout_s: float | None = DEFAULT_BODY_TIMEOUT_S
    """A body not complete this long after the request started gets 408 ``request_timeout``."""
    operations: bool = True
    """Serve ``/health`` and ``/metrics`` here too. False on a public API: it keeps only
    ``/health/live``, and the operations port (`servicekit.server`) serves the others."""
    metrics_prefix: str = "http"
    """Request metrics are ``{prefix}_requests_total``, ``{prefix}_request_duration_seconds``."""
    security_schemes: Mapping[str, SecurityScheme] = field(default_factory=dict)
    """The credentials the API accepts (`servicekit.openapi.BEARER_JWT`, `api_key_header`):
    declared in the OpenAPI document and required by every operation that authenticates."""


class ServiceKitPlugin(InitPluginProtocol, ReceiveRoutePlugin):
    """Adds servicekit's error handling, operational endpoints and middleware to an app."""

    def __init__(self, config: ServiceKitConfig) -> None:
        self.config = config
        self._api_docs = ApiDocs(config.security_schemes)

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        """Amend the app's configuration before Litestar builds it."""
        config = self.config
        # The service's own handlers win over ours for the same exception type.
        app_config.exception_handlers = {**exception_handlers(), **app_config.exception_handlers}
        app_config.route_handlers.extend(self._operational_handlers())
        # Outermost, so that authentication and every other middleware log with the request id.
        app_config.middleware.insert(0, RequestContextMiddleware())
        app_config.middleware.insert(1, self._prometheus_config().middleware)
        app_config.middleware.insert(
            2, BodyLimitMiddleware(config.max_body_bytes, config.body_timeout_s)
        )
        app_config.exception_handlers.setdefault(BodyTimeoutError, _body_timeout_handler)
        app_config.exception_handlers.setdefault(
            ClientDisconnectedError, _client_disconnected_handler
        )
        # Litestar reads its own body limit (10 MB by default) from its constructor argument,
        # never from the configuration a plugin amends; set on the app before the first
        # request, it is the same as ours, so ours answers (with our error body) first.
        app_config.on_startup.insert(0, self._align_litestar_body_limit)
        app_config.before_send.append(ResponseFinisher())
        app_config.before_send.append(AllowEveryMethod())
        app_config.logging_config = None
        if config.cors_origins:
            app_config.cors_config = self._cors_config()
        if app_config.openapi_config is not None:
            app_config.openapi_config = self._api_docs.amend_config(app_config.openapi_config)
            add_schema_plugins(app_config.plugins)
        return app_config

    def receive_route(self, route: BaseRoute) -> None:
        """Document each route's error answers and security as Litestar registers it."""
        self._api_docs.document_route(route)

    def _operational_handlers(self) -> list[HTTPRouteHandler]:
        config = self.config
        if not config.operations:
            return [live_handler()]
        # /metrics runs the checks too (sharing /health's report), so each scrape carries
        # health_status and the folders' free space.
        shared = SharedReport(config.health_max_age_s)

        async def refresh_health(app: Litestar) -> None:
            await shared.get(config.health_checks(app), config.health_budget_s)

        return [
            report_handler(
                config.health_checks,
                budget_s=config.health_budget_s,
                max_age_s=config.health_max_age_s,
                shared=shared,
            ),
            live_handler(),
            metrics_handler(before_render=refresh_health),
        ]

    def _align_litestar_body_limit(self, app: Litestar) -> None:
        app.request_max_body_size = self.config.max_body_bytes

    def _prometheus_config(self) -> PrometheusConfig:
        return PrometheusConfig(
            app_name=self.config.service,
            prefix=self.config.metrics_prefix,
            # Label by route template (/requests/{id}), never by raw path: one series per route.
            group_path=True,
            exclude_opt_key=METRICS_EXCLUDE_OPT_KEY,
            middleware_class=RequestMetricsMiddleware,
        )

    def _cors_config(self) -> CORSConfig:
        return CORSConfig(
            allow_origins=list(self.config.cors_origins),
            allow_methods=list(_CORS_METHODS),
            allow_headers=list(_CORS_REQUEST_HEADERS),
            expose_headers=list(_CORS_EXPOSED_HEADERS),
            allow_credentials=False,
        )


def _body_timeout_handler(
    request: Request[Any, Any, Any], exc: BodyTimeoutError
) -> Response[ErrorBody]:
    # The unread rest of the body makes the connection unusable: the client must reconnect.
    return error_response(
        408,
        ErrorCode.REQUEST_TIMEOUT,
        "The request body did not arrive in time.",
        headers={"connection": "close"},
    )


def _client_disconnected_handler(
    request: Request[Any, Any, Any], exc: ClientDisconnectedError
) -> Response[None]:
    # Nobody reads this answer: it exists so the access line and the metrics say 499.
    return Response(None, status_code=CLIENT_DISCONNECTED_STATUS)


class AllowEveryMethod:
    """``before_send`` hook: an OPTIONS answer's ``Allow`` names every method of its path.

    Litestar 2 makes a path's automatic OPTIONS handler when the path's first handler is
    registered and never updates it, so methods registered later for the same path were
    missing (litestar#4169, fixed only in Litestar 3). The methods are read from the app's
    routes once, on the first OPTIONS request.
    """

    def __init__(self) -> None:
        self._allow: dict[str, list[tuple[bytes, bytes]]] | None = None

    async def __call__(self, message: Message, scope: Scope) -> None:
        """Replace the Allow header of an OPTIONS answer with the route's methods."""
        if message["type"] != "http.response.start" or scope["type"] != ScopeType.HTTP:
            return
        if scope["method"] != "OPTIONS":
            return
        if self._allow is None:
            self._allow = {
                route.path_format: [(b"allow", ", ".join(sorted(route.methods)).encode())]
                for route in scope["app"].routes
                if isinstance(route, HTTPRoute)
            }
        allow = self._allow.get(scope.get("path_template") or "")
        if allow is not None:
            headers = [(k, v) for k, v in message.get("headers") or [] if k.lower() != b"allow"]
            message["headers"] = headers + allow
