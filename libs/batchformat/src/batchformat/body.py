"""Framing of a `batchformat/2` body: binary age ciphertext between the header and trailer.

The body may hold any byte, newlines included, so it is not split into lines: the trailer
is the last line of the file, and it is short. The framing holds back the last
`TRAILER_WINDOW` bytes it was given and passes everything before them on at once, so memory
stays constant and the trailer is found at the end without reading the file twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from batchformat.errors import BatchRejected, RejectReason

TRAILER_WINDOW: Final = 64 * 1024  # far above any trailer line (a few hundred bytes)
NEWLINE: Final = b"\n"


class BodyFraming:
    """Feed the bytes after the header; `finish` returns the trailer line.

    `on_ciphertext` gets the body (without the `\\n` that ends it) in order;
    `on_hashed` gets every byte before the trailer line (body and that `\\n`).
    """

    def __init__(
        self, on_hashed: Callable[[bytes], None], on_ciphertext: Callable[[bytes], None] | None
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
            self._commit(data[:-TRAILER_WINDOW])
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

    def _commit(self, data: bytes) -> None:
        if data:
            self._on_hashed(data)
            if self._on_ciphertext is not None:
                self._on_ciphertext(data)
            self.body_bytes += len(data)
