"""Rendering a portal page with the signed-in user."""

from __future__ import annotations

from typing import Final

from authkit.web import page_renderer
from servicekit.web.site import Render

render: Final[Render] = page_renderer("portal")
"""``portal/{template}`` with the user (or None on the sign-in page)."""
