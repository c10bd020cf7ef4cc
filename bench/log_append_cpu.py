"""CPU per event of the router's "log append" stage alone, replayed.

    python bench/log_append_cpu.py                 # one step of 500 births, 30 replays
    python bench/log_append_cpu.py --replays 60

Builds the embedded broker of `bench/router_step_cpu.py --linked` (bench/inprocess.py),
routes one full step of births (one mother, linkage on) while keeping what the step
hands `SqliteEventLog.append_all_and_commit` (the views of three subscriptions, with
their headers, and the ingress offsets), then appends the same records again, a step's
worth per replay, to the same log, with the cyclic collector off, timing each replay on
this process's CPU clock: placing the records, packing their headers, the insert and
the commit. Then, apart, the headers alone (`encode_headers` of every record of the
step), the part of the stage that is Python rather than SQLite. Prints the best,
tenth-best and median replay of each in µs per event (three delivery records each).
The whole step (`bench/router_step_cpu.py --stages`) is too noisy on a shared machine to
show a change of a few µs in this stage; replaying the same records is not. Asserts
nothing.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.replay import captured_step, replay_flags, summary  # noqa: E402
from broker.log.port import Consumer, NewRecord, TopicPartition  # noqa: E402
from broker.log.sqlite import SqliteEventLog  # noqa: E402
from broker.log.sqlite_storage import encode_headers  # noqa: E402

Appends = Sequence[tuple[str, Sequence[NewRecord]]]


def main() -> None:
    parser = replay_flags(__doc__, replays=30)
    args = parser.parse_args()
    with captured_step(SqliteEventLog, "append_all_and_commit", args.births) as (_, calls):
        log = cast(SqliteEventLog, calls[0][0])
        kept = [(cast(Appends, arguments[0]), cast(Consumer, arguments[1]),
                 cast(Mapping[TopicPartition, int], arguments[2])) for _, arguments in calls]
        headers = [record.headers for appends, _c, _o in kept
                   for _topic, records in appends for record in records]
        events = args.births
        clock = time.process_time
        appended: list[float] = []
        packed: list[float] = []
        gc.collect()
        gc.disable()
        try:
            for _ in range(args.replays):
                started = clock()
                for appends, consumer, offsets in kept:
                    log.append_all_and_commit(appends, consumer, offsets)
                appended.append((clock() - started) / events)
                started = clock()
                for each in headers:
                    encode_headers(each)
                packed.append((clock() - started) / events)
        finally:
            gc.enable()
    print(f"append_all_and_commit replayed, {events:,} births ({len(headers):,} records) "
          f"x {args.replays}: {summary(appended)}")
    print(f"  of which the headers (encode_headers): {summary(packed)}")


if __name__ == "__main__":
    main()
