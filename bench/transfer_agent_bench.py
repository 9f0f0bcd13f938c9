"""Transfer agent: big-batch throughput against `cp`+`sync`, small-batch delivery delay.

Each phase runs its own `transfer-agent run` child process, so each peak RSS is its own.

- big: one batch of BENCH_BATCH_BYTES (1 GiB) prepared outside the source folder, on the
  same file system, twice: records in clear (`batchformat/1`) and encrypted
  (`batchformat/2`, the default, whose body the agent hashes without splitting it into
  lines). A round times, on each file: `cp FILE COPY` then `sync`;
  `openssl dgst -sha256 FILE` (hashing alone, which the agent must also do); and the agent,
  from `rename(prepared, SOURCE/name)` until DEST/name exists. All three read the file from
  the page cache, and `sync` runs before each timing so that no step pays for the dirty
  pages of an earlier one. BENCH_REPEAT (3) interleaved rounds, medians reported. The
  target compares the agent with the slower of the two ceilings in each round (copying to
  disk, or hashing on this CPU), and the report names the CPU and its hashing flags.
- small: BENCH_SMALL_BATCHES (1,000) batches of a few KB, prepared beforehand and renamed
  into the source one every PACE_S, so that the figures are latency, not a backlog; between
  renames the destination is polled for each one, noting when it appears.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bench.agent_site import (
    AgentProcess,
    Site,
    requests,
    requests_of_about,
    running_agent,
)
from bench.harness import machine_cpu_seconds, mb_per_s, median, percentile, write_report
from transfer_agent.daemon import WATCH_STEP_MS
from transfer_agent.delivery import WRITEBACK_BYTES

BATCH_BYTES: Final = int(os.environ.get("BENCH_BATCH_BYTES", str(1 << 30)))
REPEAT: Final = int(os.environ.get("BENCH_REPEAT", "3"))
SMALL_BATCHES: Final = int(os.environ.get("BENCH_SMALL_BATCHES", "1000"))
SMALL_RECORDS: Final = 15  # about 4 KB per batch
PACE_S: Final = 0.015
BIG_POLL_S: Final = 0.005
SMALL_POLL_S: Final = 0.001
# The agent's periodic rescan (60 s) catches a batch its file watcher missed at start-up.
WARM_UP_TIMEOUT_S: Final = 90.0
TARGET_RATIO: Final = 0.90
TARGET_RSS_MB: Final = 100
TARGET_P50_MS: Final = 50
TARGET_P99_MS: Final = 250
# Cores used by other processes above which the agent's throughput is reported as a lower bound.
BUSY_CORES: Final = 0.25


def _wait_for(path: Path, poll_s: float, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{path.name} did not reach {path.parent} in {timeout:.0f} s "
                "(quarantined? see the agent's log)"
            )
        time.sleep(poll_s)


def _deliver_one(site: Site, prepared: Path, poll_s: float, timeout: float) -> float:
    """Rename a prepared batch into the source; seconds until it is visible at the destination."""
    started = time.perf_counter()
    os.rename(prepared, site.source / prepared.name)
    _wait_for(site.destination / prepared.name, poll_s, timeout)
    return time.perf_counter() - started


def _timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def _flush_dirty_pages() -> None:
    """So that the next timing pays for its own writes only, not for an earlier step's."""
    subprocess.run(["sync"], check=True)


# name: (records encrypted, what the report calls it)
BIG_FORMATS: Final = {
    "plain": (False, "records in clear (`batchformat/1`)"),
    "encrypted": (True, "encrypted (`batchformat/2`, the default)"),
}
TARGET_ENCRYPTED_VS_PLAIN: Final = 0.95  # the agent's throughput on encrypted batches


@dataclass(frozen=True)
class BigResult:
    """The big-batch phase for one format: per round, seconds of each operation."""

    name: str
    size_bytes: int
    records: int
    rounds: list[dict[str, float]]
    peak_rss_mb: float


def _big_phase(site: Site) -> list[BigResult]:
    """Prepare the big batches, then time interleaved rounds against one running agent."""
    bigs = {}
    for name, (encrypted, _) in BIG_FORMATS.items():
        print(f"transfer-agent: writing a {BATCH_BYTES / 2**30:.2f} GiB {name} batch ...")
        bigs[name] = site.batch(requests_of_about(BATCH_BYTES), encrypted=encrypted)
    warm_up = site.batch(requests(SMALL_RECORDS)).path
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in bigs}
    with running_agent(site, "archive") as agent:
        _deliver_one(site, warm_up, BIG_POLL_S, WARM_UP_TIMEOUT_S)
        for number in range(REPEAT):
            for name, big in bigs.items():
                rounds[name].append(_big_round(site, agent, big.path))
            print(f"  big batches: round {number + 1}/{REPEAT} done", flush=True)
        peak_rss = agent.peak_rss_mb()  # over both formats
    for big in bigs.values():
        big.path.unlink()
    return [
        BigResult(name, big.size_bytes, big.record_count, rounds[name], peak_rss)
        for name, big in bigs.items()
    ]


def _big_round(site: Site, agent: AgentProcess, batch: Path) -> dict[str, float]:
    """Time cp+sync, openssl and the agent on the same file; leave the file where it was."""
    copy = site.copies / batch.name
    _flush_dirty_pages()
    cp = _timed(["cp", str(batch), str(copy)])
    sync = _timed(["sync"])
    copy.unlink()
    _flush_dirty_pages()
    openssl = _timed(["openssl", "dgst", "-sha256", str(batch)])
    _flush_dirty_pages()
    return {
        **_time_agent(site, agent, batch),
        "cp_sync": cp + sync,
        "cp": cp,
        "sync": sync,
        "openssl_sha256": openssl,
    }


def _time_agent(site: Site, agent: AgentProcess, batch: Path) -> dict[str, float]:
    """Deliver the batch through the agent; move it back and drop the delivered copy."""
    copied_before, seconds_before = agent.copy_totals()
    cpu_before, machine_before = agent.cpu_seconds(), machine_cpu_seconds()
    seen = _deliver_one(site, batch, BIG_POLL_S, timeout=max(60.0, BATCH_BYTES / 20e6))
    machine = machine_cpu_seconds() - machine_before
    cpu = agent.cpu_seconds() - cpu_before
    # Counted once the source copy is archived: then it can be moved back.
    seconds = agent.wait_copies(copied_before + 1) - seconds_before
    os.rename(site.source / "sent" / batch.name, batch)
    (site.destination / batch.name).unlink()
    return {
        "agent": seen,
        "agent_in_process": seconds,
        "agent_cpu": cpu,
        "other_processes_cores": (machine - cpu) / seen,
    }


@dataclass(frozen=True)
class SmallResult:
    """The small-batch phase: delivery delay of each batch, and what they cost the agent."""

    delays_s: list[float]
    bytes_each: int
    agent_seconds_each: float
    poll_period_s: float
    peak_rss_mb: float


def _small_phase(site: Site) -> SmallResult:
    """Rename prepared small batches into the source at a steady pace; time each delivery."""
    print(f"transfer-agent: preparing {SMALL_BATCHES:,} small batches ...", flush=True)
    warm_up, *batches = [site.batch(requests(SMALL_RECORDS)) for _ in range(SMALL_BATCHES + 1)]
    print(f"  renaming one into the source every {PACE_S * 1000:.0f} ms ...", flush=True)
    with running_agent(site, "delete") as agent:
        _deliver_one(site, warm_up.path, SMALL_POLL_S, WARM_UP_TIMEOUT_S)
        copied_before, seconds_before = agent.copy_totals()
        delays, poll_period = _deliver_at_pace(site, [batch.path for batch in batches])
        seconds = agent.wait_copies(copied_before + len(batches)) - seconds_before
        peak_rss = agent.peak_rss_mb()
    return SmallResult(
        delays_s=delays,
        bytes_each=round(median([batch.size_bytes for batch in batches])),
        agent_seconds_each=seconds / len(batches),
        poll_period_s=poll_period,
        peak_rss_mb=peak_rss,
    )


def _deliver_at_pace(site: Site, batches: list[Path]) -> tuple[list[float], float]:
    """Rename a batch into the source every PACE_S, polling the destination in between.

    Returns each batch's delay from its rename to its name at the destination, and the
    mean time between two polls: the detection's resolution. One thread does both, so the
    detector never competes with the renames for the GIL.
    """
    awaited: dict[str, float] = {}  # destination path -> when the batch was renamed
    delays: list[float] = []
    polls = 0
    start = time.perf_counter()
    deadline = start + len(batches) * PACE_S + 60.0
    while len(delays) < len(batches):
        renamed = len(delays) + len(awaited)
        if renamed < len(batches) and time.perf_counter() >= start + renamed * PACE_S:
            batch = batches[renamed]
            awaited[os.path.join(site.destination, batch.name)] = time.perf_counter()
            os.rename(batch, site.source / batch.name)
        for target, renamed_at in list(awaited.items()):
            if os.path.exists(target):
                delays.append(time.perf_counter() - renamed_at)
                del awaited[target]
        polls += 1
        if time.perf_counter() > deadline:
            raise TimeoutError(
                f"{len(batches) - len(delays)} of {len(batches)} small batches did not reach "
                "the destination (quarantined? see the agent's log)"
            )
        time.sleep(SMALL_POLL_S)
    return delays, (time.perf_counter() - start) / polls


def run() -> Path:
    """Run both phases; return the report's path."""
    work = Path(tempfile.mkdtemp(prefix="airlock-bench-agent-"))
    try:
        site = Site.create(work)
        filesystem = _filesystem_of(work)
        bigs = _big_phase(site)
        small = _small_phase(site)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _report(bigs, small, filesystem)


def _filesystem_of(path: Path) -> str:
    """The type of the file system holding path (on tmpfs an fsync costs nothing)."""
    best = ("", "unknown")
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, mount_point, fs_type, *_ = line.split()
        inside = path.is_relative_to(mount_point)
        if inside and len(mount_point) >= len(best[0]):
            best = (mount_point, fs_type)
    return best[1]


BIG_ROWS: Final = {
    "agent": "agent: rename into the source → visible at the destination",
    "agent_in_process": "agent's own time: claim → copied, verified, fsynced, archived",
    "cp_sync": "`cp FILE COPY` then `sync`",
    "cp": "… of which `cp` (into the page cache)",
    "sync": "… of which `sync` (to disk)",
    "openssl_sha256": "`openssl dgst -sha256 FILE` (hashing alone)",
}


def _report(bigs: list[BigResult], small: SmallResult, filesystem: str) -> Path:
    big_figures, big_lines = {}, []
    for big in bigs:
        big_figures[big.name], lines = _big_section(big, filesystem)
        big_lines += [*lines, ""]
    comparison = _encrypted_vs_plain(bigs)
    small_figures, small_lines = _small_section(small)
    markdown = "\n".join(
        [
            "# transfer agent: throughput and delivery delay",
            "",
            "Reproduce: `python -m uv run --frozen python -m bench transfer-agent` "
            "(`BENCH_BATCH_BYTES`, `BENCH_REPEAT`, `BENCH_SMALL_BATCHES` change the size, "
            "the rounds and the count).",
            "",
            *big_lines,
            *comparison["lines"],
            "",
            *small_lines,
            "",
        ]
    )
    figures = {
        "big_batch": big_figures,
        "encrypted_vs_plain": comparison["ratio"],
        "small_batches": small_figures,
    }
    return write_report("transfer-agent", figures, markdown)


RATIOS: Final = {  # name: (ceiling, measured), compared as throughputs
    "agent_vs_slower_ceiling": ("slower_ceiling", "agent"),
    "agent_vs_cp_sync": ("cp_sync", "agent"),
    "agent_vs_openssl_sha256": ("openssl_sha256", "agent"),
    "openssl_sha256_vs_cp_sync": ("cp_sync", "openssl_sha256"),
}


def _round_ratios(rounds: list[dict[str, float]]) -> dict[str, list[float]]:
    # Per-round ratios cancel the machine's slow spells; the median of them is reported.
    return {
        name: sorted(_seconds(r, ceiling) / _seconds(r, ours) for r in rounds)
        for name, (ceiling, ours) in RATIOS.items()
    }


def _seconds(round_: dict[str, float], name: str) -> float:
    """A round's seconds for an operation; the slower ceiling is the longer of the two."""
    if name == "slower_ceiling":
        return max(round_["cp_sync"], round_["openssl_sha256"])
    return round_[name]


def _big_section(big: BigResult, filesystem: str) -> tuple[dict[str, Any], list[str]]:
    size = big.size_bytes
    seconds = {name: median([r[name] for r in big.rounds]) for name in BIG_ROWS}
    per_round = _round_ratios(big.rounds)
    ratios = {name: round(median(values), 3) for name, values in per_round.items()}
    ratio_met = ratios["agent_vs_slower_ceiling"] >= TARGET_RATIO
    cpu = cpu_description()
    rss_met = big.peak_rss_mb < TARGET_RSS_MB
    figures = {
        "batch_bytes": size,
        "records": big.records,
        "rounds": len(big.rounds),
        "filesystem": filesystem,
        "cpu": cpu,
        "seconds_median": {name: round(value, 3) for name, value in seconds.items()},
        "mb_per_s": {name: mb_per_s(size, value) for name, value in seconds.items()},
        "ratios": ratios,
        "agent_peak_rss_mb": round(big.peak_rss_mb, 1),
        "per_round_seconds": [{k: round(v, 3) for k, v in r.items()} for r in big.rounds],
        "targets": {
            "agent_vs_slower_ceiling_min": TARGET_RATIO,
            "peak_rss_mb_max": TARGET_RSS_MB,
            "ratio_met": ratio_met,
            "rss_met": rss_met,
        },
    }
    lines = [
        f"## One {size / 2**30:.2f} GiB batch, {BIG_FORMATS[big.name][1]} "
        f"({big.records:,} records)",
        "",
        f"On {filesystem}, read from the page cache by every operation; `sync` before each "
        f"timing; {len(big.rounds)} interleaved rounds, medians reported.",
        "",
        f"CPU: {cpu['model']}, {os.cpu_count()} cores; hashing flags: "
        f"{', '.join(cpu['hash_flags']) or 'none'} (SHA extensions: "
        f"{'yes' if cpu['sha_extensions'] else 'no'}).",
        "",
        "| operation | seconds | MB/s |",
        "|---|---|---|",
        *[
            f"| {label} | {seconds[name]:.3f} | {mb_per_s(size, seconds[name])} |"
            for name, label in BIG_ROWS.items()
        ],
        "",
        "| ratio of throughputs, per round | median | lowest | highest |",
        "|---|---|---|---|",
        *[
            f"| {name} | {ratios[name]:.2f} | {values[0]:.2f} | {values[-1]:.2f} |"
            for name, values in per_round.items()
        ],
        "",
        f"Target: the agent at >= {TARGET_RATIO} of the slower of `cp`+`sync` and "
        f"`openssl dgst -sha256`, per round: {'met' if ratio_met else 'NOT met'} "
        f"({ratios['agent_vs_slower_ceiling']:.2f}). "
        f"Agent peak RSS {big.peak_rss_mb:.1f} MB (VmHWM; target < {TARGET_RSS_MB} MB): "
        f"{'met' if rss_met else 'NOT met'}.",
        "",
        *_hash_bound_note(big, ratios),
    ]
    return figures, lines


def _encrypted_vs_plain(bigs: list[BigResult]) -> dict[str, Any]:
    """The agent's throughput on the encrypted batch against the plain one, per round."""
    by_name = {big.name: big for big in bigs}
    plain, encrypted = by_name["plain"], by_name["encrypted"]
    ratio = median(
        [
            (encrypted.size_bytes / enc["agent"]) / (plain.size_bytes / clear["agent"])
            for clear, enc in zip(plain.rounds, encrypted.rounds, strict=True)
        ]
    )
    met = ratio >= TARGET_ENCRYPTED_VS_PLAIN
    return {
        "ratio": round(ratio, 3),
        "lines": [
            f"The agent on the encrypted batch, against the plain one (throughputs, per round, "
            f"median): {ratio:.2f}; target within {1 - TARGET_ENCRYPTED_VS_PLAIN:.0%} of plain "
            f"or faster: {'met' if met else 'NOT met'}. It needs no decryption key: the "
            "body's bytes are hashed as they are copied, with no line to split.",
        ],
    }


def _hash_bound_note(big: BigResult, ratios: dict[str, float]) -> list[str]:
    """Say, with the numbers, what bounds the agent: hashing, the disk, or the CPU it got."""
    seconds = {name: median([r[name] for r in big.rounds]) for name in big.rounds[0]}
    hashing = ratios["openssl_sha256_vs_cp_sync"]
    slower = "hashing" if hashing < 1 else "`cp`+`sync`"
    own, hash_only, sync = seconds["agent_in_process"], seconds["openssl_sha256"], seconds["sync"]
    others = max(r["other_processes_cores"] for r in big.rounds)
    return [
        f"Hashing alone (openssl) runs at {hashing:.2f} of `cp`+`sync`: on this CPU the slower "
        f"ceiling is {slower}. The agent reaches {ratios['agent_vs_openssl_sha256']:.2f} of "
        f"the hashing speed and {ratios['agent_vs_cp_sync']:.2f} of `cp`+`sync`, its copy, "
        "verification and fsync included.",
        "",
        f"The agent's own time is {own:.2f} s, against {hash_only:.2f} s for hashing alone and "
        f"{sync:.2f} s for `sync` to write `cp`'s copy to disk. It reads each piece once, "
        "writes it and hashes it on a second thread (hashlib releases the GIL), and starts "
        f"the copy's writeback every {WRITEBACK_BYTES >> 20} MiB, so its floor is about the "
        f"slower of the two, {max(hash_only, sync):.2f} s. It used "
        f"{seconds['agent_cpu']:.2f} CPU s ({seconds['agent_cpu'] / own:.2f} cores on average). "
        f"Other processes used up to {others:.2f} of the machine's {os.cpu_count()} cores "
        "during its copies"
        + (
            ": the agent, which needs two cores to hash while it copies, is hurt more by that "
            "than the one-threaded ceilings, so read its figures as a lower bound."
            if others > BUSY_CORES
            else "."
        ),
    ]


# Flags that decide how fast SHA-256 runs: SHA-NI, else the AVX2/SSSE3 code paths.
HASH_FLAGS: Final = ("sha_ni", "avx512f", "avx2", "avx", "ssse3", "sha1", "sha2")


def cpu_description() -> dict[str, Any]:
    """The CPU's model and the flags relevant to hashing (x86 `sha_ni`, Arm `sha2`)."""
    model, flags = platform.machine(), set[str]()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model") and model == platform.machine():
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    hash_flags = [flag for flag in HASH_FLAGS if flag in flags]
    return {
        "model": model,
        "hash_flags": hash_flags,
        "sha_extensions": "sha_ni" in flags or "sha2" in flags,
        "flags": sorted(flags),
    }


def _small_section(small: SmallResult) -> tuple[dict[str, Any], list[str]]:
    delays_ms = [delay * 1000 for delay in small.delays_s]
    stats = {
        "p50": percentile(delays_ms, 0.50),
        "p90": percentile(delays_ms, 0.90),
        "p99": percentile(delays_ms, 0.99),
        "max": max(delays_ms),
        "mean": sum(delays_ms) / len(delays_ms),
    }
    p50_met = stats["p50"] < TARGET_P50_MS
    p99_met = stats["p99"] < TARGET_P99_MS
    figures = {
        "batches": len(delays_ms),
        "bytes_each": small.bytes_each,
        "records_each": SMALL_RECORDS,
        "pace_ms": PACE_S * 1000,
        "delay_ms": {name: round(value, 1) for name, value in stats.items()},
        "detection_poll_ms": round(small.poll_period_s * 1000, 2),
        "agent_ms_per_batch": round(small.agent_seconds_each * 1000, 2),
        "agent_peak_rss_mb": round(small.peak_rss_mb, 1),
        "targets": {
            "p50_ms_max": TARGET_P50_MS,
            "p99_ms_max": TARGET_P99_MS,
            "p50_met": p50_met,
            "p99_met": p99_met,
        },
    }
    lines = [
        f"## {len(delays_ms):,} small batches ({SMALL_RECORDS} records, "
        f"{small.bytes_each:,} B each)",
        "",
        f"Renamed into the source one every {PACE_S * 1000:.0f} ms; delay from the rename to "
        'the batch\'s name appearing at the destination (`after_delivery = "delete"`).',
        "",
        "| p50 ms | p90 ms | p99 ms | max ms | mean ms |",
        "|---|---|---|---|---|",
        "| " + " | ".join(f"{stats[name]:.1f}" for name in stats) + " |",
        "",
        f"Detection: the benchmark polls the destination for the awaited names every "
        f"{small.poll_period_s * 1000:.2f} ms (measured), so a delay is overstated by at most "
        "that much. The agent's own time per batch (claim → copied, verified, fsynced, source "
        f"deleted): {small.agent_seconds_each * 1000:.1f} ms on average; most of the rest is "
        "its wake-up, as its file watcher passes on an event once no other came for "
        f"{WATCH_STEP_MS} ms. Agent peak RSS {small.peak_rss_mb:.1f} MB.",
        "",
        f"Targets: p50 < {TARGET_P50_MS} ms {'met' if p50_met else 'NOT met'}; "
        f"p99 < {TARGET_P99_MS} ms {'met' if p99_met else 'NOT met'}.",
    ]
    return figures, lines
