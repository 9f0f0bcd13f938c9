"""Debian's Chromium for Playwright: found, or installed when missing (as root), and
launched headless with the flags a closed network needs (../shared/ECOSYSTEM.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Final

CHROMIUM: Final = Path("/usr/bin/chromium")
FLAGS: Final = (
    "--no-sandbox",
    "--disable-gpu",
    # Without these Chromium floods the closed network with connections that are refused.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def ensure_chromium() -> Path:
    """The browser's path; installs Debian's package when it is missing and we are root."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise AssertionError(
            "the browser tests need Debian's Chromium: run `sudo apt-get install chromium`"
        )
    subprocess.run(["apt-get", "update", "-q"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "chromium"],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    if not CHROMIUM.exists():
        raise AssertionError("apt-get installed chromium but /usr/bin/chromium is missing")
    return CHROMIUM


def user_data_dir() -> str:
    """A fresh profile folder for one browser."""
    return tempfile.mkdtemp(prefix="airlock-chromium-")
