"""One logging pipeline for the service's own lines and every third-party library's.

structlog events and stdlib records (uvicorn, granian, arq, asyncpg, litestar, ...) both end
in the same `structlog.stdlib.ProcessorFormatter`, so every line gets the same fields
(ISO UTC timestamp, level, logger, ``service``, the request's context variables) and goes
through `redact_event` before it is rendered: JSON lines in production, a readable console
format in development.

Every line written is counted in ``log_messages_total{service,level}`` (a filter on the one
handler, so third-party lines count too), which the error-rate alert reads.

Tracebacks are rendered to text *before* redaction (``format_exc_info``), so the scrubber
sees them too; the console renderer's rich tracebacks are not used because they print local
variables, which is exactly where passwords live.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Final, TextIO

import msgspec
import structlog
from prometheus_client import Counter
from structlog.typing import Processor

from servicekit.redaction import redact_event

__all__ = ["LOG_MESSAGES", "THIRD_PARTY_LOGGERS", "configure_logging"]

LOG_MESSAGES: Final = Counter(
    "log_messages",
    "Log lines written, by service and level (debug, info, warning, error, critical).",
    labelnames=("service", "level"),
)

# Loggers that install their own handlers or do not propagate by default; they are reset to
# propagate into the root handler so their lines are formatted and redacted like ours.
THIRD_PARTY_LOGGERS: Final = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "granian",
    "granian.access",
    "arq",
    "arq.worker",
    "arq.jobs",
    "asyncpg",
    "litestar",
    "watchfiles",
)
# The servers' own access lines duplicate the access log the HTTP middleware writes (which
# also knows the route template and request id), so they are kept to warnings and above.
_QUIET_ACCESS_LOGGERS: Final = ("uvicorn.access", "granian.access")


class _ServiceKitHandler(logging.StreamHandler[TextIO]):
    """The root handler `configure_logging` installs; a distinct class so it can be replaced."""


class _CountLines(logging.Filter):
    """Counts every record the handler writes in `LOG_MESSAGES` (it lets every record pass)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service
        self._counters = {
            level: LOG_MESSAGES.labels(service, level)
            for level in ("debug", "info", "warning", "error", "critical")
        }

    def filter(self, record: logging.LogRecord) -> bool:
        level = record.levelname.lower()
        counter = self._counters.get(level)
        if counter is None:  # a custom level: counted under its own name
            counter = self._counters.setdefault(level, LOG_MESSAGES.labels(self._service, level))
        counter.inc()
        return True


class _AddService:
    """Processor adding the ``service`` field to every line."""

    def __init__(self, service: str) -> None:
        self._service = service

    def __call__(
        self, logger: object, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event_dict.setdefault("service", self._service)
        return event_dict


# Fields every line has, first, so lines read alike in a terminal and in a log viewer.
_LEADING_FIELDS: Final = ("timestamp", "level", "service", "logger", "event")


_json_encoder = msgspec.json.Encoder(enc_hook=str)


def _render_json(event_dict: MutableMapping[str, Any], **kwargs: Any) -> str:
    ordered = {key: event_dict[key] for key in _LEADING_FIELDS if key in event_dict}
    ordered.update(event_dict)
    # redact_event has already turned every unknown object into a string; enc_hook=str is a
    # last resort that keeps a log call from ever raising.
    return _json_encoder.encode(ordered).decode()


def _formatter(service: str, *, json: bool, stream: TextIO) -> structlog.stdlib.ProcessorFormatter:
    renderer: Processor
    if json:
        renderer = structlog.processors.JSONRenderer(serializer=_render_json)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    return structlog.stdlib.ProcessorFormatter(
        # Foreign (stdlib) records need the request context merged here; structlog events
        # merged it at the call site already.
        foreign_pre_chain=[structlog.contextvars.merge_contextvars],
        processors=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _AddService(service),
            structlog.processors.format_exc_info,
            redact_event,
            renderer,
        ],
    )


def _route_third_party_loggers() -> None:
    for name in THIRD_PARTY_LOGGERS:
        third_party = logging.getLogger(name)
        third_party.handlers.clear()
        third_party.propagate = True
    for name in _QUIET_ACCESS_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def configure_logging(
    service: str, *, json: bool, level: str = "INFO", stream: TextIO | None = None
) -> logging.Handler:
    """Send structlog and stdlib logging through one redacting pipeline to ``stream`` (stdout).

    Returns the root handler it installed; calling again replaces it.
    """
    output = stream if stream is not None else sys.stdout
    handler = _ServiceKitHandler(output)
    handler.setFormatter(_formatter(service, json=json, stream=output))
    handler.addFilter(_CountLines(service))

    root = logging.getLogger()
    # Only our own earlier handler is replaced: pytest's capture handlers, for one, must stay.
    for existing in [h for h in root.handlers if isinstance(h, _ServiceKitHandler)]:
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    _route_third_party_loggers()
    logging.captureWarnings(True)
    # No line shows the thread or process fields: skip collecting them for every record
    # (the access log writes one record per request).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False

    structlog.configure(
        processors=[
            # Level filtering first, so a dropped debug line costs nothing more.
            structlog.stdlib.filter_by_level,
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Safe to cache: everything that configure_logging may change later lives in the
        # handler's formatter, not in the loggers' processor chain.
        cache_logger_on_first_use=True,
    )
    return handler
