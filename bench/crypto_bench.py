"""Encrypted batches (batchformat/2) against plain ones (/1), and the cipher alone.

On the same records in the same run, each operation in its own process (its own peak RSS):
write, the agent's check (framing, digest, signature: no key) and the receiver's import
(verify and decode every record; decrypting for /2); and the cipher alone (the `age` command,
which big bodies go through, encrypting the plain batch's bytes and decrypting the encrypted
body, file to /dev/null) as its ceiling.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.batchformat_bench import BenchRecord, _records
from bench.harness import (
    Measurement,
    cpu_line,
    mb_per_s,
    median,
    own_peak_rss_mb,
    run_child,
    write_report,
)

BATCH_BYTES = int(os.environ.get("BENCH_BATCH_BYTES", str(1 << 30)))
REPEAT = int(os.environ.get("BENCH_REPEAT", "1"))
THRESHOLD_MIB = (1, 2, 4, 8, 16)  # batch sizes around agestream.CHILD_MIN_BYTES
TARGET_RATIO = 0.8
TARGET_RSS_MB = 100


def child_write(folder: str, mode: str) -> None:
    """Write the benchmark batch, plain or encrypted, in a folder of its own."""
    from batchformat import BatchWriter, Header, RecipientKeys, load_signing_key

    work = Path(folder)
    out = work / mode
    out.mkdir(exist_ok=True)
    key = load_signing_key(work / "bench.key")
    to = RecipientKeys.from_files([work / "bench.agepub"]) if mode == "encrypted" else None
    header = Header(
        batch_id=uuid.UUID(int=1), source="request-net", destination="response-net", seq=1,
        created_at=datetime.now(UTC),
    )  # fmt: skip
    watch = _AgeChildWatch()
    started = time.perf_counter()
    with BatchWriter(out, header, key, encrypt_to=to) as writer:
        writer.write_many(_records(BATCH_BYTES))
    published = writer.publish()
    _print(started, watch, path=str(published.path), size_bytes=published.size_bytes)


def child_check(path: str, mode: str) -> None:
    """`agent`: framing, digest, signature, no key; `import`: every record decoded too."""
    from batchformat import BatchReader, DecryptionKeys, TrustedKeys

    work = Path(path).parent.parent
    trusted = TrustedKeys.from_files([work / "bench.pub"])
    keys = DecryptionKeys.from_files([work / "bench.agekey"])
    watch = _AgeChildWatch()
    started = time.perf_counter()
    reader = BatchReader(
        Path(path), trusted, BenchRecord, decode_records=(mode == "import"), decryption_keys=keys
    )
    for _ in reader.records():
        pass
    assert reader.result is not None
    _print(started, watch, records=reader.result.record_count)


def child_threshold(folder: str) -> None:
    """Small encrypted batches written and imported in process and through the `age` command."""
    from batchformat import (
        BatchReader,
        BatchWriter,
        DecryptionKeys,
        Header,
        RecipientKeys,
        TrustedKeys,
        agestream,
        load_signing_key,
    )  # fmt: skip

    work = Path(folder)
    key = load_signing_key(work / "bench.key")
    to = RecipientKeys.from_files([work / "bench.agepub"])
    keys = DecryptionKeys.from_files([work / "bench.agekey"])
    trusted = TrustedKeys.from_files([work / "bench.pub"])
    rows = []
    for mib in THRESHOLD_MIB:
        for how in ("in_process", "child"):
            # The threshold moved so that each way takes every size (in process gathers it all).
            agestream.CHILD_MIN_BYTES = 0 if how == "child" else 1 << 40  # type: ignore[misc]
            writes, imports = [], []
            for seq in range(1, 6):
                header = Header(
                    batch_id=uuid.uuid4(), source="request-net", destination="response-net",
                    seq=seq, created_at=datetime.now(UTC),
                )  # fmt: skip
                started = time.perf_counter()
                with BatchWriter(work, header, key, encrypt_to=to) as writer:
                    writer.write_many(_records(mib << 20))
                path = writer.publish().path
                writes.append(time.perf_counter() - started)
                started = time.perf_counter()
                for _ in BatchReader(path, trusted, BenchRecord, decryption_keys=keys).records():
                    pass
                imports.append(time.perf_counter() - started)
                path.unlink()
            rows.append({"mib": mib, "how": how, "write_ms": median(writes) * 1000,
                         "import_ms": median(imports) * 1000})  # fmt: skip
    print(json.dumps({"seconds": 0.0, "rows": rows}))


def child_cipher(folder: str, source: str, mode: str) -> None:
    """The `age` command alone, as big bodies use it: a file encrypted or decrypted to nowhere."""
    from batchformat.agestream import age_command, age_environment

    work = Path(folder)
    if mode == "encrypt":
        how = ["--encrypt", "--recipient", (work / "bench.agepub").read_text().strip()]
    else:
        how = ["--decrypt", "--identity", str(work / "bench.agekey")]
    started = time.perf_counter()
    command = [age_command(), *how, "--output", os.devnull, source]
    subprocess.run(command, check=True, env=age_environment())  # as agestream runs it
    _print(started, None)


def child_encryptor(folder: str, source: str) -> None:
    """What encrypting adds to a write: agestream's encryptor on a file's bytes, output dropped."""
    from batchformat import RecipientKeys, agestream

    to = RecipientKeys.from_files([Path(folder) / "bench.agepub"])
    watch = _AgeChildWatch()
    started = time.perf_counter()
    encryptor = agestream.BodyEncryptor(to, lambda _: None)
    with open(source, "rb", buffering=0) as file:
        while piece := file.read(1 << 20):
            encryptor.feed(piece)
    encryptor.finish()
    _print(started, watch)


def _cut_body(batch: Path, body: Path) -> None:
    """Copy the age body of an encrypted batch (between header and trailer) to a file."""
    with batch.open("rb") as source, body.open("wb") as target:
        header = source.readline()
        size = os.fstat(source.fileno()).st_size
        source.seek(max(size - 4096, 0))
        trailer = source.read().rsplit(b"\n", 2)[-2]
        offset, remaining = len(header), size - len(header) - len(trailer) - 2
        while remaining:
            copied = os.copy_file_range(source.fileno(), target.fileno(), remaining, offset)
            offset, remaining = offset + copied, remaining - copied


class _AgeChildWatch(threading.Thread):
    """The peak RSS of this process's age child process (its VmHWM, read every 50 ms)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_mb = 0.0
        self._stop_event = threading.Event()
        self.start()

    def run(self) -> None:
        child: Path | None = None
        while not self._stop_event.wait(0.05):  # little work beside the measured one
            child = child or self._find()
            try:
                status = (child / "status").read_text() if child is not None else ""
            except OSError:
                child = None  # it ended: a later stream may start another
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_mb = max(self.peak_mb, int(line.split()[1]) / 1024)

    @staticmethod
    def _find() -> Path | None:
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                stat = (proc / "stat").read_text()
                if int(stat.rpartition(")")[2].split()[1]) != os.getpid():
                    continue
                if (proc / "comm").read_text() == "age\n":
                    return proc
            except (OSError, ValueError, IndexError):
                continue  # it ended meanwhile
        return None

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        return self.peak_mb


def _print(started: float, watch: _AgeChildWatch | None, **fields: Any) -> None:
    """The figures of one operation, its age child process's included (big bodies have one)."""
    seconds = time.perf_counter() - started
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    print(json.dumps({
        "seconds": seconds, "peak_rss_mb": own_peak_rss_mb(),
        "age_child_rss_mb": watch.stop() if watch is not None else 0.0,
        "cpu_seconds": own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime,
        **fields,
    }))  # fmt: skip


def _child(op: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "bench.crypto_bench", op, *args]


def run() -> Path:
    """Run the benchmark; return the report's path."""
    from batchformat import generate_encryption_key_pair, generate_key_pair

    work = Path(tempfile.mkdtemp(prefix="airlock-crypto-bench-"))
    rounds: list[dict[str, Measurement]] = []
    try:
        generate_key_pair("bench", work)
        generate_encryption_key_pair("bench", work)
        for number in range(REPEAT):
            got: dict[str, Measurement] = {}
            for mode in ("plain", "encrypted"):
                shutil.rmtree(work / mode, ignore_errors=True)
                got[f"write_{mode}"] = run_child(_child("write", str(work), mode))
            plain = got["write_plain"].output["path"]
            sealed = got["write_encrypted"].output["path"]
            body = work / "body.age"
            _cut_body(Path(sealed), body)
            got["cipher_encrypt"] = run_child(_child("cipher", str(work), plain, "encrypt"))
            got["cipher_decrypt"] = run_child(_child("cipher", str(work), str(body), "decrypt"))
            got["encryptor_alone"] = run_child(_child("encryptor", str(work), plain))
            body.unlink()
            for check in ("agent", "import"):
                got[f"{check}_plain"] = run_child(_child("check", plain, check))
                got[f"{check}_encrypted"] = run_child(_child("check", sealed, check))
            rounds.append(got)
            print(f"  round {number + 1}/{REPEAT} done", flush=True)
        threshold = run_child(_child("threshold", str(work))).output["rows"]
        size = int(rounds[0]["write_plain"].output["size_bytes"])
        sealed_size = int(rounds[0]["write_encrypted"].output["size_bytes"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _report(size, sealed_size, rounds, threshold)


def _report(
    size: int, sealed_size: int, rounds: list[dict[str, Measurement]], threshold: list[Any]
) -> Path:
    from batchformat.agestream import CHILD_MIN_BYTES

    child_min_mib = CHILD_MIN_BYTES >> 20
    names = list(rounds[0])
    figures: dict[str, Any] = {"plain_bytes": size, "encrypted_bytes": sealed_size}
    figures["child_threshold_ms"] = threshold
    rows = []
    for name in names:
        seconds = median([r[name].seconds for r in rounds])
        cpu = median([float(r[name].output.get("cpu_seconds", 0.0)) for r in rounds])
        rss = max(r[name].peak_rss_mb for r in rounds)
        child = max(float(r[name].output.get("age_child_rss_mb", 0.0)) for r in rounds)
        figures[name] = {
            "seconds_median": round(seconds, 3), "mb_per_s": mb_per_s(size, seconds),
            "cpu_seconds_median": round(cpu, 3), "peak_rss_mb": round(rss + child, 1),
            "own_rss_mb": round(rss, 1), "age_child_rss_mb": round(child, 1),
        }  # fmt: skip
        rows.append(
            f"| {name} | {seconds:.2f} | {mb_per_s(size, seconds)} | {cpu:.2f} "
            f"| {rss:.1f} | {child:.1f} |"
        )

    pairs = {  # ratio: (base, measured), the base's time over the measured one's, per round
        "write_encrypted_vs_plain": ("write_plain", "write_encrypted"),
        "agent_encrypted_vs_plain": ("agent_plain", "agent_encrypted"),
        "import_encrypted_vs_plain": ("import_plain", "import_encrypted"),
        "write_encrypted_vs_cipher_alone": ("cipher_encrypt", "write_encrypted"),
        "import_encrypted_vs_cipher_alone": ("cipher_decrypt", "import_encrypted"),
    }
    per_round = {
        name: [r[base].seconds / r[measured].seconds for r in rounds]
        for name, (base, measured) in pairs.items()
    }
    ratios = {name: round(median(values), 3) for name, values in per_round.items()}
    ranges = {name: [round(min(v), 2), round(max(v), 2)] for name, v in per_round.items()}
    peak = {mode: max(figures[f"{op}_{mode}"]["peak_rss_mb"] for op in ("write", "agent", "import"))
           for mode in ("plain", "encrypted")}  # fmt: skip
    figures["ratios"] = ratios
    figures["ratio_ranges"] = ranges
    figures["peak_rss_mb"] = peak
    targets = {
        "write": ratios["write_encrypted_vs_plain"] >= TARGET_RATIO,
        "import": ratios["import_encrypted_vs_plain"] >= TARGET_RATIO,
        "agent": ratios["agent_encrypted_vs_plain"] >= 0.95,
        "rss": peak["encrypted"] < TARGET_RSS_MB,
    }
    figures["targets_met"] = targets

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    markdown = "\n".join([
        "# Encrypted batches (batchformat/2) against plain ones",
        "",
        f"{size / 2**30:.2f} GiB of request records (plain file; the encrypted one is "
        f"{sealed_size / 2**30:.3f} GiB), page cache, {len(rounds)} round(s), medians. "
        "MB/s are of the plain size for every row. Reproduce: `uv run python -m bench crypto` "
        "(`BENCH_BATCH_BYTES`, `BENCH_REPEAT`).",
        "",
        f"{cpu_line()}.",
        "",
        "| operation | seconds | MB/s | CPU seconds | peak RSS MB | age process peak RSS MB |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        "- `write_*`: BatchWriter (for `encrypted`, through the `age` command, as any body "
        f"of {child_min_mib} MiB or more), hash, sign, fsync.",
        "- `agent_*`: framing, SHA-256, Ed25519, no decryption key (the transfer agent's check).",
        "- `import_*`: the receiver's verification, decrypting (through the `age` command) "
        "and decoding every record.",
        "- CPU seconds: user and system time of the operation's process and its age child "
        "together; peak RSS: each process's own (the targets count their sum).",
        "- `cipher_encrypt`: the `age` command encrypting the plain file's bytes alone; "
        "`cipher_decrypt`: decrypting the encrypted body alone (file to /dev/null, no pipes).",
        "- `encryptor_alone`: agestream's encryptor fed the plain file's bytes (1 MiB "
        "pieces), its output thrown away: what encrypting adds to a write (the `age` "
        "process, the pipes, the plaintext's SHA-256).",
        "",
        "| ratio (median of the rounds) | value | rounds' range |",
        "|---|---|---|",
        *[
            f"| {name} | {value:.2f} | {ranges[name][0]:.2f}-{ranges[name][1]:.2f} |"
            for name, value in ratios.items()
        ],
        "",
        f"Targets: encrypted write >= {TARGET_RATIO} of plain: {verdict(targets['write'])}; "
        f"encrypted import >= {TARGET_RATIO} of plain: {verdict(targets['import'])}; agent "
        f"within 5 %: {verdict(targets['agent'])}; peak RSS < {TARGET_RSS_MB} MB "
        f"(plain {peak['plain']:.1f}, encrypted {peak['encrypted']:.1f}): "
        f"{verdict(targets['rss'])}.",
        "",
        "Where the `age` process pays for its start: small encrypted batches written and "
        "imported in process and through the child (medians of 5, ms; a body of "
        f"`agestream.CHILD_MIN_BYTES` = {child_min_mib} MiB or more takes the child).",
        "",
        "| MiB | write in process | write via child | import in process | import via child |",
        "|---|---|---|---|---|",
        *[
            f"| {a['mib']} | {a['write_ms']:.1f} | {b['write_ms']:.1f} | {a['import_ms']:.1f} "
            f"| {b['import_ms']:.1f} |"
            for a, b in zip(threshold[::2], threshold[1::2], strict=True)
        ],
        "",
    ])  # fmt: skip
    return write_report("crypto", figures, markdown)


def main(argv: list[str]) -> None:
    """Child entry point: `python -m bench.crypto_bench OP ARGS`."""
    op, *args = argv
    ops: dict[str, Callable[..., None]] = {
        "write": child_write, "check": child_check, "cipher": child_cipher,
        "encryptor": child_encryptor,
        "threshold": child_threshold,
    }  # fmt: skip
    ops[op](*args)


if __name__ == "__main__":
    main(sys.argv[1:])
