"""The forwarding check: a batch verified on its bytes, as the transfer agent copies them.

A relay (the transfer agent) never applies records; what it must know before delivering is
that the batch is whole and comes from a trusted key: the header (format, name, addressee),
the trailer, the record count, the SHA-256 of the bytes the trailer covers and the
signature over it. `RelayParser` is `BatchParser(decode_records=False)` without the one
check that looks inside record lines: the scan for empty lines, which ran at about half the
speed of SHA-256 on the agent's main thread. An empty line is a malformed record, like any
line that is not JSON (which the relay never checked); the receiver's reader rejects both
before applying anything, and a signed batch holding one can only come from the key holder.

An encrypted body (`batchformat/2`) is framed by the parser as bytes, not lines, so the
relay's check is the parser's own there; no decryption key is needed.
"""

from __future__ import annotations

from batchformat.keys import TrustedKeys
from batchformat.lines import count_newlines
from batchformat.parser import NO_EXPECTATIONS, BatchParser, Expectations


class RelayParser(BatchParser):
    """Feed a batch's bytes in pieces, then `finish`: framing, count, digest, signature."""

    def __init__(
        self,
        trusted_keys: TrustedKeys,
        *,
        max_line_bytes: int,
        expect: Expectations = NO_EXPECTATIONS,
    ) -> None:
        super().__init__(
            trusted_keys, decode_records=False, max_line_bytes=max_line_bytes, expect=expect
        )

    def _bulk(self, piece: bytes, start: int, end: int) -> None:
        """Hash and count the complete lines piece[start:end]; none of them is the last."""
        self._hasher.update(memoryview(piece)[start:end])
        self._lines += count_newlines(piece, start, end)
