"""`python -m bench restore-drill`: the measured RTO of a restore on a production-sized gateway.

An embedded PostgreSQL 16 gets the gateway's schema (its migrations) and REQUESTS answered
requests (≈ 300-byte payloads and results, generated on the server), then the real commands
run as an operator would: `request-gateway backup --dir` (a scheduled backup) and
`request-gateway restore-drill --dir` (restore into a scratch database, migrations checked,
rows counted). The drill's time is the RTO of "restore the newest backup" on this machine;
the backup's time and size are reported beside it. Report: bench/results/restore-drill.{md,json}.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

import asyncpg

from request_gateway.runtime import prepare_database
from servicekit.backup import format_size
from servicekit.embedded import EmbeddedPostgres

REQUESTS: Final = int(os.environ.get("BENCH_RESTORE_REQUESTS", "1000000"))
RESULTS: Final = Path(__file__).parent / "results"
CLI: Final = str(Path(sys.executable).with_name("request-gateway"))

FILL = """
INSERT INTO request (id, user_id, type, payload, status, trace_id, result, created_at,
                     updated_at, exported_at, finished_at)
SELECT gen_random_uuid(), u.id, 'lookup',
       jsonb_build_object('query', repeat(md5(n::text), 4), 'n', n),
       'completed', md5(n::text),
       jsonb_build_object('answer', repeat(md5((n + 1)::text), 4)),
       now() - make_interval(secs => n), now(), now(), now()
FROM generate_series(1, $1) AS n,
     LATERAL (SELECT md5((n % 1000)::text)::uuid AS id) AS u
"""


def run() -> Path:
    """Fill, back up, drill; write the report and return the Markdown file's path."""
    with tempfile.TemporaryDirectory(prefix="bench-drill-") as tmp:
        folder = Path(tmp)
        folder.chmod(0o755)
        server = EmbeddedPostgres(folder / "data")
        server.start()
        try:
            url = server.ensure_database("gateway")
            filled_s = asyncio.run(_fill(url))
            backup = _cli(folder, url, "backup", "--dir", str(folder / "backups"))
            drill = _cli(folder, url, "restore-drill", "--dir", str(folder / "backups"))
            size = sum(p.stat().st_size for p in (folder / "backups").glob("*.dump"))
        finally:
            server.stop()
    figures = {
        "requests": REQUESTS,
        "fill_s": round(filled_s, 1),
        "backup_s": round(backup[0], 1),
        "backup_bytes": size,
        "drill_s": round(drill[0], 1),
        "drill_restore_s": float(_match(r"restore ([\d.]+) s", drill[1])),
        "drill_output": drill[1],
        "cpu": _cpu(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "restore-drill.json").write_text(json.dumps(figures, indent=2) + "\n")
    report = RESULTS / "restore-drill.md"
    report.write_text(_markdown(figures))
    return report


async def _fill(url: str) -> float:
    await prepare_database(url)
    connection = await asyncpg.connect(url)
    try:
        started = time.monotonic()
        # The per-user change sequence trigger bumps one row per insert: a bulk fill skips
        # triggers (rows a restore carries either way).
        await connection.execute("SET session_replication_role = replica")
        await connection.execute(FILL, REQUESTS)
        await connection.execute("ANALYZE")
        return time.monotonic() - started
    finally:
        await connection.close()


def _cli(folder: Path, url: str, *args: str) -> tuple[float, str]:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
        "GATEWAY_DATA_DIR": str(folder / "service"),
        "GATEWAY_DATABASE_URL": url,
    }
    started = time.monotonic()
    done = subprocess.run(
        [CLI, *args], capture_output=True, text=True, env=environment, timeout=7200, check=False
    )
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:1])} failed: {done.stderr[-2000:]}")
    # The summary lines, not the log lines the command also writes to stdout.
    summary = [line for line in done.stdout.splitlines() if not re.match(r"\d{4}-\d\d-", line)]
    return elapsed, "\n".join(summary) + "\n"


def _match(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    return found[1] if found else "nan"


def _cpu() -> str:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = _match(r"model name\s*:\s*(.+)", flags)
    return f"{model}, {os.cpu_count()} CPUs, {platform.machine()}"


def _markdown(f: dict[str, object]) -> str:
    return (
        "# Restore drill (measured RTO)\n\n"
        f"Gateway database with {f['requests']:,} completed requests (embedded PostgreSQL 16, "
        f"{f['cpu']}).\n\n"
        "| step | time |\n|---|---|\n"
        f"| fill (server-side INSERT … SELECT, ANALYZE) | {f['fill_s']} s |\n"
        f"| `request-gateway backup --dir` | {f['backup_s']} s "
        f"({format_size(int(str(f['backup_bytes'])))} archive) |\n"
        f"| `request-gateway restore-drill --dir` (whole command) | **{f['drill_s']} s** |\n"
        f"| of which pg_restore | {f['drill_restore_s']} s |\n\n"
        "Drill output:\n\n```\n" + str(f["drill_output"]) + "```\n\n"
        "Reproduce: `uv run --frozen --no-sync python -m bench restore-drill` "
        "(`BENCH_RESTORE_REQUESTS` sets the size).\n"
    )


if __name__ == "__main__":
    print(run().read_text())
