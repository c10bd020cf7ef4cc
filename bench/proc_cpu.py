"""CPU time of whole process trees, read from /proc (Linux).

A broker deployment may be several processes, and a process may start children (the
router as a child of `handoff serve`). `tree_cpu_seconds(pids)` sums user + system CPU of
every process in the trees rooted at `pids`: each live process's own time plus the time of
its children that already exited and were waited for (`cutime`/`cstime`, which no live
process reports any more), so a tree sampled before and after a phase gives the CPU the
phase cost, children included.

    python bench/proc_cpu.py PID [PID ...]     # prints each tree's processes and CPU
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/PID/stat a CPU sum needs (times in clock ticks)."""

    pid: int
    ppid: int
    utime: int
    stime: int
    cutime: int
    cstime: int

    @property
    def ticks(self) -> int:
        return self.utime + self.stime + self.cutime + self.cstime


def parse_stat(text: str) -> ProcStat:
    """Parse one /proc/PID/stat line. The command name (field 2) is in parentheses and may
    itself hold spaces and parentheses, so the fields are counted after its last ')'."""
    head, _, tail = text.rpartition(")")
    if not _:
        raise ValueError("not a /proc/PID/stat line: no ')' after the command name")
    pid = int(head.split("(", 1)[0])
    fields = tail.split()
    # tail starts at field 3 (state): ppid is field 4, utime..cstime fields 14..17.
    return ProcStat(pid=pid, ppid=int(fields[1]), utime=int(fields[11]),
                    stime=int(fields[12]), cutime=int(fields[13]), cstime=int(fields[14]))


def read_all(proc: Path = PROC) -> dict[int, ProcStat]:
    """Every process's stat; processes that exit while being read are skipped."""
    stats: dict[int, ProcStat] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stats[int(entry.name)] = parse_stat((entry / "stat").read_text())
        except (OSError, ValueError, IndexError):
            continue
    return stats


def descendants(stats: Mapping[int, ProcStat], roots: Iterable[int]) -> set[int]:
    """The roots that are alive and every process below them."""
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    found: set[int] = set()
    stack = [pid for pid in roots if pid in stats]
    while stack:
        pid = stack.pop()
        if pid in found:
            continue
        found.add(pid)
        stack.extend(children.get(pid, ()))
    return found


def tree_ticks(stats: Mapping[int, ProcStat], roots: Iterable[int]) -> int:
    """User + system CPU, in clock ticks, of the trees rooted at `roots`."""
    return sum(stats[pid].ticks for pid in descendants(stats, roots))


def tree_cpu_seconds(roots: Iterable[int], proc: Path = PROC) -> float:
    """User + system CPU seconds of the process trees rooted at `roots`, now."""
    return tree_ticks(read_all(proc), roots) / TICKS


def members_cpu_seconds(root: int, proc: Path = PROC) -> dict[int, float]:
    """Each live process of the tree rooted at `root` on its own (its children's time not
    included), so a phase's CPU can be split between a parent and, say, its router child."""
    stats = read_all(proc)
    return {pid: (stats[pid].utime + stats[pid].stime) / TICKS
            for pid in descendants(stats, [root])}


def per_member(label: str, root: int, before: dict[int, float], events: int) -> list[str]:
    """`label` µs per event for the root process, and one entry per child process (the
    router process of `handoff serve`), each its own CPU over the phase."""
    after = members_cpu_seconds(root)
    return [f"{label if pid == root else f'{label} child {pid}'} "
            f"{(cpu - before.get(pid, 0.0)) / events * 1e6:,.0f} µs"
            for pid, cpu in sorted(after.items(), key=lambda item: item[0] != root)]


def self_cpu_seconds() -> float:
    """This process's own CPU (all threads), for a floor measured in-process."""
    times = os.times()
    return times.user + times.system


def main(pids: list[int]) -> None:
    stats = read_all()
    for root in pids:
        members = sorted(descendants(stats, [root]))
        print(f"tree {root}: {len(members)} processes {members}, "
              f"{tree_ticks(stats, [root]) / TICKS:.2f} s CPU so far")


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [os.getpid()])
