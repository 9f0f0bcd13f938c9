"""What every service that speaks the link configures: its folders, keys and timings.

Both services' settings structs derive from `LinkEndpointSettings` (each under its own
environment prefix, each with its own defaults for `data_dir` and the network ids), so the
link's settings are declared once and read the same way on both sides.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from airlink.encryption import LinkEncryption
from airlink.settings import LinkSettings, LinkTimings
from batchformat import (
    DecryptionKeys,
    KeyFileError,
    RecipientKeys,
    SigningKey,
    TrustedKeys,
    generate_encryption_key_pair,
    generate_key_pair,
    load_signing_key,
)
from batchformat.agestream import AgeProcessError, age_command
from batchformat.models import NetworkId

log = structlog.get_logger("airlink.keys")


class LinkEndpointSettings(LinkTimings, frozen=True, kw_only=True):
    """One side's link settings; docs/link-protocol.md describes the timings."""

    data_dir: Path
    network_id: NetworkId
    peer_network_id: NetworkId
    outbox_dir: Path | None = None  # default: data_dir/outbox
    inbox_dir: Path | None = None  # default: data_dir/inbox
    signing_key_file: Path | None = None  # default: data_dir/keys/<network_id>.key
    peer_keys_dir: Path | None = None  # default: data_dir/keys/peers
    signing_enabled: bool = True
    # Confidentiality (docs/batch-format.md §2.2): batches are encrypted to every `*.agepub`
    # in the peer-keys folder and decrypted with every `*.agekey` in the decryption folder.
    encryption_enabled: bool = True
    link_confidential: bool = False  # production may send in clear only when this says so
    accept_unencrypted: bool | None = None  # batchformat/1 in; default: only outside production
    decryption_keys_dir: Path | None = None  # default: data_dir/keys (the *.agekey files)

    @property
    def outbox_path(self) -> Path:
        """Where this side publishes batches for its peer."""
        return self.outbox_dir or self.data_dir / "outbox"

    @property
    def inbox_path(self) -> Path:
        """Where the transfer agent delivers the peer's batches."""
        return self.inbox_dir or self.data_dir / "inbox"

    @property
    def signing_key_path(self) -> Path:
        """This side's Ed25519 private key."""
        return self.signing_key_file or self.data_dir / "keys" / f"{self.network_id}.key"

    @property
    def peer_keys_path(self) -> Path:
        """The peer's public keys (`*.pub`)."""
        return self.peer_keys_dir or self.data_dir / "keys" / "peers"

    @property
    def decryption_keys_path(self) -> Path:
        """This side's age identities (`*.agekey`, mode 600): a Docker secrets or systemd
        credentials folder works as it is, only `*.agekey` files are read."""
        return self.decryption_keys_dir or self.data_dir / "keys"

    def link_settings(self) -> LinkSettings:
        """The `LinkSettings` these settings describe."""
        timings = {name: getattr(self, name) for name in LinkTimings.__struct_fields__}
        return LinkSettings(
            network_id=self.network_id, peer_network_id=self.peer_network_id,
            outbox_dir=self.outbox_path, inbox_dir=self.inbox_path, **timings,
        )  # fmt: skip

    def link_production_problems(self, prefix: str) -> list[str]:
        """What production refuses in the link's settings (unsigned batches, made-up keys)."""
        problems = []
        if not self.signing_enabled:
            problems.append(f"{prefix}SIGNING_ENABLED: batches must be signed in production")
        if self.signing_key_file is None:
            problems.append(f"{prefix}SIGNING_KEY_FILE: production keys are provisioned, not made")
        if not self.encryption_enabled and not self.link_confidential:
            problems.append(
                f"{prefix}ENCRYPTION_ENABLED: batches must be encrypted in production unless "
                f"{prefix}LINK_CONFIDENTIAL=true says the link is already confidential"
            )
        return problems


def load_link_keys(
    settings: LinkEndpointSettings, *, generate_missing: bool
) -> tuple[SigningKey, TrustedKeys | None]:
    """This side's signing key and the peer's trusted public keys.

    With `generate_missing` (development) a missing key pair is made under the data folder;
    the peer's keys are whatever `*.pub` files the peer-keys folder holds. With signing
    disabled (development only) the peer's signatures are not checked: None is returned.
    """
    key_path = settings.signing_key_path
    if generate_missing and not key_path.exists():
        private, public = generate_key_pair(key_path.stem, key_path.parent)
        log.info("signing_key_generated", key=str(private), public_key=str(public))
    signing_key = load_signing_key(key_path)
    if not settings.signing_enabled:
        return signing_key, None
    peers = settings.peer_keys_path
    peers.mkdir(parents=True, exist_ok=True)
    trusted = TrustedKeys.from_directory(peers)
    if not trusted:
        log.warning(
            "no_peer_keys", folder=str(peers), effect="every batch from the peer is rejected"
        )
    return signing_key, trusted


def load_link_encryption(
    settings: LinkEndpointSettings, *, generate_missing: bool
) -> LinkEncryption:
    """The peer's recipients this side encrypts to and its own decryption keys.

    With `generate_missing` (development) a missing identity is made under the data folder,
    a peer without `*.agepub` is sent `batchformat/1` (with a warning), and unencrypted
    batches are accepted unless the settings say otherwise. In production a missing
    recipient refuses the start. Key files are checked (mode 600) here, at start.
    """
    folder = settings.decryption_keys_path
    if generate_missing and not any(folder.glob("*.agekey")):
        identity, recipient = generate_encryption_key_pair(settings.network_id, folder)
        log.info("decryption_key_generated", key=str(identity), public_key=str(recipient))
    decryption = DecryptionKeys.from_directory(folder) if folder.is_dir() else DecryptionKeys()
    if not decryption:
        log.warning(
            "no_decryption_keys", folder=str(folder),
            effect="every encrypted batch from the peer is quarantined",
        )  # fmt: skip
    recipients: RecipientKeys | None = None
    if settings.encryption_enabled:
        peers = settings.peer_keys_path
        found = RecipientKeys.from_directory(peers) if peers.is_dir() else RecipientKeys()
        if found:
            recipients = found
        elif not generate_missing:
            raise KeyFileError(
                f"no peer encryption key (*.agepub) in {peers}: production does not send "
                "batches in clear (set ENCRYPTION_ENABLED=false and LINK_CONFIDENTIAL=true "
                "only if the link is already confidential)"
            )
        else:
            log.warning(
                "no_peer_encryption_key", folder=str(peers),
                effect="batches to the peer are sent unencrypted (development only)",
            )  # fmt: skip
    if recipients or decryption:
        _check_age_command(production=not generate_missing)
    accept = settings.accept_unencrypted
    encryption = LinkEncryption(
        recipients, decryption, accept if accept is not None else generate_missing
    )
    log.info("link_encryption", **encryption.describe())
    return encryption


def _check_age_command(*, production: bool) -> None:
    """Big bodies need the `age` command: production refuses to start without it."""
    try:
        age_command()
    except AgeProcessError as exc:
        if production:
            raise
        log.warning(
            "age_command_missing", problem=str(exc),
            effect="big batches fail to import or export until it is installed",
        )  # fmt: skip
