"""Where the CPU goes while a load runs: seconds used by named groups of processes.

A `CpuMeter` is given groups — a server's process group, a PostgreSQL postmaster and its
backends, one pid — and reads their CPU time (/proc) before and after a measured window,
together with this process's reaped children (wrk) and the whole machine's. What the
machine used beyond all of them is `other`: other users' processes, the kernel's softirq
work (loopback networking included) and time stolen by the hypervisor.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from bench.harness import machine_cpu_seconds

LOAD_GENERATOR: Final = "wrk"
OTHER: Final = "other"


@dataclass(frozen=True)
class ProcessStat:
    """One process's parent, process group and CPU seconds so far (user and system)."""

    parent: int
    group: int
    cpu_s: float


ProcessTable = Mapping[int, ProcessStat]
PidSource = Callable[[ProcessTable], list[int]]
"""Picks a group's pids from the process table."""


def process_table() -> dict[int, ProcessStat]:
    """Every process's `ProcessStat`, by pid (/proc/PID/stat)."""
    ticks = os.sysconf("SC_CLK_TCK")
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(OSError):  # gone since the listing
            text = (entry / "stat").read_text()
            fields = text.rsplit(")", 1)[1].split()  # the command name may hold spaces
            cpu = (int(fields[11]) + int(fields[12])) / ticks
            table[int(entry.name)] = ProcessStat(int(fields[1]), int(fields[2]), cpu)
    return table


def process_group(leader: int) -> PidSource:
    """The processes of the group `leader` leads (a server started in its own session)."""
    return lambda table: [pid for pid, stat in table.items() if stat.group == leader]


def process_and_children(pid_file: Path) -> PidSource:
    """The process whose pid is the first line of `pid_file`, and its children (a
    postmaster and its backends; a lone server)."""

    def pids(table: ProcessTable) -> list[int]:
        parent = int(pid_file.read_text().split("\n", 1)[0])
        return [parent, *(pid for pid, stat in table.items() if stat.parent == parent)]

    return pids


@dataclass
class CpuUse:
    """CPU seconds per group over one window, with `wrk`, `bench`, `other` and `machine`."""

    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Snapshot:
    groups: dict[str, dict[int, float]]  # per group, CPU seconds by pid
    own: dict[str, float]  # wrk (reaped children), bench (this process), machine


class CpuMeter:
    """Measures the CPU seconds of named process groups over `measure()` windows."""

    def __init__(self, groups: Mapping[str, PidSource]) -> None:
        self.groups = dict(groups)

    def _snapshot(self) -> _Snapshot:
        table = process_table()
        groups = {
            name: {pid: table[pid].cpu_s for pid in source(table) if pid in table}
            for name, source in self.groups.items()
        }
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        this = resource.getrusage(resource.RUSAGE_SELF)
        own = {
            LOAD_GENERATOR: children.ru_utime + children.ru_stime,
            "bench": this.ru_utime + this.ru_stime,
            "machine": machine_cpu_seconds(),
        }
        return _Snapshot(groups, own)

    @contextmanager
    def measure(self) -> Iterator[CpuUse]:
        """CPU seconds each group used while the block ran (filled in when it ends).

        A process of a group counts from the start of the block, or from its own start if
        it began within it; one that ended within it is missed (its last seconds lost).
        wrk, a child of this process, counts once reaped: let nothing else exit within.
        """
        use = CpuUse()
        before = self._snapshot()
        yield use
        after = self._snapshot()
        spent = {
            name: sum(cpu - before.groups[name].get(pid, 0.0) for pid, cpu in pids.items())
            for name, pids in after.groups.items()
        }
        for name in (LOAD_GENERATOR, "bench"):
            spent[name] = after.own[name] - before.own[name]
        machine = after.own["machine"] - before.own["machine"]
        use.seconds = {name: round(seconds, 3) for name, seconds in spent.items()}
        use.seconds[OTHER] = round(max(machine - sum(spent.values()), 0.0), 3)
        use.seconds["machine"] = round(machine, 3)
