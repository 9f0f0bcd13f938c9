"""`echo`: returns its payload unchanged, for diagnostics and tests."""

from __future__ import annotations

from typing import Any

from response_processor.processing.handlers.base import Handler, HandlerContext


async def run(payload: dict[str, Any], context: HandlerContext) -> dict[str, Any]:
    """The payload itself."""
    return payload


handler = Handler(
    type="echo",
    run=run,
    payload_type=dict[str, Any],
    description="Returns its payload; for checking the whole path end to end.",
)
