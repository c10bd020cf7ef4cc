"""The floor for Handoff's latency on Kafka: a bare kafka-python two-hop pipeline.

Three processes, as a Handoff deployment on Kafka has: a source produces records at a
fixed offered rate to a 4-partition topic (as the API appends to `events.<type>`); a
relay consumes them and produces each to a 1-partition topic (as the router appends to
`deliver.<subscription>`); a sink consumes that topic. Each record carries the time the
schedule said to send it, and its latency is when the sink got it minus that time, so
a stall anywhere shows in the percentiles. Nothing else runs: no HTTP, no policy, no
audit, no SQLite.

    python bench/kafka_floor.py                          # 1,000/s for 20 s on a Tansu of its own
    python bench/kafka_floor.py --rate 100 --rate 1000 --fetch-wait-ms 10 100
    python bench/kafka_floor.py --bootstrap-servers kafka-1:9092

Producers use `acks=all` and no linger; consumers the given fetch wait (the longest a
broker holds a fetch that finds nothing: Apache Kafka answers as soon as a record
arrives, Tansu 0.6 only when the wait is over, so on Tansu the wait is a latency floor).
CPU per record is the three stages' user + system CPU from the first scheduled send until
each stage is done (start-up and connecting left out), over the records delivered.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import queue
import struct
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.calibration import calibration_ms  # noqa: E402
from tests.kafka_broker import TansuBroker  # noqa: E402

_STAMP = struct.Struct(">dq")   # scheduled send time (epoch seconds), sequence number
INGRESS_PARTITIONS = 4


def consumer(servers: str, topic: str, partitions: int, fetch_wait_ms: int) -> KafkaConsumer:
    client = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False,
                           auto_offset_reset="earliest", fetch_max_wait_ms=fetch_wait_ms)
    client.assign([TopicPartition(topic, p) for p in range(partitions)])
    return client


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def _wait_until(moment: float) -> None:
    delay = moment - time.time()
    if delay > 0:
        time.sleep(delay)


def relay(servers: str, source: str, target: str, fetch_wait_ms: int, start_at: float,
          expected: int, stop_at: float, cpu: mp.Queue) -> None:
    """Consume `source`, produce every record to `target` (the router's hop). Reports
    its CPU from `start_at` until it relayed `expected` records."""
    inbound = consumer(servers, source, INGRESS_PARTITIONS, fetch_wait_ms)
    outbound = KafkaProducer(bootstrap_servers=servers, acks="all", linger_ms=0)
    _wait_until(start_at)
    cpu_at_start, relayed = _cpu(), 0
    while time.time() < stop_at and relayed < expected:
        for records in inbound.poll(timeout_ms=100).values():
            for record in records:
                outbound.send(target, value=record.value, key=record.key, partition=0)
            relayed += len(records)
    outbound.flush()
    cpu.put(_cpu() - cpu_at_start)
    outbound.close()
    inbound.close()


def sink(servers: str, topic: str, fetch_wait_ms: int, start_at: float, expected: int,
         stop_at: float, results: mp.Queue, cpu: mp.Queue) -> None:
    """Consume `topic` and report each record's latency in milliseconds, and its CPU
    from `start_at` until the last record arrived."""
    inbound = consumer(servers, topic, 1, fetch_wait_ms)
    latencies: list[float] = []
    _wait_until(start_at)
    cpu_at_start = _cpu()
    while len(latencies) < expected and time.time() < stop_at:
        for records in inbound.poll(timeout_ms=100).values():
            now = time.time()
            for record in records:
                scheduled, _ = _STAMP.unpack(record.value)
                latencies.append((now - scheduled) * 1000)
    cpu.put(_cpu() - cpu_at_start)
    inbound.close()
    results.put(latencies)


def source(servers: str, topic: str, rate: float, count: int, start_at: float,
           cpu: mp.Queue) -> None:
    """Produce `count` records at `rate` per second from `start_at` on; report its CPU
    from `start_at` until every record was acknowledged."""
    producer = KafkaProducer(bootstrap_servers=servers, acks="all", linger_ms=0)
    producer.partitions_for(topic)   # metadata before the clock starts
    _wait_until(start_at)
    cpu_at_start = _cpu()
    for n in range(count):
        due = start_at + n / rate
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        producer.send(topic, value=_STAMP.pack(due, n), key=uuid.uuid4().bytes,
                      partition=n % INGRESS_PARTITIONS)
    producer.flush()
    cpu.put(_cpu() - cpu_at_start)
    producer.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True)
class FloorRun:
    latencies_ms: list[float]
    cpu_seconds: float   # source + relay + sink, from the first scheduled send to their end

    @property
    def cpu_us_per_record(self) -> float:
        return self.cpu_seconds / max(1, len(self.latencies_ms)) * 1e6


def run(servers: str, rate: float, seconds: float, fetch_wait_ms: int) -> list[float]:
    """One run of the pipeline; the sink's latencies."""
    return measured_run(servers, rate, seconds, fetch_wait_ms).latencies_ms


def measured_run(servers: str, rate: float, seconds: float, fetch_wait_ms: int) -> FloorRun:
    """One run of the pipeline: the sink's latencies and the three stages' CPU."""
    run_id = uuid.uuid4().hex[:8]
    ingress, delivery = f"floor-{run_id}.events", f"floor-{run_id}.deliver"
    admin = KafkaAdminClient(bootstrap_servers=servers)
    admin.create_topics([NewTopic(ingress, INGRESS_PARTITIONS, 1), NewTopic(delivery, 1, 1)])
    admin.close()
    count = int(rate * seconds)
    context = mp.get_context("spawn")
    results: mp.Queue = context.Queue()
    cpu: mp.Queue = context.Queue()
    start_at = time.time() + 3.0   # time for every process to connect
    stop_at = start_at + seconds + 15
    stages = [
        context.Process(target=sink, args=(servers, delivery, fetch_wait_ms, start_at, count,
                                           stop_at, results, cpu)),
        context.Process(target=relay, args=(servers, ingress, delivery, fetch_wait_ms,
                                            start_at, count, stop_at, cpu)),
        context.Process(target=source, args=(servers, ingress, rate, count, start_at, cpu)),
    ]
    for stage in stages:
        stage.start()
    latencies: list[float] = results.get(timeout=stop_at - time.time() + 30)
    cpu_seconds = 0.0
    for _ in stages:
        with contextlib.suppress(queue.Empty):
            cpu_seconds += cpu.get(timeout=30)
    for stage in stages:
        stage.join(timeout=30)
        if stage.is_alive():
            stage.kill()
    return FloorRun(latencies, cpu_seconds)


def main(args: argparse.Namespace) -> None:
    with contextlib.ExitStack() as stack:
        servers = args.bootstrap_servers or stack.enter_context(TansuBroker()).bootstrap_servers
        print(f"bare kafka-python two-hop pipeline (source -> relay -> sink, three processes) "
              f"on {'Tansu (loopback)' if not args.bootstrap_servers else servers}; "
              f"calibration loop {calibration_ms():.0f} ms")
        for fetch_wait_ms in args.fetch_wait_ms:
            for rate in args.rate:
                floor = measured_run(servers, rate, args.seconds, fetch_wait_ms)
                latencies = floor.latencies_ms
                missing = int(rate * args.seconds) - len(latencies)
                print(f"  {rate:6.0f}/s for {args.seconds:.0f} s, "
                      f"fetch wait {fetch_wait_ms:4d} ms: "
                      f"p50 {percentile(latencies, .5):6.1f} ms  p99 "
                      f"{percentile(latencies, .99):6.1f} ms  max {max(latencies):7.1f} ms  "
                      f"missing {missing}  {floor.cpu_us_per_record:.0f} µs CPU per record")
        print(f"  calibration loop after: {calibration_ms():.0f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, nargs="+", default=[1000])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--fetch-wait-ms", type=int, nargs="+", default=[10])
    parser.add_argument("--bootstrap-servers", default=None,
                        help="Kafka to run on (default: a Tansu broker started for the run)")
    main(parser.parse_args())
