"""CPU per event of the router's "decide and build" stage alone, replayed.

    python bench/router_decide_cpu.py             # 500 births, 40 replays
    python bench/router_decide_cpu.py --replays 100

Builds the embedded broker of `bench/router_step_cpu.py --linked` (bench/inprocess.py),
routes one full step of births (one mother, linkage on) while keeping what the step
hands `Router._decide` for each birth, then calls `_decide` again on the same births,
into a fresh batch each replay, with the cyclic collector off, timing each replay on
this process's CPU clock: the policy, the views, the audit entries and the delivery
headers of three subscriptions, without the log, the audit store or linkage around
them. Prints the best, tenth-best and median replay, in µs per event. The whole step
(`bench/router_step_cpu.py --stages`) is too noisy on a shared machine to show a change
of a few µs in this stage; replaying the same births is not. Asserts nothing.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.replay import captured_step, replay_flags, summary  # noqa: E402
from broker.router import Router  # noqa: E402
from broker.router_batch import RouterBatch  # noqa: E402


def main() -> None:
    parser = replay_flags(__doc__, replays=40)
    args = parser.parse_args()
    decide: Callable[..., bool] = Router._decide
    with captured_step(Router, "_decide", args.births) as (bench, calls):
        router = bench.broker.router
        kept = [arguments[:-1] for _, arguments in calls]   # all but the batch
        clock = time.process_time
        replays: list[float] = []
        gc.collect()
        gc.disable()
        try:
            for _ in range(args.replays):
                batch = RouterBatch()
                started = clock()
                for arguments in kept:
                    decide(router, *arguments, batch)
                replays.append((clock() - started) / len(kept))
        finally:
            gc.enable()
    print(f"Router._decide replayed, {len(kept):,} births x {args.replays} "
          f"(three subscriptions, linkage on): {summary(replays)}")


if __name__ == "__main__":
    main()
