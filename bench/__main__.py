"""`python -m bench [NAME ...]`: run the benchmarks (all by default), reports in bench/results/."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from bench import (
    batchformat_bench,
    capacity_bench,
    crypto_bench,
    gateway_bench,
    link_bench,
    live_updates_bench,
    migrations_bench,
    processor_bench,
    query_timing_bench,
    restore_drill_bench,
    transfer_agent_bench,
)

BENCHMARKS: dict[str, Callable[[], Path]] = {
    "batchformat": batchformat_bench.run,
    "crypto": crypto_bench.run,
    "transfer-agent": transfer_agent_bench.run,
    "link": link_bench.run,
    "response-processor": processor_bench.run,
    "request-gateway": gateway_bench.run,
    "request-gateway-live": live_updates_bench.run,
    "restore-drill": restore_drill_bench.run,
    "query-timing": query_timing_bench.run,
    "migrations": migrations_bench.run,
    "capacity": capacity_bench.run,
}


def main(names: list[str]) -> int:
    """Run the named benchmarks; print where each report went."""
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
        return 2
    for name in names or list(BENCHMARKS):
        report = BENCHMARKS[name]()
        print(report.read_text())
        print(f"{name}: report written to {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
