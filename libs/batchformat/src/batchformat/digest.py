"""SHA-256 of a byte stream, computed beside the caller's own work.

hashlib releases the GIL on large updates, so a helper thread hashes piece n while the
caller parses or copies piece n+1: on two cores a batch costs about max(hash, parse)
rather than their sum. Small pieces are hashed inline, where a thread hop costs more.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from typing import Final

THREAD_MIN_BYTES: Final = 256 * 1024
MAX_PENDING: Final = 4  # pieces queued for the helper: bounds memory at ~4 read chunks


class StreamingSha256:
    """Feed pieces in order with `update`; `digest` waits for the helper and returns."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._queue: queue.Queue[bytes | memoryview | None] | None = None
        self._worker: threading.Thread | None = None
        self._small = bytearray()  # small pieces, once the helper runs: one hop for many

    def update(self, data: bytes | memoryview) -> None:
        """Add the next piece (it must not change afterwards)."""
        if self._queue is None:
            if len(data) < THREAD_MIN_BYTES:
                self._hash.update(data)
                return
            self._start()
            assert self._queue is not None
        if len(data) < THREAD_MIN_BYTES:
            self._small += data
            if len(self._small) >= THREAD_MIN_BYTES:
                self._hand_small()
            return
        self._hand_small()
        self._queue.put(data)

    def digest(self) -> bytes:
        """The SHA-256 of everything fed so far; stops the helper thread."""
        self._hand_small()
        self.close()
        return self._hash.digest()

    def close(self) -> None:
        """Stop the helper thread (idempotent); call it when abandoning a stream."""
        if self._queue is not None and self._worker is not None:
            self._queue.put(None)
            self._worker.join()
            self._queue = None
            self._worker = None

    def _hand_small(self) -> None:
        if self._small and self._queue is not None:
            self._queue.put(bytes(self._small))
            self._small = bytearray()

    def _start(self) -> None:
        self._queue = queue.Queue(MAX_PENDING)
        self._worker = threading.Thread(
            target=self._run, args=(self._queue,), name="batch-sha256", daemon=True
        )
        self._worker.start()

    def _run(self, pieces: queue.Queue[bytes | memoryview | None]) -> None:
        update = self._hash.update
        while (piece := pieces.get()) is not None:
            update(piece)
