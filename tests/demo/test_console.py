"""The demo's console: what reaches the terminal and what reaches its log files."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

from airlock_local.console import SUPERVISOR, Console
from airlock_local.layout import DemoLayout

PASSWORD = "correct-horse-battery-staple"


def test_the_banner_reaches_the_terminal_but_its_passwords_never_the_log(tmp_path: Path) -> None:
    layout = DemoLayout.at(tmp_path)
    terminal = io.StringIO()
    console = Console(layout, ["gateway"], terminal)
    previous = os.umask(0o000)
    try:
        console.say("starting…")
        console.show_secret(f"admin / {PASSWORD}", logged_as="ready: see credentials.json")
        console.line("gateway", "listening")
    finally:
        os.umask(previous)
        console.close()
    assert PASSWORD in terminal.getvalue()
    supervisor_log = layout.log_file(SUPERVISOR).read_text()
    assert "starting…" in supervisor_log
    assert "ready: see credentials.json" in supervisor_log
    assert PASSWORD not in supervisor_log
    for name in (SUPERVISOR, "gateway"):
        assert stat.S_IMODE(layout.log_file(name).stat().st_mode) == 0o600
