"""Per-request HTTP plumbing: request ids, the access log line, security headers, body limit.

Litestar runs middleware only for requests that matched a route, so the work is split:

- `RequestContextMiddleware` (matched routes) picks the request id, binds it to structlog's
  context variables for every line logged while the handler runs, and starts the clock;
- `BodyLimitMiddleware` refuses bodies over the limit with 413, by their declared length or
  while they stream in, answers 408 to a body that does not arrive in time (the servers have
  no body-read timeout of their own), and turns a client that leaves mid-body into a 499;
- `ResponseFinisher` (a ``before_send`` hook, which sees *every* response, 404 and 405
  included) echoes ``X-Request-ID``, adds the security headers and writes the access line.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Mapping
from typing import Final

import structlog
from litestar.datastructures import Headers
from litestar.enums import ScopeType
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, HTTPScope, Message, Receive, ReceiveMessage, Scope, Send

__all__ = [
    "ACCESS_LOG_EXCLUDE_OPT_KEY",
    "CLIENT_DISCONNECTED_STATUS",
    "METRICS_EXCLUDE_OPT_KEY",
    "NO_CREDENTIAL_OPT",
    "PAGE_CONTENT_SECURITY_POLICY",
    "PAGE_OPT_KEY",
    "PUBLIC_ENDPOINT_OPT",
    "REQUEST_ID_HEADER",
    "SECURITY_HEADERS",
    "BodyLimitMiddleware",
    "BodyTimeoutError",
    "ClientDisconnectedError",
    "RequestContextMiddleware",
    "ResponseFinisher",
    "request_id_for",
]

REQUEST_ID_HEADER: Final = "X-Request-ID"
METRICS_EXCLUDE_OPT_KEY: Final = "exclude_from_metrics"
ACCESS_LOG_EXCLUDE_OPT_KEY: Final = "exclude_from_access_log"

NO_CREDENTIAL_OPT: Final[Mapping[str, bool]] = {"exclude_from_auth": True}
"""``opt`` for API routes anyone may call (login, refresh): counted and logged like the rest."""

PUBLIC_ENDPOINT_OPT: Final[Mapping[str, bool]] = {
    # Litestar's authentication middleware skips handlers with this key in their ``opt``.
    "exclude_from_auth": True,
    "exclude_from_rate_limit": True,
    METRICS_EXCLUDE_OPT_KEY: True,
    # Probes hit these every few seconds; their successes would drown the access log.
    ACCESS_LOG_EXCLUDE_OPT_KEY: True,
}
"""``opt`` for operational endpoints (health, metrics): no auth, no limits, no request metrics."""

SECURITY_HEADERS: Final[Mapping[str, str]] = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    # API answers are per user and change with every write: nothing may cache them.
    "cache-control": "no-store",
}
# A JSON API never needs to load, frame or submit anything. An answer that brings its own
# policy keeps it (the API docs page: its scripts and styles, from this origin only).
_CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
PAGE_OPT_KEY: Final = "web_page"
"""``opt`` key of the routes of `servicekit.web`: their answers get the page policy below."""
PAGE_CONTENT_SECURITY_POLICY: Final = (
    # Our own pages: scripts, styles and images from the application itself only, never
    # inline (no 'unsafe-inline'), forms posted back to it, never framed.
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

_SECURITY_HEADERS_RAW: Final = tuple(
    (name.encode(), value.encode()) for name, value in SECURITY_HEADERS.items()
)
_REQUEST_ID_KEY: Final = REQUEST_ID_HEADER.lower().encode()
_API_POLICY_RAW: Final = _CONTENT_SECURITY_POLICY.encode()
_PAGE_POLICY_RAW: Final = PAGE_CONTENT_SECURITY_POLICY.encode()

# An incoming id is kept only if it is short and made of harmless characters: it is echoed
# in a header and written to every log line of the request.
_ACCEPTABLE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_STATE_REQUEST_ID: Final = "request_id"
_STATE_STARTED_AT: Final = "servicekit_started_at"

_access_log = structlog.get_logger("servicekit.access")

CLIENT_DISCONNECTED_STATUS: Final = 499
"""The status (nginx's) a request is counted and logged with when its client left mid-body."""


class BodyTimeoutError(Exception):
    """The request body did not arrive within the body timeout."""


class ClientDisconnectedError(Exception):
    """The client closed the connection before its request body was complete."""


def request_id_for(scope: Scope) -> str:
    """Return the request's id: a sane incoming ``X-Request-ID`` or a new one, fixed per request."""
    state = scope.setdefault("state", {})
    existing = state.get(_STATE_REQUEST_ID)
    if isinstance(existing, str):
        return existing
    incoming = Headers.from_scope(scope).get(REQUEST_ID_HEADER, "")
    request_id = incoming if _ACCEPTABLE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
    state[_STATE_REQUEST_ID] = request_id
    return request_id


class RequestContextMiddleware(ASGIMiddleware):
    """Bind ``request_id`` to the logging context of a matched request and time it."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Run the rest of the stack inside the request's logging context."""
        request_id = request_id_for(scope)
        scope["state"][_STATE_STARTED_AT] = time.perf_counter()
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await next_app(scope, receive, send)


class BodyLimitMiddleware(ASGIMiddleware):
    """Refuse bodies over ``max_body_bytes`` (413) or slower than ``body_timeout_s`` (408).

    A client that has left before its body was complete raises `ClientDisconnectedError`
    (answered and counted as 499, one access line) instead of Litestar's 500.
    """

    # Litestar's own limit is set to the same value by the plugin, so this one always answers.
    scopes = (ScopeType.HTTP,)

    def __init__(self, max_body_bytes: int, body_timeout_s: float | None = None) -> None:
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Check the declared length, then count and time the bytes actually received."""
        declared = Headers.from_scope(scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise RequestEntityTooLarge
        await next_app(scope, self._guarded(receive), send)

    def _guarded(self, receive: Receive) -> Receive:
        received = 0
        complete = False
        # One deadline for the whole body, from the request's start: a client dripping a
        # byte at a time must not hold the connection for longer than a silent one.
        loop = asyncio.get_running_loop()
        deadline = None if self.body_timeout_s is None else loop.time() + self.body_timeout_s

        async def guarded_receive() -> ReceiveMessage:
            nonlocal received, complete
            if complete:
                # After the body, receive only waits for a disconnect: no deadline applies.
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeoutError from None
            if message["type"] == "http.disconnect":
                raise ClientDisconnectedError
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise RequestEntityTooLarge
                complete = not message.get("more_body", False)
            return message

        return guarded_receive


class ResponseFinisher:
    """``before_send`` hook: request id and security headers on every response, one access line."""

    async def __call__(self, message: Message, scope: Scope) -> None:
        """Amend the response start message; ignore body messages."""
        # ASGI servers put plain strings in scope["type"]; compare by value, never identity.
        if message["type"] != "http.response.start" or scope["type"] != ScopeType.HTTP:
            return
        # One pass over the raw header list (MutableScopeHeaders scans it once per lookup:
        # a tenth of a small request's cost).
        raw: list[tuple[bytes, bytes]] = list(message.get("headers") or [])
        present = {name.lower() for name, _ in raw}
        request_id = request_id_for(scope)
        raw = [(name, value) for name, value in raw if name.lower() != _REQUEST_ID_KEY]
        raw.append((_REQUEST_ID_KEY, request_id.encode("latin-1")))
        raw.extend(header for header in _SECURITY_HEADERS_RAW if header[0] not in present)
        if b"content-security-policy" not in present:
            raw.append((b"content-security-policy", _content_security_policy(scope)))
        message["headers"] = raw
        _log_access(scope, message["status"], request_id)


def _content_security_policy(scope: HTTPScope) -> bytes:
    """The page policy for `servicekit.web` routes, the API's for every other answer that
    brings no policy of its own (the API docs page brings its own)."""
    route_handler = scope.get("route_handler")
    if route_handler is not None and route_handler.opt.get(PAGE_OPT_KEY):
        return _PAGE_POLICY_RAW
    return _API_POLICY_RAW


def _log_access(scope: HTTPScope, status: int, request_id: str) -> None:
    route_handler = scope.get("route_handler")
    quiet = route_handler is not None and route_handler.opt.get(ACCESS_LOG_EXCLUDE_OPT_KEY)
    if quiet and status < 500:
        return
    fields: dict[str, object] = {
        "method": scope["method"],
        "route": scope.get("path_template") or None,
        "status": status,
        "request_id": request_id,
    }
    started_at = scope["state"].get(_STATE_STARTED_AT)
    if started_at is not None:
        fields["duration_ms"] = round((time.perf_counter() - started_at) * 1000, 2)
    else:
        # No route matched (404, 405): the raw path, without its query string, is the only
        # hint of what was asked; no middleware ran, so there is no start time either.
        fields["path"] = scope["path"]
    _access_log.info("request", **fields)
