"""A `batchformat/2` body: binary age ciphertext between the header and the trailer.

The body may hold any byte, newlines included, so it is not split into lines: the trailer
is the last line of the file, and it is short. The framing holds back the last
`TRAILER_WINDOW` bytes it was given and passes everything before them on at once, so memory
stays constant and the trailer is found at the end without reading the file twice.
`EncryptedBody` adds the decryption, when records are read, and frames the plaintext into
record lines.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from batchformat.agestream import BodyDecryptor
from batchformat.crypt import DecryptionKeys
from batchformat.errors import BatchRejected, RejectReason
from batchformat.lines import NEWLINE, Lines, count_newlines

TRAILER_WINDOW: Final = 64 * 1024  # far above any trailer line (a few hundred bytes)


class BodyFraming:
    """Feed the bytes after the header; `finish` returns the trailer line.

    `on_ciphertext` gets the body (without the `\\n` that ends it) in order;
    `on_hashed` gets every byte before the trailer line (body and that `\\n`).
    """

    def __init__(
        self,
        on_hashed: Callable[[bytes | memoryview], None],
        on_ciphertext: Callable[[bytes | memoryview], None] | None,
    ) -> None:
        self._on_hashed = on_hashed
        self._on_ciphertext = on_ciphertext
        self._window = bytearray()
        self.body_bytes = 0

    def feed(self, data: bytes) -> None:
        """The next bytes of the file."""
        if len(data) >= TRAILER_WINDOW:
            if self._window:
                self._commit(bytes(self._window))
            # A view, not a copy: the transfer agent hashes MiB pieces of big batches, and
            # a copy of each, queued for hashing, cost it memory and time.
            self._commit(memoryview(data)[:-TRAILER_WINDOW])
            self._window = bytearray(data[-TRAILER_WINDOW:])
            return
        self._window += data
        excess = len(self._window) - TRAILER_WINDOW
        if excess > 0:
            self._commit(bytes(self._window[:excess]))
            del self._window[:excess]

    def finish(self) -> bytes:
        """The trailer line (without its `\\n`), once the whole file was fed."""
        window = bytes(self._window)
        if not window.endswith(NEWLINE):
            raise BatchRejected(
                RejectReason.TRAILER_MISSING,
                "the file does not end with a newline: it was cut short",
            )
        separator = window.rfind(NEWLINE, 0, len(window) - 1)
        if separator < 0 or (separator == 0 and self.body_bytes == 0):
            raise BatchRejected(
                RejectReason.TRAILER_MISSING,
                "no encrypted body before the last line: it was cut short",
            )
        self._commit(window[:separator])
        self._on_hashed(window[separator : separator + 1])
        return window[separator + 1 : -1]

    def _commit(self, data: bytes | memoryview) -> None:
        if data:
            self._on_hashed(data)
            if self._on_ciphertext is not None:
                self._on_ciphertext(data)
            self.body_bytes += len(data)


class EncryptedBody:
    """The body as a parser reads it: framed and hashed, and decrypted when records are read.

    With `decryption_keys=None` it is only framed and hashed (forwarding needs no key).
    Otherwise `feed` and `end` give the plaintext's complete record lines, numbered from 2
    (the header is line 1). A body encrypted to none of the reader's keys is reported by
    `end`, which the parser calls after checking the digest and the signature: a forged
    batch is reported as forged, not as encrypted to someone else.
    """

    def __init__(
        self,
        recipients: Sequence[str],
        on_hashed: Callable[[bytes | memoryview], None],
        decryption_keys: DecryptionKeys | None,
        max_line_bytes: int,
    ) -> None:
        self._decryptor: BodyDecryptor | None = None
        self._deferred: BatchRejected | None = None
        if decryption_keys is not None:
            held = [key_id for key_id in recipients if key_id in decryption_keys]
            if held:
                self._decryptor = BodyDecryptor([decryption_keys[key_id] for key_id in held])
            else:
                self._deferred = BatchRejected(
                    RejectReason.UNKNOWN_RECIPIENT_KEY,
                    f"encrypted to keys {list(recipients)!r}, none of which "
                    f"this reader holds (it holds {sorted(decryption_keys)!r})",
                )
        decryptor = self._decryptor
        self._framing = BodyFraming(on_hashed, decryptor.feed if decryptor is not None else None)
        self._max_line = max_line_bytes
        self._tail = b""  # plaintext after its last newline
        self.record_lines = 0  # plaintext lines framed so far

    @property
    def decrypting(self) -> bool:
        """Whether the records are decrypted (not only framed and hashed)."""
        return self._decryptor is not None

    def feed(self, data: bytes) -> Lines | None:
        """The next bytes of the file; the record lines decrypted so far, if any."""
        if data:
            self._framing.feed(data)
        return self._take_plaintext()

    def trailer_line(self) -> bytes:
        """The trailer line, once the whole file was fed (see BodyFraming.finish)."""
        return self._framing.finish()

    def end(self) -> Lines | None:
        """After the trailer checked out: the last record lines; raise if decryption failed."""
        if self._deferred is not None:
            raise self._deferred
        if self._decryptor is None:
            return None
        rejection = self._decryptor.finish()
        if rejection is not None:
            raise rejection
        lines = self._take_plaintext()
        if self._tail:
            raise BatchRejected(
                RejectReason.INVALID_JSON,
                "the last record line does not end with a newline",
                line=self.record_lines + 2,
            )
        return lines

    def close(self) -> None:
        """Stop the decryption's child process (for a parser abandoned early)."""
        if self._decryptor is not None:
            self._decryptor.close()

    def _take_plaintext(self) -> Lines | None:
        if self._decryptor is None:
            return None
        pieces = list(self._decryptor.ready())  # many small pieces: one join, one split
        if not pieces:
            return None
        data = b"".join([self._tail, *pieces])
        if len(data) > self._max_line:
            self._check_line_lengths(data)
        last = data.rfind(NEWLINE)
        if last < 0:
            self._tail = data
            return None
        lines = Lines(self.record_lines + 2, data, 0, last + 1)
        self.record_lines += count_newlines(data, 0, last + 1)
        self._tail = data[last + 1 :]
        return lines

    def _check_line_lengths(self, data: bytes) -> None:
        start, line = 0, self.record_lines + 2
        while start < len(data):
            end = data.find(NEWLINE, start)
            if (len(data) if end < 0 else end) - start > self._max_line:
                raise BatchRejected(
                    RejectReason.LINE_TOO_LONG,
                    f"a record is longer than {self._max_line} bytes",
                    line=line,
                )
            if end < 0:
                return
            start, line = end + 1, line + 1
