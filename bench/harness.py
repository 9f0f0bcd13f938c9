"""Run measurements in child processes (for clean peak RSS) and write reports."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Measurement:
    """One timed run of a child process."""

    seconds: float  # as timed by the child around the work itself, or wall time if it did not
    peak_rss_mb: float
    output: dict[str, Any]


def run_child(argv: list[str], env: dict[str, str] | None = None) -> Measurement:
    """Run argv; the child may print one JSON object with `seconds` as its last stdout line."""
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, env={**os.environ, **(env or {})}, text=True
    )
    assert process.stdout is not None
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{argv[:3]} exited with {process.returncode}")
    lines = stdout.strip().splitlines()
    output: dict[str, Any] = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    # ru_maxrss also counts the parent's pages the child had between fork and exec; a child
    # that reports its own VmHWM (see own_peak_rss_mb) is measured exactly.
    peak = output.get("peak_rss_mb", usage.ru_maxrss / 1024)
    return Measurement(output.get("seconds", wall), peak, output)


def own_peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM) in MiB, for a child to report."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_report(name: str, figures: dict[str, Any], markdown: str) -> Path:
    """Write results/NAME.json and results/NAME.md; return the markdown path."""
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"{name}.json").write_text(
        json.dumps({"machine": machine(), **figures}, indent=2) + "\n"
    )
    path = RESULTS_DIR / f"{name}.md"
    path.write_text(markdown)
    return path


def mb_per_s(size_bytes: int, seconds: float) -> float:
    """Throughput in MB/s (10^6 bytes)."""
    return round(size_bytes / seconds / 1e6, 1)


def median(values: list[float]) -> float:
    """The median, for small samples."""
    return statistics.median(values)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (`fraction` 0.99 for p99): a value that was actually observed."""
    ordered = sorted(values)
    rank = max(math.ceil(round(fraction * len(ordered), 6)), 1)  # 0.99 * 1000 is not exact
    return ordered[rank - 1]


def machine_cpu_seconds() -> float:
    """CPU seconds used by every process since boot, stolen time included (/proc/stat)."""
    first_line = Path("/proc/stat").read_text().split("\n", 1)[0]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, first_line.split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User and system CPU seconds process `pid` has used so far (/proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_flags() -> dict[str, Any]:
    """The CPU's model and the flags that change figures between machines of this kind."""
    model, flags = "unknown", set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            model = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
    wanted = ("sha_ni", "aes", "avx2", "avx512f")
    return {"model": model, "flags": {flag: flag in flags for flag in wanted}}


def cpu_line(cpu: dict[str, Any] | None = None) -> str:
    """`CPU: model; flags: sha_ni yes, …` for a report (from `cpu_flags()`)."""
    cpu = cpu or cpu_flags()
    marks = (f"{flag} {'yes' if present else 'no'}" for flag, present in cpu["flags"].items())
    return f"CPU: {cpu['model']}, {os.cpu_count()} cores; flags: {', '.join(marks)}"
