"""Rendering a console page: the signed-in user, what they may do, and the page's template."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.response import Template

from authkit.identity import AuthUser
from response_processor.api.guards import MANAGE_ROLES, READ_ROLES
from servicekit.web import page


def render(
    request: Request[Any, Any, Any], template: str, status_code: int = 200, **context: Any
) -> Template:
    """``console/{template}`` with the user and their rights (the nav shows what they may use)."""
    user = request.scope.get("user")
    signed_in = isinstance(user, AuthUser)
    session = request.scope.get("session")
    username = session.get("username") if signed_in and isinstance(session, dict) else None
    return page(
        request,
        f"console/{template}",
        status_code,
        user=user if signed_in else None,
        username=username,
        can_read=signed_in and user.has_any_role(*READ_ROLES),
        can_manage=signed_in and user.has_any_role(*MANAGE_ROLES),
        path=request.url.path,
        **context,
    )
