"""Shared fixtures of servicekit's tests."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from servicekit.logs import configure_logging
from tests.servicekit.log_capture import LogCapture


@pytest.fixture
def log_capture() -> Iterator[LogCapture]:
    """Logging configured as in production (JSON lines), written to a buffer."""
    stream = io.StringIO()
    handler = configure_logging("test-service", json=True, level="INFO", stream=stream)
    try:
        yield LogCapture(stream)
    finally:
        logging.getLogger().removeHandler(handler)
