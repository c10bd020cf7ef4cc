"""Where the router's step spends its CPU, stage by stage, for `bench/router_step_cpu.py
--stages`, and the cyclic collector's share, for `--settled`.

`timed_stages()` wraps the methods a step calls for each stage with this process's CPU
clock, while a step runs: decoding the ingress record (`WireCodec.decode`), record
linkage (`LinkageStage.link`), deciding and building what is written (`Router._decide`:
the policy, views, audit entries, delivery headers), the audit write (`Auditor.write`)
and the log append with the offsets (`SqliteEventLog.append_all_and_commit`). What is
left of a step (the ingress poll, metrics, the consent view) is "rest". The clock reads
cost about 1 µs per event in all, so the stages sum to a little more than an untimed
step. Asserts nothing.
"""

from __future__ import annotations

import gc
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import cast

from broker.auditor import Auditor
from broker.cli.heap import router_young, settle_heap
from broker.linking.stage import LinkageStage
from broker.log.sqlite import SqliteEventLog
from broker.router import Router
from schemas.wire import WireCodec

STAGES: tuple[tuple[str, type, str], ...] = (
    ("decode", WireCodec, "decode"),
    ("linkage", LinkageStage, "link"),
    ("decide and build", Router, "_decide"),
    ("audit write", Auditor, "write"),
    ("log append", SqliteEventLog, "append_all_and_commit"),
)


@contextmanager
def timed_stages() -> Iterator[defaultdict[str, float]]:
    """CPU seconds per stage (and "step", the whole of `Router.step`) while inside."""
    spent: defaultdict[str, float] = defaultdict(float)
    originals = [(owner, name, getattr(owner, name)) for _label, owner, name in STAGES]
    originals.append((Router, "step", Router.step))
    for (label, _owner, _name), (owner, name, method) in zip(
            (*STAGES, ("step", Router, "step")), originals, strict=True):
        setattr(owner, name, _timed(label, method, spent))
    try:
        yield spent
    finally:
        for owner, name, method in originals:
            setattr(owner, name, method)


def _timed(label: str, method: Callable[..., object], spent: defaultdict[str, float]
           ) -> Callable[..., object]:
    clock = time.process_time

    def timed(*args: object, **kwargs: object) -> object:
        started = clock()
        try:
            return method(*args, **kwargs)
        finally:
            spent[label] += clock() - started
    return cast(Callable[..., object], timed)


def report(spent: defaultdict[str, float], events: int) -> str:
    """One line per stage: µs of CPU per event and its share of the step."""
    step = spent["step"] or 1e-9
    rest = step - sum(spent[label] for label, _owner, _name in STAGES)
    lines = [f"  {label:<17} {seconds / events * 1e6:6.1f} µs per event  "
             f"{seconds / step:4.0%}"
             for label, seconds in [*((label, spent[label]) for label, _o, _n in STAGES),
                                    ("rest", rest)]]
    return "\n".join([f"stages of router.step ({step / events * 1e6:.0f} µs per event "
                      "timed):", *lines])


@contextmanager
def settled_collector(step: int, young: int | None) -> Iterator[list[float]]:
    """Settle the heap as the router process settles it once started (`settle_heap` at
    `router_young(step)`, or at `young` when given), then time the collector while
    inside: [seconds, young collections, older collections]."""
    settle_heap(router_young(step) if young is None else young)
    spent = [0.0, 0.0, 0.0]
    started = [0.0]

    def timed(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.process_time()
            return
        spent[0] += time.process_time() - started[0]
        spent[1 if info["generation"] == 0 else 2] += 1

    gc.callbacks.append(timed)
    try:
        yield spent
    finally:
        gc.callbacks.remove(timed)
