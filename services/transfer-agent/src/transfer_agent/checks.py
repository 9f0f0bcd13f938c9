"""`transfer-agent check`: everything that can be known wrong before running."""

from __future__ import annotations

import os
from pathlib import Path

from batchformat import KeyFileError, TrustedKeys
from batchformat.dropzone import check_folder_mode
from batchformat.errors import UnsafeFolder
from batchformat.fsops import UnsafeTargetFolder, open_target_dir
from servicekit.health import probe_folder
from transfer_agent.config import AgentConfig, RouteConfig


def route_problems(route: RouteConfig) -> list[str]:
    """What would stop this route from working, each as one sentence."""
    problems = [
        *_folder_problems(route.source, "source"),
        *_folder_problems(route.destination, "destination"),
    ]
    try:
        TrustedKeys.from_files(route.trusted_keys)
    except KeyFileError as exc:
        problems.append(str(exc))
    if route.source.is_dir():
        device = route.source.stat().st_dev
        for label, folder in [("archive_dir", route.archive_path)]:
            if _device_of(folder) != device:
                problems.append(
                    f"{label} {folder} is on another file system than the source: "
                    "batches are moved there by rename"
                )
    for label, folder in [("quarantine", route.quarantine_path), ("archive", route.archive_path)]:
        problems += _target_problems(folder, label)
    if route.destination_archive is not None and not route.destination_archive.is_dir():
        problems.append(f"destination_archive {route.destination_archive} is not a folder")
    return [f"route {route.name!r}: {problem}" for problem in problems]


def config_problems(config: AgentConfig) -> list[str]:
    """Problems of every route."""
    return [problem for route in config.routes for problem in route_problems(route)]


def _folder_problems(folder: Path, label: str) -> list[str]:
    if not folder.is_dir():
        return [f"{label} {folder} is not a folder"]
    try:
        probe_folder(folder)
    except OSError as exc:
        return [f"{label} {folder} is not readable and writable: {exc.strerror}"]
    try:
        check_folder_mode(folder)
    except UnsafeFolder as exc:
        return [f"{label} {exc} ({exc.code})"]
    return []


def _target_problems(folder: Path, label: str) -> list[str]:
    """A folder batches are moved into must not be a symlink or someone else's."""
    if not folder.is_symlink() and not folder.exists():
        return []  # created on first use
    try:
        os.close(open_target_dir(folder))
    except UnsafeTargetFolder as exc:
        return [f"{label} {exc.strerror}"]
    except OSError as exc:
        return [f"{label} {folder}: {exc.strerror}"]
    return []


def _device_of(folder: Path) -> int:
    """The device of a folder, or of its nearest existing parent."""
    while not folder.exists():
        folder = folder.parent
    return folder.stat().st_dev
