"""`batchformat`: make keys, pack, verify, inspect and decrypt batch files from a shell.

Exit codes: 0 success, 1 a batch (or pack's input) was rejected, 2 a usage error.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Final

import msgspec

from batchformat.agestream import AgeProcessError
from batchformat.crypt import DecryptionKeys, RecipientKeys, generate_encryption_key_pair
from batchformat.errors import BatchRejected, KeyFileError
from batchformat.fsops import open_regular_file
from batchformat.keys import TrustedKeys, generate_key_pair, load_signing_key
from batchformat.models import FORMAT_ENCRYPTED, BatchName, FormatProbe, Header
from batchformat.parser import DEFAULT_MAX_LINE_BYTES, BatchParser, Expectations
from batchformat.reader import BatchReader
from batchformat.writer import BatchWriter

EXIT_OK: Final = 0
EXIT_REJECTED: Final = 1
EXIT_USAGE: Final = 2
# Below this size a progress bar is noise.
PROGRESS_MIN_BYTES: Final = 64 * 1024 * 1024


class UsageError(Exception):
    """Bad arguments or unreadable inputs: exit code 2."""


class InputRejected(Exception):
    """`pack` input that is not one JSON object with a string `kind` per line: exit code 1."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args = _parser().parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except BatchRejected as exc:
        line = f" (line {exc.line})" if exc.line is not None else ""
        print(f"rejected: {exc.reason}: {exc.message}{line}", file=sys.stderr)
        return EXIT_REJECTED
    except InputRejected as exc:
        print(f"rejected input: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    except (UsageError, KeyFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except AgeProcessError as exc:  # the `age` command big bodies go through: missing, killed
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FileNotFoundError as exc:
        print(f"error: {exc.filename}: no such file", file=sys.stderr)
        return EXIT_USAGE


def keygen(args: argparse.Namespace) -> int:
    """Write both key pairs: signing (`ID.key`, `ID.pub`), encryption (`ID.agekey`, `ID.agepub`)."""
    paths: list[Path] = []
    if args.kind in ("both", "signing"):
        paths += generate_key_pair(args.key_id, args.out)
    if args.kind in ("both", "encryption"):
        paths += generate_encryption_key_pair(args.key_id, args.out)
    for path in paths:
        print(path)
    return EXIT_OK


def pack(args: argparse.Namespace) -> int:
    """Sign JSON-lines records into a batch file; print its path."""
    key = load_signing_key(args.key)
    recipients = RecipientKeys.from_files(args.encrypt_to) if args.encrypt_to else None
    header = _header_from_args(args)
    if not args.out.is_dir():
        raise UsageError(f"{args.out} is not a folder")
    with (
        _input(args.records) as (stream, size),
        _progress(size, "pack") as advance,
        BatchWriter(args.out, header, key, encrypt_to=recipients) as writer,
    ):
        for number, line in enumerate(stream, start=1):
            advance(len(line))
            if line.strip():
                writer.write(_input_record(line, number))
    print(writer.publish().path)
    return EXIT_OK


def verify(args: argparse.Namespace) -> int:
    """Verify a batch: framing, digest, signature; records too unless encrypted and no key."""
    path: Path = args.file
    identities = _identities(args.identity)
    decode = identities is not None or not _is_encrypted(path)
    with _progress(_size_of(path), "verify") as advance:
        result = _reader(args, identities, decode_records=decode, on_progress=advance).verify()
    what = "records" if decode else "records (encrypted, announced by the trailer)"
    print(
        f"ok: {path.name}: {result.record_count} {what}, {result.size_bytes} bytes, "
        f"sha256 {result.sha256}, signed by {result.trailer.key_id}"
    )
    return EXIT_OK


def decrypt(args: argparse.Namespace) -> int:
    """Verify a batch and write its record lines in clear (to a file, or - for stdout)."""
    identities = _identities(args.identity)
    if identities is None:
        raise UsageError("give the receiver's key (--identity ID.agekey)")
    reader = _reader(args, identities, record_type=msgspec.Raw)
    with _output(args.out) as out:
        for record in reader.records():
            out.write(bytes(record))
            out.write(b"\n")
    return EXIT_OK


def _reader(
    args: argparse.Namespace, identities: DecryptionKeys | None, **options: Any
) -> BatchReader:
    path: Path = args.file
    return BatchReader(
        path,
        _trusted_keys(args.trusted, args.trusted_dir),
        max_line_bytes=args.max_line_bytes,
        check_name=BatchName.parse(path.name) is not None,
        expect=Expectations(source=args.expect_source, destination=args.expect_destination),
        decryption_keys=identities,
        **options,
    )


def inspect(args: argparse.Namespace) -> int:
    """Print the header, the record count and the trailer as JSON; no signature check."""
    path: Path = args.file
    parser = BatchParser(None, decode_records=False, max_line_bytes=args.max_line_bytes)
    problem: BatchRejected | None = None
    with _progress(_size_of(path), "inspect") as advance:
        try:
            with open_regular_file(path) as file:
                while chunk := file.read(1 << 20):
                    parser.feed(chunk)
                    advance(len(chunk))
            parser.finish()
        except BatchRejected as exc:
            problem = exc
    report: dict[str, Any] = {
        "file": str(path),
        "size_bytes": _size_of(path),
        "header": parser.header,
        "record_count": _record_count(parser),
        "trailer": parser.trailer,
        "problem": problem.as_dict() if problem else None,
        "note": "the signature is not checked here; use `batchformat verify --trusted`",
    }
    print(msgspec.json.format(msgspec.json.encode(report), indent=2).decode())
    return EXIT_REJECTED if problem else EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchformat",
        description="Make keys for, pack, verify, inspect and decrypt batch files.",
        epilog="Exit codes: 0 ok, 1 batch rejected, 2 usage error.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    cmd = commands.add_parser("keygen", help="generate a signing and an encryption key pair")
    cmd.add_argument("--key-id", required=True, help="key id: the files' name")
    cmd.add_argument(
        "--out", required=True, type=Path, help="folder for ID.key, ID.pub, ID.agekey, ID.agepub"
    )
    cmd.add_argument("--kind", choices=("both", "signing", "encryption"), default="both")
    cmd.set_defaults(command=keygen)

    cmd = commands.add_parser("pack", help="sign JSON-lines records into a batch")
    cmd.add_argument("records", type=Path, help="one JSON object per line, or - for stdin")
    cmd.add_argument("--source", required=True, help="network id of the sender")
    cmd.add_argument("--destination", required=True, help="network id of the receiver")
    cmd.add_argument("--seq", required=True, type=int, help="the sender's sequence number")
    cmd.add_argument("--key", required=True, type=Path, help="signing key, ID.key")
    cmd.add_argument("--out", required=True, type=Path, help="folder to publish the batch in")
    cmd.add_argument("--batch-id", type=uuid.UUID, help="default: a new random UUID")
    cmd.add_argument("--created-at", help="RFC 3339 time (default: now, UTC)")
    cmd.add_argument(
        "--encrypt-to", action="append", type=Path, default=[],
        help=f"encrypt the records to ID.agepub ({FORMAT_ENCRYPTED}); repeatable",
    )  # fmt: skip
    cmd.set_defaults(command=pack)

    for name, func, text in (
        ("verify", verify, "verify a batch (no private key needed)"),
        ("inspect", inspect, "show a batch's header, count and trailer"),
        ("decrypt", decrypt, "verify a batch and print its records in clear"),
    ):
        cmd = commands.add_parser(name, help=text)
        cmd.add_argument("file", type=Path)
        cmd.add_argument("--max-line-bytes", type=int, default=DEFAULT_MAX_LINE_BYTES)
        if func is not inspect:
            cmd.add_argument(
                "--identity", action="append", type=Path, default=[],
                help="the receiver's decryption key, ID.agekey (repeatable)",
            )  # fmt: skip
        if func is decrypt:
            cmd.add_argument("--out", type=Path, default=Path("-"), help="file, or - (stdout)")
        if func is not inspect:
            cmd.add_argument("--trusted", action="append", type=Path, default=[], help="ID.pub")
            cmd.add_argument("--trusted-dir", type=Path, help="trust every *.pub in a folder")
            cmd.add_argument("--expect-source", help="reject batches from another source")
            cmd.add_argument("--expect-destination", help="reject batches for another destination")
        cmd.set_defaults(command=func)
    return parser


def _header_from_args(args: argparse.Namespace) -> Header:
    fields = {
        "batch_id": str(args.batch_id or uuid.uuid4()),
        "source": args.source,
        "destination": args.destination,
        "seq": args.seq,
        "created_at": args.created_at or datetime.now(UTC).isoformat(),
    }
    try:
        return msgspec.convert(fields, Header)
    except msgspec.ValidationError as exc:
        raise UsageError(f"invalid batch header: {exc}") from None


def _input_record(line: bytes, number: int) -> dict[str, Any]:
    try:
        record = msgspec.json.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise InputRejected(f"line {number}: not JSON: {exc}") from None
    if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
        raise InputRejected(f'line {number}: not a JSON object with a string "kind"')
    return record


def _trusted_keys(files: list[Path], folder: Path | None) -> TrustedKeys:
    paths = list(files)
    if folder is not None:
        paths += sorted(folder.glob("*.pub"))
    if not paths:
        raise UsageError("give at least one trusted public key (--trusted ID.pub or --trusted-dir)")
    return TrustedKeys.from_files(paths)


def _record_count(parser: BatchParser) -> int | None:
    """Lines counted in clear; for an encrypted body, what the trailer announces."""
    if parser.header is not None and parser.header.encrypted:
        return parser.trailer.record_count if parser.trailer is not None else None
    return parser.records_seen


def _identities(files: list[Path]) -> DecryptionKeys | None:
    return DecryptionKeys.from_files(files) if files else None


def _is_encrypted(path: Path) -> bool:
    """Whether the first line says `batchformat/2` (the reader checks it properly)."""
    with open_regular_file(path) as file:
        line = file.readline(DEFAULT_MAX_LINE_BYTES)
    try:
        return msgspec.json.decode(line, type=FormatProbe).format == FORMAT_ENCRYPTED
    except (msgspec.DecodeError, UnicodeDecodeError):
        return False


@contextmanager
def _output(path: Path) -> Iterator[BinaryIO]:
    if str(path) == "-":
        yield sys.stdout.buffer
        return
    with path.open("xb") as stream:
        yield stream


def _size_of(path: Path) -> int:
    return path.lstat().st_size


@contextmanager
def _input(path: Path) -> Iterator[tuple[BinaryIO, int | None]]:
    if str(path) == "-":
        yield sys.stdin.buffer, None
        return
    with path.open("rb") as stream:
        yield stream, _size_of(path)


@contextmanager
def _progress(total: int | None, label: str) -> Iterator[Callable[[int], None]]:
    """A byte-count progress bar on stderr, shown only when stdout is a terminal."""
    if not sys.stdout.isatty() or (total is not None and total < PROGRESS_MIN_BYTES):
        yield lambda _: None
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=label, unit="B", unit_scale=True, file=sys.stderr) as bar:
        yield bar.update


if __name__ == "__main__":
    sys.exit(main())
