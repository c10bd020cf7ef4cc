"""CPU per publish of answering a request group commit committed on the event loop, the
two ways `broker/ingest/commit_request.py` can: a `concurrent.futures.Future` with a
done-callback, awaited through `FutureBridge` (a request the committer thread answers,
and every request committed on the loop before it answered with a loop future), against
a future of the loop with the publisher's `on_placed` call, awaited as it is.

    python bench/answer_cpu.py                  # 20,000 answers a round, 10 rounds
    python bench/answer_cpu.py 50000 --rounds 5

The two run alternately in one process, on one loop, each answer settled from a
callback of the loop as group commit settles it; prints this process's CPU
(`time.process_time`) per answer, median and range over the rounds. Only the answer is
measured: no request, no commit.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from broker.api.future_bridge import FutureBridge, answered  # noqa: E402
from broker.ingest.commit_request import Placed, Request  # noqa: E402

PLACED = [Placed("ev-1", "events.birth", 0, 1, duplicate=False)]


def counted(placed: list[Placed]) -> None:
    """What the publisher does once a request is durable (count the new events)."""
    sum(not p.duplicate for p in placed)


async def bridged(loop: asyncio.AbstractEventLoop, bridge: FutureBridge) -> None:
    request = Request("cgh", "events.birth", ["ev-1"], [])
    future = request.future
    future.add_done_callback(lambda done: counted(done.result()))
    waiting = answered(future, lambda: bridge)
    loop.call_soon(request.settle, PLACED, None)
    await waiting


async def on_loop(loop: asyncio.AbstractEventLoop, bridge: FutureBridge) -> None:
    request = Request("cgh", "events.birth", ["ev-1"], [], loop.create_future(), loop,
                      threading.get_ident(), counted)
    waiting = answered(request.future, lambda: bridge)
    loop.call_soon(request.settle, PLACED, None)
    await waiting


async def main(count: int, rounds: int) -> None:
    loop = asyncio.get_running_loop()
    bridge = FutureBridge(loop)
    ways: dict[str, Callable[[asyncio.AbstractEventLoop, FutureBridge], Awaitable[None]]] = {
        "concurrent.futures.Future, bridged": bridged, "loop future, on_placed": on_loop}
    spent: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(rounds):
        for name, way in ways.items():
            before = time.process_time()
            for _ in range(count):
                await way(loop, bridge)
            spent[name].append((time.process_time() - before) / count * 1e6)
    for name, figures in spent.items():
        print(f"{name:36} median {statistics.median(figures):5.2f} µs per answer "
              f"(range {min(figures):.2f}-{max(figures):.2f}, {rounds} rounds)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("count", nargs="?", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.count, args.rounds))
