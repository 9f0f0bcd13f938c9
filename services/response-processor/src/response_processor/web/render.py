"""Rendering a console page: the signed-in user, what they may do, and the page's template."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from authkit.identity import AuthUser
from authkit.web import page_renderer
from response_processor.api.guards import MANAGE_ROLES, READ_ROLES
from servicekit.web.site import Render


def _rights(user: AuthUser | None) -> Mapping[str, bool]:
    """What the navigation shows: the pages the user's roles may read, and change."""
    return {
        "can_read": user is not None and user.has_any_role(*READ_ROLES),
        "can_manage": user is not None and user.has_any_role(*MANAGE_ROLES),
    }


render: Final[Render] = page_renderer("console", _rights)
"""``console/{template}`` with the user and their rights."""
