"""Litestar's Prometheus middleware, counting refused requests with their real status.

Litestar's `PrometheusMiddleware` learns the status from the response it sees pass. When a
middleware inside it raises (authentication's 401, the body limit's 413, a 5xx), the error
response is sent further out, by the app's exception handler, and the request was counted
as a 200. This subclass takes the status from the exception instead, so the error-rate
alert sees every refusal.
"""

from __future__ import annotations

import time
from typing import Any

from litestar import Request
from litestar.exceptions import HTTPException
from litestar.plugins.prometheus import PrometheusMiddleware
from litestar.status_codes import HTTP_408_REQUEST_TIMEOUT, HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import Message, Receive, Scope, Send

from servicekit.errors import ApiError
from servicekit.middleware import (
    CLIENT_DISCONNECTED_STATUS,
    BodyTimeoutError,
    ClientDisconnectedError,
)

__all__ = ["RequestMetricsMiddleware", "status_of"]


def status_of(exc: BaseException) -> int:
    """The status the app's exception handlers answer `exc` with."""
    if isinstance(exc, ApiError | HTTPException):
        return int(exc.status_code)
    if isinstance(exc, BodyTimeoutError):
        return HTTP_408_REQUEST_TIMEOUT
    if isinstance(exc, ClientDisconnectedError):
        # Not a server error: a client leaving must not move the error-rate alert.
        return CLIENT_DISCONNECTED_STATUS
    return HTTP_500_INTERNAL_SERVER_ERROR


class RequestMetricsMiddleware(PrometheusMiddleware):
    """`PrometheusMiddleware` that also counts requests refused by an exception."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count and time the request, whatever answers it."""
        request = Request[Any, Any, Any](scope, receive)
        if (
            self._config.excluded_http_methods
            and request.method in self._config.excluded_http_methods
        ):
            await self.app(scope, receive, send)
            return
        labels = {**self._get_default_labels(request), **self._get_extra_labels(request)}
        started = time.perf_counter()
        span: dict[str, float] = {"status": 200, "duration": -1.0}

        async def noting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                span["status"] = message["status"]
            elif message["type"] == "http.response.body" and span["duration"] < 0:
                span["duration"] = time.perf_counter() - started
            await send(message)

        in_progress = self.requests_in_progress(labels).labels(*labels.values())
        in_progress.inc()
        try:
            await self.app(scope, receive, noting_send)
        except BaseException as exc:
            span["status"] = status_of(exc)
            raise
        finally:
            in_progress.dec()
            labels["status_code"] = int(span["status"])
            values = [*labels.values()]
            duration = span["duration"] if span["duration"] >= 0 else time.perf_counter() - started
            if span["status"] >= HTTP_500_INTERNAL_SERVER_ERROR:
                self.requests_error_count(labels).labels(*values).inc()
            self.request_count(labels).labels(*values).inc()
            self.request_time(labels).labels(*values).observe(duration)
