"""CPU an API process spends writing the Kafka idempotency index (`_accepted`), per event.

Group commit on Kafka remembers each commit's accepted events in `KafkaIdempotencyIndex`,
whose writer thread appends them to `_accepted`. This sends `remember` calls as an API
process at `--rate` events a second makes them (one call per group commit of
`--per-commit` events) for `--seconds`, then closes the index (its writer gets every
record into Kafka), and prints this process's CPU per event (`time.process_time`: the
writer thread and kafka-python's threads) and how many appends the writer made:

    python bench/kafka_accepted_writes.py                  # on a Tansu broker of its own
    python bench/kafka_accepted_writes.py --linger-ms 0    # each append as soon as the
                                                           # last is done, as before 50 ms
    python bench/kafka_accepted_writes.py --rounds 3 --bootstrap-servers kafka-1:9092

A shared machine: figures are noisy; compare runs back to back.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from broker.ingest import kafka_idempotency  # noqa: E402
from broker.ingest.idempotency import Accepted  # noqa: E402
from broker.ingest.kafka_idempotency import ACCEPTED_TOPIC, KafkaIdempotencyIndex  # noqa: E402
from broker.log.kafka import KafkaEventLog  # noqa: E402
from broker.log.port import AppendResult, NewRecord  # noqa: E402
from tests.kafka_broker import TansuBroker  # noqa: E402


class CountingLog(KafkaEventLog):
    """The Kafka log, counting the appends to `_accepted`."""

    accepted_appends = 0

    def append(self, topic: str, records: Sequence[NewRecord]) -> list[AppendResult]:
        if topic == ACCEPTED_TOPIC:
            self.accepted_appends += 1
        return super().append(topic, records)


def one_round(servers: str, rate: float, per_commit: int, seconds: float) -> str:
    log = CountingLog(servers, topic_prefix=f"aw-{uuid.uuid4().hex[:8]}.")
    with tempfile.TemporaryDirectory() as tmp:
        index = KafkaIdempotencyIndex(log, Path(tmp) / "cache.db", follow=False)
        events = 0
        cpu = time.process_time()
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            index.remember("county-general", {
                f"ev-{events + n}": Accepted("events.birth", 0, events + n)
                for n in range(per_commit)})
            events += per_commit
            time.sleep(max(0.0, started + events / rate - time.monotonic()))
        index.close()
        cpu = time.process_time() - cpu
    log.close()
    return (f"  {events} events in {events // per_commit} remember calls: "
            f"{cpu / events * 1e6:6.1f} µs CPU per event, {log.accepted_appends} appends")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second")
    parser.add_argument("--per-commit", type=int, default=3,
                        help="events per group commit (one remember call each)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--linger-ms", type=float, default=None,
                        help="the writer's linger instead of the index's own")
    parser.add_argument("--bootstrap-servers")
    args = parser.parse_args()
    if args.linger_ms is not None:
        kafka_idempotency._WRITE_LINGER_S = args.linger_ms / 1000

    def rounds(servers: str) -> None:
        print(f"_accepted writes at {args.rate:g} events/s, {args.per_commit} per commit, "
              f"writer linger {kafka_idempotency._WRITE_LINGER_S * 1000:g} ms:")
        for _ in range(args.rounds):
            print(one_round(servers, args.rate, args.per_commit, args.seconds))

    if args.bootstrap_servers:
        rounds(args.bootstrap_servers)
        return
    with TansuBroker() as broker:
        rounds(broker.bootstrap_servers)


if __name__ == "__main__":
    main()
