"""A buffer of JSON log lines, for tests that assert on what was logged."""

from __future__ import annotations

import io
import json


class LogCapture:
    """The JSON log lines written while a test runs."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    @property
    def text(self) -> str:
        """Everything written so far, as the process would have printed it."""
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, object]]:
        """Every line, decoded."""
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]

    def events(self, event: str) -> list[dict[str, object]]:
        """The lines whose ``event`` is ``event``."""
        return [line for line in self.lines() if line.get("event") == event]
