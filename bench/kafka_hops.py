"""Where a Kafka deployment's publish-to-SSE latency goes, hop by hop.

    python bench/kafka_hops.py                      # 1,000 births/s for 20 s, Tansu started here
    python bench/kafka_hops.py --rate 300 --seconds 10
    python bench/kafka_hops.py --bootstrap-servers host:9092 --split "api,delivery router"

Runs the deployment bench/e2e_latency.py measures on Kafka (api, delivery and router
processes on a Tansu broker started for the run), sends births one per request at a fixed
rate with the same load generator and three SSE subscribers, then reads back from Kafka
the create timestamp of each event's ingress record and of its three delivery records
(kafka-python stamps a record when the producer is handed it; both topics carry the
event id in a header). Per event and subscription it prints p50/p99/max of:

  publish  scheduled send -> ingress record created (HTTP, validation, group commit)
  router   ingress record created -> delivery record created (poll, consent and watch-list
           ends, decide, audit append, delivery append)
  deliver  delivery record created -> SSE arrival (the delivery process's fetch, the frame,
           the stream)

and the whole (scheduled send -> SSE arrival), which is the sum of the three; then the
router's steps over the run from its /metrics (how many, records and time each from the
poll's return to the offsets handed over, their share of the run: the rest of its time is
its polls and the consent and watch-list catch-up) and each process's CPU per event.
The timestamps are the clocks of the processes that wrote the records, all on this
machine; the bench's monotonic times are put on that clock once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import httpx
from kafka import KafkaConsumer, TopicPartition

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.e2e_latency import Deployment, deployment  # noqa: E402
from bench.e2e_load import (  # noqa: E402
    SUBSCRIPTIONS,
    Subscribers,
    encode_requests,
    send_at_rate,
    warm_up,
)
from bench.proc_cpu import members_cpu_seconds, per_member  # noqa: E402
from bench.summary import percentile  # noqa: E402
from broker.topics import H_INGEST_EVENT_ID, delivery_topic, ingress_topic  # noqa: E402
from tests.e2e.harness import LogBackend, demo_keys  # noqa: E402
from tests.kafka_broker import TansuBroker  # noqa: E402

Stamps = dict[str, float]
"""Event id -> when its record was created (epoch ms)."""


def created(servers: str, topic: str, wanted: set[str]) -> Stamps:
    """The create timestamp of the first record of each wanted event in `topic`, read
    from its start to its end as of now."""
    consumer = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False,
                             fetch_max_wait_ms=50)
    try:
        partitions = [TopicPartition(topic, p)
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        stamps: Stamps = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(
                consumer.position(tp) < end for tp, end in ends.items()):
            for records in consumer.poll(timeout_ms=500, max_records=5000).values():
                for record in records:
                    event_id = dict(record.headers).get(H_INGEST_EVENT_ID, b"").decode()
                    if event_id in wanted and event_id not in stamps:
                        stamps[event_id] = float(record.timestamp)
        return stamps
    finally:
        consumer.close()


STEP_SERIES = ("handoff_router_batch_seconds_sum", "handoff_router_batch_seconds_count",
               "handoff_router_batch_records_sum")


def step_totals(where: Deployment) -> tuple[float, ...]:
    """The router processes' step time (s), steps and records routed, so far, summed from
    their /metrics."""
    totals = dict.fromkeys(STEP_SERIES, 0.0)
    for process in where.processes:
        if "router" not in process.role.split(",") and process.role != "all":
            continue
        for text in httpx.get(f"{process.url}/metrics", timeout=10).text.splitlines():
            name, _, value = text.partition(" ")
            if name in totals:
                totals[name] += float(value)
    return tuple(totals[name] for name in STEP_SERIES)


def steps_line(before: tuple[float, ...], after: tuple[float, ...], wall_s: float) -> str:
    seconds, steps, records = (a - b for a, b in zip(after, before, strict=True))
    if not steps:
        return "  router steps: none"
    return (f"  router steps: {steps:,.0f}, {records / steps:,.1f} records and "
            f"{seconds / steps * 1000:,.1f} ms each from the poll's return to the offsets "
            f"handed over (decide, audit and delivery appends), {seconds / wall_s:.0%} of "
            f"the {wall_s:.0f} s; the rest of the router's time is its polls and the "
            "consent and watch-list catch-up")


def line(name: str, values: list[float], what: str) -> str:
    if not values:
        return f"  {name:8s} nothing to measure"
    return (f"  {name:8s} p50 {percentile(values, .5):7.1f} ms  p99 "
            f"{percentile(values, .99):7.1f} ms  max {max(values):7.1f} ms  ({what})")


def hops(scheduled: Stamps, ingress: Stamps, delivered: dict[str, Stamps],
         arrived: dict[str, Stamps]) -> list[str]:
    """The report's lines, all times on one clock (epoch ms)."""
    publish = [ingress[e] - scheduled[e] for e in scheduled if e in ingress]
    router: list[float] = []
    deliver: list[float] = []
    whole: list[float] = []
    missing = 0
    for sub in SUBSCRIPTIONS:
        for e, due in scheduled.items():
            at = arrived[sub].get(e)
            made = delivered[sub].get(e)
            if at is None:
                missing += 1
                continue
            whole.append(at - due)
            if made is not None and e in ingress:
                router.append(made - ingress[e])
                deliver.append(at - made)
    return [
        line("publish", publish, "scheduled send -> ingress record created"),
        line("router", router, "ingress record created -> delivery record created"),
        line("deliver", deliver, "delivery record created -> SSE arrival"),
        line("whole", whole, f"scheduled send -> SSE arrival; {missing} deliveries missing"),
    ]


async def run(where: Deployment, servers: str, prefix: str, rate: float, seconds: float,
              others: dict[str, int]) -> None:
    keys = demo_keys()
    warm_up(where.url, keys, where.subscribe_url)
    subscribers = Subscribers(where.subscribe_url, keys)
    await subscribers.start()
    host = where.url.removeprefix("http://").split(":")[0]
    requests = encode_requests(host, keys["county-general"], int(rate * seconds), 1)
    pids = {**{f"{p.role} ({p.port})": p.proc.pid for p in where.processes
               if p.proc is not None}, **others}
    before = {label: members_cpu_seconds(pid) for label, pid in pids.items()}
    steps_before, wall_before = step_totals(where), time.monotonic()
    # Monotonic -> epoch ms: the records' timestamps are the writers' wall clocks.
    to_epoch_ms = (time.time() - time.monotonic()) * 1000
    scheduled, statuses, ended, _ = await send_at_rate(where.url, requests, rate, 10)
    ids = set(scheduled)
    await subscribers.wait(ids, ended + 10)
    usage = {label: per_member(label, pid, before[label], max(1, len(ids)))
             for label, pid in pids.items()}
    steps = steps_line(steps_before, step_totals(where), time.monotonic() - wall_before)
    await subscribers.stop()
    ingress = created(servers, prefix + ingress_topic("birth"), ids)
    delivered = {sub: created(servers, prefix + delivery_topic(sub), ids)
                 for sub in SUBSCRIPTIONS}
    print(f"\n{len(ids)} births at {rate:.0f}/s for {seconds:.0f} s, one per request, "
          f"{sum(s != 202 for s in statuses)} refused or unanswered; {where.shape}; "
          "per event and subscription:")
    for text in hops({e: due * 1000 + to_epoch_ms for e, due in scheduled.items()},
                     ingress, delivered,
                     {sub: {e: at * 1000 + to_epoch_ms for e, at in got.items()}
                      for sub, got in subscribers.arrived.items()}):
        print(text)
    print(steps)
    print("  CPU per event offered, by process: "
          + ", ".join(part for parts in usage.values() for part in parts))


def main(args: argparse.Namespace) -> None:
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="handoff-hops-"))
        others: dict[str, int] = {}
        servers = args.bootstrap_servers
        if not servers:
            tansu = stack.enter_context(TansuBroker())
            servers = tansu.bootstrap_servers
            if tansu.pid is not None:
                others["Tansu"] = tansu.pid
        backend = LogBackend.kafka(servers)
        where = stack.enter_context(deployment(Path(tmp), args.split, backend))
        asyncio.run(run(where, servers, backend.topic_prefix, args.rate, args.seconds,
                        others))


def parse_args(argv: Iterable[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=1000, help="births/s (default 1,000)")
    parser.add_argument("--seconds", type=float, default=20, help="sending (default 20)")
    parser.add_argument("--split", default="api delivery router",
                        help="the processes, each word one process's roles "
                             "(default 'api delivery router')")
    parser.add_argument("--bootstrap-servers", default=None,
                        help="Kafka to run on (default: a Tansu broker started for the run)")
    return parser.parse_args(None if argv is None else list(argv))


if __name__ == "__main__":
    main(parse_args())
