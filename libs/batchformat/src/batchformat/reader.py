"""Reading one batch file: its chunks through the push parser, records yielded as they come."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

from batchformat.crypt import DecryptionKeys
from batchformat.errors import BatchRejected, RejectReason
from batchformat.fsops import open_regular_file
from batchformat.keys import TrustedKeys
from batchformat.models import BatchName, Header, KindedRecord
from batchformat.parser import (
    DEFAULT_MAX_LINE_BYTES,
    NO_EXPECTATIONS,
    BatchParser,
    Expectations,
    VerifiedBatch,
)

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "READ_CHUNK_BYTES",
    "BatchParser",
    "BatchReader",
    "Expectations",
    "VerifiedBatch",
    "verify_batch_file",
]

READ_CHUNK_BYTES: Final = 1 << 20


class BatchReader:
    """Read and verify one batch file in a single pass, yielding its records as it goes.

    Iterate `records()` to the end before using anything: only then is the batch verified
    (`self.result`); a BatchRejected raised at any point means nothing may be applied.
    """

    def __init__(
        self,
        path: Path,
        trusted_keys: TrustedKeys | None,
        record_type: Any = KindedRecord,
        *,
        decode_records: bool = True,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        check_name: bool = True,
        expect: Expectations = NO_EXPECTATIONS,
        chunk_bytes: int = READ_CHUNK_BYTES,
        on_progress: Callable[[int], None] | None = None,
        decryption_keys: DecryptionKeys | None = None,
        accept_unencrypted: bool = True,
    ) -> None:
        if check_name:
            expect = Expectations(_name_of(path), expect.source, expect.destination)
        self.path = path
        self._parser = BatchParser(
            trusted_keys,
            record_type,
            decode_records=decode_records,
            max_line_bytes=max_line_bytes,
            expect=expect,
            decryption_keys=decryption_keys,
            accept_unencrypted=accept_unencrypted,
        )
        self._chunk_bytes = chunk_bytes
        self._on_progress = on_progress
        self.result: VerifiedBatch | None = None

    @property
    def header(self) -> Header | None:
        """The header, once the first line has been read."""
        return self._parser.header

    def records(self) -> Iterator[Any]:
        """Yield decoded records; when exhausted the batch is verified and `result` is set."""
        try:
            with open_regular_file(self.path) as file:
                while chunk := file.read(self._chunk_bytes):
                    yield from self._parser.feed(chunk)
                    if self._on_progress is not None:
                        self._on_progress(len(chunk))
            yield from self._parser.end()
            self.result = self._parser.finish()
        finally:
            self._parser.close()

    def verify(self) -> VerifiedBatch:
        """Read to the end, dropping records; return the verified batch."""
        for _ in self.records():
            pass
        assert self.result is not None
        return self.result


def verify_batch_file(path: Path, trusted_keys: TrustedKeys, **options: Any) -> VerifiedBatch:
    """Verify a whole batch file; raise BatchRejected with the reason if it fails."""
    return BatchReader(path, trusted_keys, **options).verify()


def _name_of(path: Path) -> BatchName:
    name = BatchName.parse(path.name)
    if name is None:
        raise BatchRejected(RejectReason.NAME_MISMATCH, f"{path.name!r} is not a batch file name")
    return name
