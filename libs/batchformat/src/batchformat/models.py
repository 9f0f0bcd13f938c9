"""The header and trailer lines of a batch file (`batchformat/1` and `/2`), and its name."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Final

import msgspec

FORMAT: Final = "batchformat/1"  # records in clear text
FORMAT_ENCRYPTED: Final = "batchformat/2"  # records encrypted with age to the receiver
FORMATS: Final = (FORMAT, FORMAT_ENCRYPTED)
MAX_SEQ: Final = 999_999_999_999  # twelve digits in the file name

NETWORK_ID_PATTERN: Final = r"^[a-z0-9][a-z0-9-]{0,62}$"
KEY_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

NetworkId = Annotated[str, msgspec.Meta(pattern=NETWORK_ID_PATTERN)]
KeyId = Annotated[str, msgspec.Meta(pattern=KEY_ID_PATTERN)]
Seq = Annotated[int, msgspec.Meta(ge=0, le=MAX_SEQ)]
Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]
RecipientIds = Annotated[tuple[KeyId, ...], msgspec.Meta(min_length=1, max_length=16)]
Sha256Hex = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]

_NAME_RE: Final = re.compile(
    r"(?P<source>[a-z0-9][a-z0-9-]{0,62})__(?P<seq>[0-9]{12})__"
    r"(?P<batch_id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.jsonl"
)


class BatchName(msgspec.Struct, frozen=True, order=True):
    """What a batch file name says: `{source}__{seq:012d}__{batch_id}.jsonl`."""

    source: str
    seq: int
    batch_id: uuid.UUID

    @classmethod
    def parse(cls, name: str) -> BatchName | None:
        """The parts of a strictly well-formed batch file name, or None for any other name."""
        match = _NAME_RE.fullmatch(name)
        if match is None:
            return None
        return cls(match["source"], int(match["seq"]), uuid.UUID(match["batch_id"]))

    @property
    def file_name(self) -> str:
        """The visible file name of this batch."""
        return f"{self.source}__{self.seq:012d}__{self.batch_id}.jsonl"

    @property
    def part_name(self) -> str:
        """The hidden name the batch is written under before its atomic rename."""
        return f".{self.file_name}.part"


class Header(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The first line of a batch."""

    format: str = FORMAT
    batch_id: uuid.UUID
    source: NetworkId
    destination: NetworkId
    seq: Seq
    created_at: Timestamp
    # batchformat/2 only: the ids of the keys the body is encrypted to (absent in /1).
    recipients: RecipientIds | msgspec.UnsetType = msgspec.UNSET

    @property
    def encrypted(self) -> bool:
        """Whether the records are encrypted (`batchformat/2`)."""
        return self.format == FORMAT_ENCRYPTED

    @property
    def name(self) -> BatchName:
        """The file name this batch must be published under."""
        return BatchName(self.source, self.seq, self.batch_id)


class Trailer(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The last line's content: count, digest of every byte before it, and its signature."""

    record_count: Annotated[int, msgspec.Meta(ge=0)]
    sha256: Sha256Hex
    key_id: KeyId
    signature: str


class TrailerLine(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The trailer line is an object with the single key `trailer`."""

    trailer: Trailer


class FormatProbe(msgspec.Struct, frozen=True):
    """Just the `format` field of a header, to tell an unsupported format from a broken one."""

    format: str


class KindedRecord(msgspec.Struct, frozen=True):
    """Any record: a JSON object with a string `kind`; other fields are checked, not kept."""

    kind: str
