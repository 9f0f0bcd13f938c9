"""What one side encrypts its batches to, and what it decrypts the peer's with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from batchformat import DecryptionKeys, RecipientKeys


@dataclass(frozen=True, slots=True)
class LinkEncryption:
    """Recipients (the peer's `*.agepub`; None sends `batchformat/1`) and own `*.agekey`s."""

    recipients: RecipientKeys | None
    decryption_keys: DecryptionKeys = field(default_factory=DecryptionKeys)
    accept_unencrypted: bool = False

    def describe(self) -> dict[str, object]:
        """Key ids only, for the start-up log line (never key material)."""
        return {
            "encrypt_to": sorted(self.recipients) if self.recipients is not None else None,
            "decryption_key_ids": sorted(self.decryption_keys),
            "accept_unencrypted": self.accept_unencrypted,
        }


PLAINTEXT: Final = LinkEncryption(recipients=None, accept_unencrypted=True)
"""No encryption either way: for tests of the link that are not about it."""
