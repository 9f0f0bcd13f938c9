"""The demo's output: every line to the terminal, prefixed with its process's name, and to
that process's log file under `DEMO_DIR/logs/`."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Final, TextIO

import structlog

from airlock_local.layout import DemoLayout

SUPERVISOR: Final = "demo"
LOG_FILE_MODE: Final = 0o600  # processes' output may quote secrets: the demo's owner only
_PALETTE: Final = ("36", "35", "33", "32", "34", "96", "95", "93", "92", "94")


class Console:
    """Writes prefixed lines to a stream and raw lines to per-process log files."""

    def __init__(
        self, layout: DemoLayout, names: Iterable[str], stream: TextIO | None = None
    ) -> None:
        self._layout = layout
        self._stream = stream or sys.stdout
        all_names = [SUPERVISOR, *names]
        self._width = max(len(name) for name in all_names)
        colored = self._stream.isatty() and not os.environ.get("NO_COLOR")
        self._colors = (
            {name: _PALETTE[index % len(_PALETTE)] for index, name in enumerate(all_names)}
            if colored
            else {}
        )
        self._files: dict[str, TextIO] = {}
        self._stream_broken = False

    def line(self, name: str, text: str) -> None:
        """One line of a process's output."""
        self._log(name).write(text + "\n")
        prefix = f"{name:<{self._width}} |"
        color = self._colors.get(name)
        if color:
            prefix = f"\x1b[{color}m{prefix}\x1b[0m"
        self._write(f"{prefix} {text}\n")

    def say(self, text: str) -> None:
        """A message of the supervisor's own (progress, restarts), to the terminal and its log."""
        for line in text.splitlines() or [""]:
            self._log_supervisor(line)
            self._say_on_terminal(line)

    def show_secret(self, text: str, logged_as: str) -> None:
        """Text holding passwords: to the terminal only; the log file gets `logged_as`."""
        self._log_supervisor(logged_as)
        for line in text.splitlines() or [""]:
            self._say_on_terminal(line)

    def _log_supervisor(self, line: str) -> None:
        self._log(SUPERVISOR).write(f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%S}Z {line}\n")

    def _say_on_terminal(self, line: str) -> None:
        prefix = f"{SUPERVISOR:<{self._width}} |"
        if self._colors:
            prefix = f"\x1b[1m{prefix}\x1b[0m"
        self._write(f"{prefix} {line}\n")

    def _write(self, text: str) -> None:
        if self._stream_broken:
            return
        try:
            self._stream.write(text)
            self._stream.flush()
        except OSError:  # the terminal went away (a closed pipe): keep logging to files
            self._stream_broken = True

    def route_structlog(self) -> None:
        """Show the supervisor's own log events (embedded servers starting...) as its lines."""
        structlog.configure(
            processors=[
                structlog.processors.add_log_level,
                structlog.dev.ConsoleRenderer(colors=False, pad_event=0),
            ],
            logger_factory=lambda *args: _SayLogger(self.say),
            cache_logger_on_first_use=False,
        )

    def close(self) -> None:
        """Close the log files."""
        for handle in self._files.values():
            handle.close()
        self._files.clear()

    def _log(self, name: str) -> TextIO:
        handle = self._files.get(name)
        if handle is None:
            path = self._layout.log_file(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
            fd = os.open(path, flags, LOG_FILE_MODE)
            os.fchmod(fd, LOG_FILE_MODE)  # whatever the umask, and a log an older demo left
            handle = open(fd, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 (kept open)
            self._files[name] = handle
        return handle


class _SayLogger:
    """A structlog logger whose every rendered event becomes one line of the supervisor's."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say

    def msg(self, message: str) -> None:
        """Show one rendered event."""
        self._say(message)

    debug = info = warning = error = critical = exception = msg
