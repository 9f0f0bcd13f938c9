"""Which handler runs which request type: the built-ins plus `airlock.handlers` entry points."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Final

import structlog

from response_processor.processing.handlers import echo, search
from response_processor.processing.handlers.base import Handler

ENTRY_POINT_GROUP: Final = "airlock.handlers"
BUILT_INS: Final = (echo.handler, search.handler)

log = structlog.get_logger("response_processor.handlers")


class HandlerConflict(Exception):
    """Two handlers claim the same request type."""


def load_registry(extra: Iterable[EntryPoint] | None = None) -> Mapping[str, Handler]:
    """Built-ins and every installed entry point, by request type; conflicts are errors."""
    handlers: dict[str, Handler] = {handler.type: handler for handler in BUILT_INS}
    points = entry_points(group=ENTRY_POINT_GROUP) if extra is None else extra
    for point in points:
        loaded = point.load()
        if not isinstance(loaded, Handler):
            raise HandlerConflict(
                f"entry point {point.name!r} ({point.value}) is a {type(loaded).__name__}, "
                "not a response_processor Handler"
            )
        if loaded.type in handlers:
            raise HandlerConflict(
                f"request type {loaded.type!r} from {point.value} is already handled"
            )
        handlers[loaded.type] = loaded
        log.info("handler_loaded", type=loaded.type, entry_point=point.value)
    return handlers
