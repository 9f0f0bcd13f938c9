"""What a servicekit app's OpenAPI document says beyond Litestar's defaults, and its docs page.

`ServiceKitPlugin` applies all of it, with no code per route:

- **Errors.** Every operation documents the error statuses it can really answer, each with
  the one shared ``ErrorBody`` component (``{"error": {"code", "message", "details"}}``),
  never Litestar's own error body. The statuses follow from what the route is
  (`error_statuses`): authenticated → 401 and 403, a guard of its own → 403, path
  parameters → 404, any input → 400, a body → 408 and 413, an authenticated write → 409, an
  ``Idempotency-Key`` → 422, a credential check or queued work → 429, and 503 everywhere (a
  dependency down, the connection limit reached). What a route declares itself
  (``responses=``, ``raises=``) is kept, in our body.
- **Unknown fields.** A msgspec struct declared ``forbid_unknown_fields=True`` refuses
  fields it does not name; its schema says ``additionalProperties: false``.
- **Security schemes.** The schemes the service names (`BEARER_JWT`, `api_key_header`) are
  declared once, and every authenticated operation requires one of them.
- **The docs page.** ``/schema`` serves Swagger UI from the ``swagger-ui-bundle-v2``
  package, through the app itself (nothing from a CDN: it works on an air-gapped network
  and runs no third-party script from elsewhere), under a Content-Security-Policy that
  allows this origin's scripts and styles only: the start-up script is a served file, not
  inline. The package is servicekit's `web` extra: a process with no API docs (the transfer
  agent) does not carry it, and an app that asks for them without it fails at start.
"""

from __future__ import annotations

import dataclasses
import functools
import html
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec
from litestar import Request, Router, get
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.datastructures import ResponseHeader
from litestar.enums import ParamType
from litestar.exceptions import NotFoundException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin
from litestar.openapi.spec import Components, SecurityRequirement, SecurityScheme
from litestar.params import ParameterKwarg, PathParameter
from litestar.response import File
from litestar.routes import BaseRoute, HTTPRoute
from litestar.typing import FieldDefinition

from servicekit.errors import ErrorBody
from servicekit.middleware import METRICS_EXCLUDE_OPT_KEY, NO_CREDENTIAL_OPT

__all__ = [
    "BEARER_JWT",
    "DOCS_CONTENT_SECURITY_POLICY",
    "ApiDocs",
    "ForbidUnknownFieldsSchemaPlugin",
    "SwaggerPage",
    "add_schema_plugins",
    "api_key_header",
    "error_statuses",
]

BEARER_JWT: Final = SecurityScheme(
    type="http",
    scheme="bearer",
    bearer_format="JWT",
    description="An access token from `POST /api/v1/auth/login`: `Authorization: Bearer <token>`.",
)
"""The access token every service's login issues."""


def api_key_header(header: str) -> SecurityScheme:
    """An API key sent in the request header ``header``."""
    return SecurityScheme(
        type="apiKey",
        name=header,
        security_scheme_in="header",
        description=f"An API key, sent as `{header}: <key>`.",
    )


DOCS_CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
"""The docs page's policy: its scripts, styles and the document come from this origin only."""

_ERROR_DESCRIPTIONS: Final[Mapping[int, str]] = {
    400: "The request is not valid: `validation_error`, with one entry per field in `details`.",
    401: "No credential, or one that is not valid (unknown, expired, revoked, a wrong password).",
    403: "Not allowed: a role it lacks, a password change pending, a deactivated account, "
    "or a refused address.",
    404: "Not found (or not the caller's to see).",
    408: "The request body did not arrive in time: `request_timeout`.",
    409: "In conflict with the current state: a name already taken, a thing in use or "
    "already finished, a limit of live items reached.",
    413: "The body is over the size limit: `payload_too_large`.",
    422: "The `Idempotency-Key` was already used for a different request.",
    429: "Too many attempts or requests: `Retry-After` says when to try again.",
    503: "A dependency (database, Redis) is unavailable or the server is at its connection "
    "limit: try again later.",
}
_WRITE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
_BODY_ARGUMENTS: Final = frozenset({"data", "body"})
_IDEMPOTENCY_HEADER: Final = "idempotency-key"
# Litestar's own arguments (the request, its state, scope...) are not inputs a client sends.
_NOT_INPUTS: Final = frozenset(
    {
        "request",
        "state",
        "scope",
        "socket",
        "headers",
        "cookies",
        "query",
        "body",
        "receive",
        "send",
    }
)


def error_statuses(route: HTTPRoute, handler: HTTPRouteHandler, *, authenticated: bool) -> set[int]:
    """The error statuses `handler` (one of `route`'s) can answer, from what it is."""
    parameters = handler.parsed_fn_signature.parameters
    writes = bool(_WRITE_METHODS & handler.http_methods)
    # A write handler that takes the request may read its body itself (a bulk load).
    takes_body = bool(_BODY_ARGUMENTS & parameters.keys()) or (
        bool(_BODY_METHODS & handler.http_methods) and "request" in parameters
    )
    has_inputs = bool(route.path_parameters) or any(name not in _NOT_INPUTS for name in parameters)
    checks_credential = any(handler.opt.get(key) for key in NO_CREDENTIAL_OPT)
    statuses = {503}
    if has_inputs or takes_body:
        statuses.add(400)
    if authenticated or checks_credential:
        statuses.add(401)
    if authenticated or _has_guards_of_its_own(handler):
        statuses.add(403)
    if route.path_parameters:
        statuses.add(404)
    if takes_body:
        statuses |= {408, 413}
    if authenticated and writes:
        statuses.add(409)
    if any(_header_name(field) == _IDEMPOTENCY_HEADER for field in parameters.values()):
        statuses.add(422)
    # A password checked is a login attempt (limited); queued work (202) is limited per user.
    if _verifies_a_password(handler, checks_credential) or handler.status_code == 202:
        statuses.add(429)
    return statuses


def _has_guards_of_its_own(handler: HTTPRouteHandler) -> bool:
    """Whether a layer below the app (router, controller, handler) guards `handler`."""
    return any(layer.guards for layer in handler.ownership_layers[1:])


def _header_name(field: FieldDefinition) -> str | None:
    kwarg = field.kwarg_definition
    if not isinstance(kwarg, ParameterKwarg) or kwarg.param_type is not ParamType.HEADER:
        return None
    name = kwarg.header or kwarg.name or field.name
    return name.lower()


def _verifies_a_password(handler: HTTPRouteHandler, checks_credential: bool) -> bool:
    """A login (a password in a route that takes no credential) or a current-password check."""
    body = handler.parsed_fn_signature.parameters.get("data")
    if body is None or not body.is_subclass_of(msgspec.Struct):
        return False
    fields = set(body.type_.__struct_fields__)
    return "current_password" in fields or (checks_credential and "password" in fields)


class ApiDocs:
    """What `ServiceKitPlugin` adds to an app's OpenAPI document and docs page.

    Litestar builds the document lazily, from the registered handlers, with no hook after
    it: the errors and security are set on each handler as its route is registered
    (``ReceiveRoutePlugin``), the one moment its guards, path parameters and signature are
    all known, and before any document exists.
    """

    def __init__(self, security_schemes: Mapping[str, SecurityScheme]) -> None:
        self.security_schemes = dict(security_schemes)
        self._security: list[SecurityRequirement] = [{name: []} for name in security_schemes]

    def amend_config(self, config: OpenAPIConfig) -> OpenAPIConfig:
        """The app's `OpenAPIConfig` with our components, the docs page and its router."""
        _assets()  # the page's files are installed, or the app does not start
        base_path = config.path or "/schema"
        existing = config.components if isinstance(config.components, list) else [config.components]
        return dataclasses.replace(
            config,
            components=[*existing, Components(security_schemes=dict(self.security_schemes))],
            render_plugins=[SwaggerPage(base_path), JsonRenderPlugin()],
            openapi_router=Router(
                base_path,
                route_handlers=[],
                include_in_schema=False,
                response_headers=[
                    ResponseHeader(
                        name="content-security-policy", value=DOCS_CONTENT_SECURITY_POLICY
                    )
                ],
            ),
            # Deprecated options left at their defaults would replace the render plugins.
            root_schema_site=None,
            enabled_endpoints=None,
        )

    def document_route(self, route: BaseRoute) -> None:
        """Give each documented handler of `route` its error responses and security."""
        if not isinstance(route, HTTPRoute):
            return
        for handler in route.route_handlers:
            if not handler.resolve_include_in_schema() or handler.opt.get(METRICS_EXCLUDE_OPT_KEY):
                continue  # operational endpoints (health, metrics) document their own answers
            authenticated = bool(self.security_schemes) and not any(
                handler.opt.get(key) for key in NO_CREDENTIAL_OPT
            )
            statuses = error_statuses(route, handler, authenticated=authenticated)
            statuses |= {exc.status_code for exc in handler.raises or ()}
            ours = {status: _error_response(status) for status in statuses}
            # Handlers are this app's copies: setting them changes no other app. The route's
            # own declarations win (a route registered twice keeps what it got the first time).
            handler.responses = {**ours, **(handler.responses or {})}
            handler.raises = None  # documented above, in our body rather than Litestar's
            if authenticated and handler.security is None:
                handler.security = list(self._security)


def _error_response(status: int) -> ResponseSpec:
    description = _ERROR_DESCRIPTIONS.get(status, "An error, in the shared error body.")
    return ResponseSpec(data_container=ErrorBody, description=description, generate_examples=False)


class ForbidUnknownFieldsSchemaPlugin(StructSchemaPlugin):
    """Litestar's msgspec struct schemas, with ``additionalProperties: false`` for a struct
    that refuses unknown fields (``forbid_unknown_fields=True``)."""

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Any:
        """The struct's schema, closed when the struct forbids unknown fields."""
        schema = super().to_openapi_schema(field_definition, schema_creator)
        if field_definition.type_.__struct_config__.forbid_unknown_fields:
            schema.additional_properties = False
        return schema


_OWN_ASSETS: Final = Path(__file__).parent / "api_docs"


@functools.cache
def _assets() -> Mapping[str, tuple[Path, str]]:
    """The served files: Swagger UI's own from the package, plus our start-up script."""
    try:
        from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]
    except ImportError:
        raise RuntimeError(
            "the API docs page needs swagger-ui-bundle-v2: install servicekit[web]"
        ) from None
    swagger_ui = Path(str(swagger_ui_path))
    return {
        "swagger-ui.css": (swagger_ui / "swagger-ui.css", "text/css"),
        "index.css": (swagger_ui / "index.css", "text/css"),
        "swagger-ui-bundle.js": (swagger_ui / "swagger-ui-bundle.js", "text/javascript"),
        "favicon-32x32.png": (swagger_ui / "favicon-32x32.png", "image/png"),
        "swagger-init.js": (_OWN_ASSETS / "swagger-init.js", "text/javascript"),
    }


_PAGE: Final = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="stylesheet" href="{assets}/index.css">
</head>
<body>
<div id="swagger-ui" data-spec-url="{spec_url}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/swagger-init.js"></script>
</body>
</html>
"""


class SwaggerPage(OpenAPIRenderPlugin):
    """Swagger UI at ``{docs path}`` and ``{docs path}/swagger``, its assets served by the app."""

    def __init__(self, base_path: str) -> None:
        super().__init__(path="/swagger")
        self.assets_path = f"{base_path.rstrip('/')}/assets"

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """The page: no inline script or style, everything from `assets_path`."""
        title = str(openapi_schema.get("info", {}).get("title", "API"))
        return _PAGE.format(
            title=html.escape(title),
            assets=html.escape(self.assets_path),
            spec_url=html.escape(self.get_openapi_json_route(request)),
        ).encode()

    def receive_router(self, router: Router) -> None:
        """Serve the page's assets next to it."""
        router.register(docs_asset)


@get("/assets/{name:str}", include_in_schema=False, sync_to_thread=False)
def docs_asset(name: Annotated[str, PathParameter(max_length=100)]) -> File:
    """One file of the docs page (a fixed list: nothing else of the package is served)."""
    found = _assets().get(name)
    if found is None:
        raise NotFoundException(f"No asset {name!r}.")
    path, media_type = found
    return File(
        path,
        filename=name,
        media_type=media_type,
        content_disposition_type="inline",
        headers={"cache-control": "public, max-age=3600"},
    )


def add_schema_plugins(plugins: list[Any]) -> None:
    """Put our schema plugins in an app's plugin list just before Litestar's own, which they
    refine (the first plugin that accepts a type wins).

    Never at the front: Litestar is iterating over this list, calling each plugin's
    ``on_app_init``; Litestar's schema plugins come after the one calling us.
    """
    index = next(
        (i for i, plugin in enumerate(plugins) if type(plugin) is StructSchemaPlugin), len(plugins)
    )
    plugins.insert(index, ForbidUnknownFieldsSchemaPlugin())
