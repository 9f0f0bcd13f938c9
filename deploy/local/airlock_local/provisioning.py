"""What a demo installation needs before anything runs: folders, secrets, keys, agent config.

Everything here is made once and found again by the next start, so keys, passwords and
databases survive restarts of `make demo`.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from airlock_local.layout import DemoLayout, SideLayout
from batchformat import generate_encryption_key_pair, generate_key_pair

PRIVATE_FOLDER_MODE = 0o700
SECRET_FILE_MODE = 0o600


def prepare_folders(layout: DemoLayout) -> None:
    """Create the demo's folders; the secrets folder is readable by its owner only."""
    for side in (layout.gateway, layout.processor):
        for folder in (side.outbox, side.inbox_archive, side.peer_keys):
            folder.mkdir(parents=True, exist_ok=True)
    for folder in (layout.agent_dir / "keys", layout.logs, layout.run):
        folder.mkdir(parents=True, exist_ok=True)
    layout.secrets_dir.mkdir(parents=True, exist_ok=True)
    layout.secrets_dir.chmod(PRIVATE_FOLDER_MODE)


def ensure_secret(path: Path, *, nbytes: int = 18) -> str:
    """The secret stored in `path`, generated (URL-safe, mode 600) on first use."""
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    value = secrets.token_urlsafe(nbytes)
    write_private_file(path, value + "\n")
    return value


def write_private_file(path: Path, text: str, *, mode: int = SECRET_FILE_MODE) -> None:
    """Replace `path` atomically with `text`, readable by its owner only from the start."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def ensure_signing_keys(layout: DemoLayout) -> None:
    """Give each side its key pairs once; hand the public keys to the peer (and the agent).

    The signing key's public half goes to the peer and the agent; the encryption key's
    (`ID.agepub`) to the peer only: the agent forwards batches it cannot read.
    """
    for side, peer in ((layout.gateway, layout.processor), (layout.processor, layout.gateway)):
        _ensure_key_pair(side)
        public = side.public_key.read_bytes()
        for folder in (peer.peer_keys, layout.agent_dir / "keys"):
            _write_if_changed(folder / side.public_key.name, public)
        recipient = _ensure_encryption_key_pair(side)
        _write_if_changed(peer.peer_keys / recipient.name, recipient.read_bytes())


def _ensure_encryption_key_pair(side: SideLayout) -> Path:
    folder = side.link.decryption_keys_path
    identity = folder / f"{side.network_id}.agekey"
    recipient = folder / f"{side.network_id}.agepub"
    if not identity.exists():
        recipient.unlink(missing_ok=True)
        generate_encryption_key_pair(side.network_id, folder)
    return recipient


def _ensure_key_pair(side: SideLayout) -> None:
    if side.signing_key.exists():
        return
    side.public_key.unlink(missing_ok=True)  # a public key whose private half is gone
    generate_key_pair(side.signing_key.stem, side.signing_key.parent)


def _write_if_changed(path: Path, content: bytes) -> None:
    if not path.exists() or path.read_bytes() != content:
        path.write_bytes(content)


def agent_public_key(layout: DemoLayout, side: SideLayout) -> Path:
    """The agent's copy of a side's public key."""
    return layout.agent_dir / "keys" / side.public_key.name


def write_agent_config(layout: DemoLayout, *, port: int) -> Path:
    """The transfer agent's TOML: one route each way between the two sides' drop zones."""
    routes = [
        _route("requests", layout, layout.gateway, layout.processor),
        _route("responses", layout, layout.processor, layout.gateway),
    ]
    text = "\n".join(
        [
            "# Written by `make demo` at every start; edit the supervisor, not this file.",
            "[agent]",
            f"listen = {_toml(f'127.0.0.1:{port}')}",
            "rescan_interval_s = 5",
            'id = "demo"',
            'log_format = "console"',
            'log_level = "info"',
            *routes,
        ]
    )
    layout.agent_config.write_text(text + "\n", encoding="utf-8")
    return layout.agent_config


def _route(name: str, layout: DemoLayout, source: SideLayout, destination: SideLayout) -> str:
    return "\n".join(
        [
            "",
            "[[routes]]",
            f"name = {_toml(name)}",
            f"source = {_toml(str(source.outbox))}",
            f"destination = {_toml(str(destination.inbox))}",
            f"trusted_keys = [{_toml(str(agent_public_key(layout, source)))}]",
            'after_delivery = "archive"',
            "archive_days = 7",
            f"min_free_bytes = {64 * 2**20}",
            f"expect_destination = {_toml(destination.network_id)}",
            f"destination_archive = {_toml(str(destination.inbox_archive))}",
        ]
    )


def _toml(text: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes, \uXXXX included).
    return json.dumps(text, ensure_ascii=False)
