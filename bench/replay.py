"""What the replay benches share (bench/router_decide_cpu.py, bench/audit_write_cpu.py,
bench/log_append_cpu.py): their common flags, one full router step's calls to a method,
kept, and how their replays are summed up.

`captured_step(owner, name, births)` builds the embedded broker of
`bench/router_step_cpu.py --linked` (bench/inprocess.py), routes one warm-up birth, then
`births` births with every call of `owner.name` passed through and kept as
(self, arguments). `replay_flags(replays)` is the parser of `--births` and `--replays`
each takes. `summary(replays)` is the best, tenth-best and median of the
replays' seconds per event, in µs.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

from bench.e2e_load import bench_policy, new_birth
from bench.inprocess import BATCH, InProcess, embedded_broker

Call = tuple[object, tuple[object, ...]]


def replay_flags(description: str | None, replays: int) -> argparse.ArgumentParser:
    """A replay bench's parser, with `--births` (one full step by default) and
    `--replays` (`replays` by default)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--births", type=int, default=BATCH,
                        help=f"births routed and replayed (default {BATCH}: one full step)")
    parser.add_argument("--replays", type=int, default=replays,
                        help=f"replays (default {replays})")
    return parser


@contextmanager
def captured_step(owner: type, name: str, births: int
                  ) -> Iterator[tuple[InProcess, list[Call]]]:
    """The broker, open, and the calls of `owner.name` one routed step of `births` made."""
    original = getattr(owner, name)
    calls: list[Call] = []

    def keeping(self: object, *arguments: object) -> object:
        calls.append((self, arguments))
        return original(self, *arguments)

    with embedded_broker(bench_policy) as bench:
        assert bench.broker.router is not None
        bench.publish([new_birth(0)])
        bench.route(1)
        bench.publish([new_birth(n) for n in range(births)])
        setattr(owner, name, keeping)
        try:
            bench.route(births)
        finally:
            setattr(owner, name, original)
        yield bench, calls


def summary(replays: list[float]) -> str:
    """`best B µs CPU per event, tenth-best T, median M` of seconds-per-event figures."""
    ordered = sorted(replays)
    return (f"best {ordered[0] * 1e6:.1f} µs CPU per event, tenth-best "
            f"{ordered[min(9, len(ordered) - 1)] * 1e6:.1f}, median "
            f"{ordered[len(ordered) // 2] * 1e6:.1f}")
