"""The /proc arithmetic behind the benchmark's broker CPU per event."""

from __future__ import annotations

import pytest

from bench.proc_cpu import ProcStat, descendants, parse_stat, tree_ticks

# A real /proc/PID/stat layout: pid (comm) state ppid ... utime stime cutime cstime ...
LINE = ("4242 (python3 -m broker) S 4000 4242 4000 0 -1 4194560 9000 0 0 0 "
        "1234 56 78 9 20 0 5 0 100 200000000 5000 18446744073709551615 0 0 0 0 0 0 0 0 0")


def test_parse_stat_reads_the_cpu_fields_after_a_command_with_spaces() -> None:
    stat = parse_stat(LINE)
    assert (stat.pid, stat.ppid) == (4242, 4000)
    assert (stat.utime, stat.stime, stat.cutime, stat.cstime) == (1234, 56, 78, 9)
    assert stat.ticks == 1234 + 56 + 78 + 9


def test_parse_stat_survives_parentheses_in_the_command_name() -> None:
    stat = parse_stat(LINE.replace("(python3 -m broker)", "(a) b (c))"))
    assert (stat.pid, stat.ppid, stat.utime) == (4242, 4000, 1234)


def test_parse_stat_refuses_what_is_not_a_stat_line() -> None:
    with pytest.raises(ValueError, match="not a /proc/PID/stat line"):
        parse_stat("4242 python3 S 1")


def _stat(pid: int, ppid: int, ticks: int, reaped: int = 0) -> ProcStat:
    return ProcStat(pid=pid, ppid=ppid, utime=ticks, stime=0, cutime=reaped, cstime=0)


STATS = {
    1: _stat(1, 0, 1000),
    10: _stat(10, 1, 50, reaped=7),   # broker: 7 ticks from a child that already exited
    11: _stat(11, 10, 30),            # the router, a child of the broker
    12: _stat(12, 11, 5),             # a grandchild
    20: _stat(20, 1, 400),            # someone else's process
}


def test_a_tree_counts_children_grandchildren_and_reaped_children_but_nothing_else() -> None:
    assert descendants(STATS, [10]) == {10, 11, 12}
    assert tree_ticks(STATS, [10]) == 50 + 7 + 30 + 5


def test_several_roots_and_a_root_that_exited() -> None:
    assert tree_ticks(STATS, [11, 20, 99]) == 30 + 5 + 400
    assert tree_ticks(STATS, [10, 11]) == tree_ticks(STATS, [10])   # counted once
