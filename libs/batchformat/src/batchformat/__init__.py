"""batchformat: Airlock's signed, checksummed JSON-lines batch files and drop zones.

See docs/batch-format.md for the specification.
"""

from batchformat.dropzone import DropZone, IgnoredEntry, IgnoredKind, ReadyBatch, Scan
from batchformat.errors import BatchRejected, KeyFileError, RejectReason
from batchformat.keys import (
    SigningKey,
    TrustedKeys,
    generate_key_pair,
    load_public_key,
    load_signing_key,
)
from batchformat.models import FORMAT, BatchName, Header, KindedRecord, Trailer
from batchformat.parser import DEFAULT_MAX_LINE_BYTES, BatchParser, Expectations, VerifiedBatch
from batchformat.reader import BatchReader, verify_batch_file
from batchformat.writer import BatchWriter, PublishedBatch, write_batch

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "FORMAT",
    "BatchName",
    "BatchParser",
    "BatchReader",
    "BatchRejected",
    "BatchWriter",
    "DropZone",
    "Expectations",
    "Header",
    "IgnoredEntry",
    "IgnoredKind",
    "KeyFileError",
    "KindedRecord",
    "PublishedBatch",
    "ReadyBatch",
    "RejectReason",
    "Scan",
    "SigningKey",
    "Trailer",
    "TrustedKeys",
    "VerifiedBatch",
    "generate_key_pair",
    "load_public_key",
    "load_signing_key",
    "verify_batch_file",
    "write_batch",
]
