"""Rendering a portal page with the signed-in user."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.response import Template

from authkit.identity import AuthUser
from servicekit.web import page


def render(
    request: Request[Any, Any, Any], template: str, status_code: int = 200, **context: Any
) -> Template:
    """``portal/{template}`` with the user (or None on the sign-in page)."""
    user = request.scope.get("user")
    session = request.scope.get("session")
    signed_in = isinstance(user, AuthUser)
    username = session.get("username") if signed_in and isinstance(session, dict) else None
    return page(
        request,
        f"portal/{template}",
        status_code,
        user=user if signed_in else None,
        username=username,
        path=request.url.path,
        **context,
    )
