"""CPU per event of the router's "audit write" stage alone, replayed.

    python bench/audit_write_cpu.py                # one step of 500 births, 30 replays
    python bench/audit_write_cpu.py --replays 60
    python bench/audit_write_cpu.py --profile      # and cProfile's top functions
    python bench/audit_write_cpu.py --kafka        # into the Kafka audit store (Tansu)

Builds the embedded broker of `bench/router_step_cpu.py --linked` (bench/inprocess.py),
routes one full step of births (one mother, linkage on) while keeping the audit entries
the step hands `Auditor.write`, then writes the same entries again, a step's worth per
replay, into the same audit store (its plans and shared detail tails already held, as
in a running router), with the cyclic collector off, timing each replay on this
process's CPU clock: encoding and chaining the rows, the insert with its indexes, the
daily counts and the commit. Prints the best, tenth-best and median replay in µs per
event (three decision rows each). The whole step (`bench/router_step_cpu.py --stages`)
is too noisy on a shared machine to show a change of a few µs in this stage; replaying
the same entries is not. Asserts nothing.

With `--kafka` the replays write into a `KafkaAuditStore` on a Tansu broker started for
the run (memory storage), as a router on Kafka does: the figure is this process's CPU,
the store's own work and the kafka-python producer's (its I/O thread included), not
Tansu's.
"""

from __future__ import annotations

import contextlib
import cProfile
import gc
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import cast

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.replay import captured_step, replay_flags, summary  # noqa: E402
from broker.audit import AuditEntry  # noqa: E402
from broker.audit.kafka_store import KafkaAuditStore  # noqa: E402
from broker.auditor import Auditor  # noqa: E402
from broker.log.kafka import KafkaEventLog  # noqa: E402


@contextlib.contextmanager
def kafka_store() -> Iterator[KafkaAuditStore]:
    """A Kafka audit store on a Tansu broker of its own, closed with it."""
    from tests.kafka_broker import TansuBroker

    with TansuBroker() as broker, tempfile.TemporaryDirectory() as work:
        log = KafkaEventLog(broker.bootstrap_servers)
        try:
            with KafkaAuditStore(log, Path(work) / "audit-index.db", writer="router") as store:
                yield store
        finally:
            log.close()


def main() -> None:
    parser = replay_flags(__doc__, replays=30)
    parser.add_argument("--profile", action="store_true",
                        help="also profile the replays and print the top functions")
    parser.add_argument("--kafka", action="store_true",
                        help="replay into a Kafka audit store on a Tansu broker instead")
    args = parser.parse_args()
    write: Callable[[Auditor, Sequence[AuditEntry]], None] = Auditor.write
    with captured_step(Auditor, "write", args.births) as (_, calls), \
            (kafka_store() if args.kafka else contextlib.nullcontext()) as kafka:
        auditor = cast(Auditor, calls[0][0])
        if kafka is not None:
            auditor.store = kafka
            for entries in [list(cast(Sequence[AuditEntry], a[0])) for _, a in calls]:
                write(auditor, entries)   # its plans and shared tails held, as in a router
        kept = [list(cast(Sequence[AuditEntry], arguments[0])) for _, arguments in calls]
        events = args.births
        rows = sum(len(entries) for entries in kept)
        clock = time.process_time
        replays: list[float] = []
        profile = cProfile.Profile() if args.profile else None
        gc.collect()
        gc.disable()
        try:
            for _ in range(args.replays):
                started = clock()
                if profile is not None:
                    profile.enable()
                for entries in kept:
                    write(auditor, entries)
                if profile is not None:
                    profile.disable()
                replays.append((clock() - started) / events)
        finally:
            gc.enable()
    where = "Kafka audit store (Tansu)" if args.kafka else "embedded audit store"
    print(f"Auditor.write replayed into the {where}, {events:,} births ({rows:,} rows) x "
          f"{args.replays}: "
          f"{summary(replays)}")
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
