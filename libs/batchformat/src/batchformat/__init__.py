"""batchformat: Airlock's signed, checksummed, encrypted batch files and drop zones.

See docs/batch-format.md for the specification.
"""

from batchformat.crypt import (
    DecryptionKeys,
    RecipientKeys,
    generate_encryption_key_pair,
    load_identity,
    load_recipient,
)
from batchformat.dropzone import DropZone, IgnoredEntry, IgnoredKind, ReadyBatch, Scan
from batchformat.errors import BatchRejected, KeyFileError, RejectReason
from batchformat.keys import (
    SigningKey,
    TrustedKeys,
    generate_key_pair,
    load_public_key,
    load_signing_key,
)
from batchformat.models import FORMAT, FORMAT_ENCRYPTED, BatchName, Header, KindedRecord, Trailer
from batchformat.parser import DEFAULT_MAX_LINE_BYTES, BatchParser, Expectations, VerifiedBatch
from batchformat.reader import BatchReader, verify_batch_file
from batchformat.sameness import same_batch
from batchformat.writer import BatchWriter, PublishedBatch, write_batch

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "FORMAT",
    "FORMAT_ENCRYPTED",
    "BatchName",
    "BatchParser",
    "BatchReader",
    "BatchRejected",
    "BatchWriter",
    "DecryptionKeys",
    "DropZone",
    "Expectations",
    "Header",
    "IgnoredEntry",
    "IgnoredKind",
    "KeyFileError",
    "KindedRecord",
    "PublishedBatch",
    "ReadyBatch",
    "RecipientKeys",
    "RejectReason",
    "Scan",
    "SigningKey",
    "Trailer",
    "TrustedKeys",
    "VerifiedBatch",
    "generate_encryption_key_pair",
    "generate_key_pair",
    "load_identity",
    "load_public_key",
    "load_recipient",
    "load_signing_key",
    "same_batch",
    "verify_batch_file",
    "write_batch",
]
