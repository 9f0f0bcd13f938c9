"""The processor's signing key and the gateway's trusted public keys."""

from __future__ import annotations

import structlog

from batchformat import SigningKey, TrustedKeys, generate_key_pair, load_signing_key
from response_processor.settings import ProcessorSettings

log = structlog.get_logger("response_processor.keys")


def load_keys(settings: ProcessorSettings) -> tuple[SigningKey, TrustedKeys | None]:
    """This side's signing key and the peer's public keys.

    In development a missing key pair is generated under the data folder (production refuses
    to start without `PROCESSOR_SIGNING_KEY_FILE`); the gateway's public keys are whatever
    `*.pub` files the peer-keys folder holds. With signing disabled (development only) the
    peer's signatures are not checked.
    """
    key_path = settings.signing_key_path
    if not key_path.exists() and settings.env != "production":
        private, public = generate_key_pair(key_path.stem, key_path.parent)
        log.info("signing_key_generated", key=str(private), public_key=str(public))
    signing_key = load_signing_key(key_path)
    if not settings.signing_enabled:
        return signing_key, None
    peers = settings.peer_keys_path
    peers.mkdir(parents=True, exist_ok=True)
    trusted = TrustedKeys.from_directory(peers)
    if not trusted:
        log.warning("no_peer_keys", folder=str(peers), effect="every gateway batch is rejected")
    return signing_key, trusted
