"""Audit log on Kafka: append rate, bytes stored, index catch-up, verification, and the
accounting of disclosures through the local index.

    python bench/audit_kafka_bench.py                        # 200,000 decisions, Tansu
    python bench/audit_kafka_bench.py --records 1000000 --bootstrap-servers HOST:PORT

Appends `--records` real demo birth decisions (about 6.5 KB of canonical JSON each,
handed over pre-encoded as the router does) through `KafkaAuditStore` in batches of
`--batch`, from `--writers` stores at once (each its own chain and Kafka client, as
separate router processes), signing a checkpoint every 50,000 records. Then: the bytes
the records take in Kafka, a fresh index catching up from nothing, `verify_kafka` over
everything, and the accounting of disclosures for one person (every `--spacing`-th
record is about them). Without --bootstrap-servers a Tansu broker (memory storage)
starts on loopback. Prints figures; asserts nothing. The machine is shared, so CPU
time is printed beside wall time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from audit_bench import START_MS, SUBJECT_POOL, decisions, demo_decision  # noqa: E402

from broker.audit import AuditFilter, CheckpointSigner, SubjectPseudonymizer  # noqa: E402
from broker.audit.kafka_records import AUDIT_TOPIC, TAILS_TOPIC  # noqa: E402
from broker.audit.kafka_store import KafkaAuditStore  # noqa: E402
from broker.audit.kafka_verify import verify_kafka  # noqa: E402
from broker.log.kafka import KafkaEventLog  # noqa: E402

CHECKPOINT_EVERY = 50_000


@contextmanager
def cluster(bootstrap_servers: str | None) -> Iterator[str]:
    if bootstrap_servers is not None:
        yield bootstrap_servers
        return
    from tests.kafka_broker import TansuBroker

    with TansuBroker() as broker:
        yield broker.bootstrap_servers


def topic_bytes(log: KafkaEventLog, topic: str) -> tuple[int, int]:
    """(records, bytes of keys, values and headers) in a topic."""
    count = size = offset = 0
    end = log.end_offset(topic, 0)
    while offset < end:
        page = log.read(topic, 0, offset, 5000)
        for record in page:
            count += 1
            size += len(record.value) + len(record.key or b"") + sum(
                len(name) + len(value) for name, value in record.headers)
        offset = page[-1].offset + 1
    return count, size


def timed(label: str, records: int, wall: float, cpu: float) -> None:
    print(f"{label}: {records / wall:,.0f} records/s wall, {records / cpu:,.0f} records/s of "
          f"CPU ({records:,} records in {wall:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500, help="append batch (router's)")
    parser.add_argument("--writers", type=int, default=2, help="stores appending at once")
    parser.add_argument("--spacing", type=int, default=999,
                        help="every N-th decision is about the person looked up")
    parser.add_argument("--bootstrap-servers", help="a Kafka cluster instead of Tansu")
    args = parser.parse_args()

    template, event_id, decision_id, _ = demo_decision()
    pseudonymizer = SubjectPseudonymizer(b"bench-pseudonym-key-0123456789ab")
    pool = [pseudonymizer.pseudonym(f"MPI-{n:07d}") for n in range(SUBJECT_POOL)]
    person = pseudonymizer.pseudonym("MPI-9048213")
    subjects = [person if n % args.spacing == 0 else pool[n % len(pool)]
                for n in range(SUBJECT_POOL)]
    work = Path(tempfile.mkdtemp(prefix="audit-kafka-bench-"))
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    with cluster(args.bootstrap_servers) as servers:
        where = "given cluster" if args.bootstrap_servers else "Tansu, memory storage"
        print(f"audit on Kafka at {servers} ({where}), prefix {prefix}")
        logs = [KafkaEventLog(servers, topic_prefix=prefix) for _ in range(args.writers)]
        stores = [KafkaAuditStore(log, work / f"index-{n}.db", writer=f"router-{n}")
                  for n, log in enumerate(logs)]
        signer = CheckpointSigner.load_or_create(work / "keys" / "audit-signing.pem")
        share = args.records // args.writers

        def write(n: int) -> None:
            for batch in decisions(template, event_id, decision_id, subjects, n * share,
                                   share, args.batch):
                stores[n].append(batch)

        started, cpu = time.perf_counter(), time.process_time()
        threads = [threading.Thread(target=write, args=(n,)) for n in range(args.writers)]
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            time.sleep(5)
            signer.checkpoint(stores[0])
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        signer.checkpoint(stores[0])
        total = share * args.writers
        timed(f"append, {args.writers} writers, batch {args.batch}, pre-encoded decisions "
              "(process CPU, incl. the writers' Kafka clients)", total, wall, cpu)

        reader = logs[0]
        audit_count, audit_size = topic_bytes(reader, AUDIT_TOPIC)
        tails_count, tails_size = topic_bytes(reader, TAILS_TOPIC)
        print(f"stored in Kafka: {audit_size / audit_count:,.0f} bytes per record in "
              f"{AUDIT_TOPIC} ({audit_size / 1e6:,.0f} MB), {tails_count} shared tails "
              f"({tails_size / 1e3:,.0f} KB); detail {len(template.encode()):,} bytes")

        fresh = KafkaAuditStore(KafkaEventLog(servers, topic_prefix=prefix),
                                work / "fresh-index.db", writer="api")
        started, cpu = time.perf_counter(), time.process_time()
        position, _digest = fresh.head()
        timed("index catch-up from nothing", position, time.perf_counter() - started,
              time.process_time() - cpu)
        index_size = sum(p.stat().st_size for p in work.glob("fresh-index.db*"))
        print(f"index file: {index_size / position:,.0f} bytes per record")

        started, cpu = time.perf_counter(), time.process_time()
        report = verify_kafka(KafkaEventLog(servers, topic_prefix=prefix), signer.public_key)
        took, took_cpu = time.perf_counter() - started, time.process_time() - cpu
        print(f"verify: {report.summary()[:70]}…")
        print(f"verify: {report.records_checked:,} records, {report.checkpoints_checked} "
              f"checkpoints in {took:.1f} s wall, {took_cpu:.1f} s CPU = "
              f"{1_000_000 / report.records_checked * took:.0f} s per million")

        times = []
        for _ in range(6):
            started = time.perf_counter()
            found = fresh.disclosures(AuditFilter(subject=person))
            times.append(time.perf_counter() - started)
        print(f"disclosures: {len(found):,} for one person among {position:,} decisions: "
              f"first {times[0] * 1000:.1f} ms, then median "
              f"{statistics.median(times[1:]) * 1000:.1f} ms (each includes the catch-up "
              "check with Kafka)")
        since = START_MS + position // 2
        started = time.perf_counter()
        page = fresh.page(AuditFilter(recipient="hv-nfp", since_ms=since,
                                      until_ms=since + 10_000), limit=100)
        print(f"query: recipient within a time window, first page of 100: "
              f"{(time.perf_counter() - started) * 1000:.1f} ms ({len(page.records)} records)")
        for store in [*stores, fresh]:
            store.close()
        for log in logs:
            log.close()


if __name__ == "__main__":
    main()
