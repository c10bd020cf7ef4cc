"""CPU and latency of the delivery hubs alone, in one process, over a real embedded log
that another process appends to (as the router process does beside `handoff serve`).

    python bench/hub_cpu.py                    # 1,000 ev/s to 3 subscriptions for 10 s
    python bench/hub_cpu.py --rate 2000 --subscriptions 3 --streams 2

A child process appends deliveries the way the router does: one transaction (one
doorbell ring) every `--step-ms` naming every subscription's topic, `rate * step` records
per topic. This process runs one `FanOut` with `--streams` streams per subscription,
following as server-sent events. It prints this process's CPU (`time.process_time`, every
thread: the loop, the log's watcher, worker threads) per event and per frame delivered,
and the latency from each record's ingest timestamp (taken just before its commit) to
its arrival at a stream. Nothing else runs in this process (but `--busy-ms`, a task that
keeps the loop busy as HTTP work does, its CPU not counted), so the CPU figure is the
hubs' own; the latency depends on how busy the machine is (a shared machine: noisy).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import re
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import anyio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from broker.delivery.cursor import Cursor  # noqa: E402
from broker.delivery.envelope import delivery_headers  # noqa: E402
from broker.delivery.fanout import FanOut  # noqa: E402
from broker.delivery.feed import DeliveryFeed  # noqa: E402
from broker.log.port import NewRecord, TopicSpec  # noqa: E402
from broker.log.sqlite import SqliteEventLog  # noqa: E402
from broker.topics import delivery_topic  # noqa: E402
from schemas.registry import SchemaRegistry  # noqa: E402
from schemas.store import InMemoryRegistryStore  # noqa: E402
from schemas.wire import WireCodec  # noqa: E402

VIEW = {"type": "record", "name": "BirthView", "namespace": "bench.views", "fields": [
    {"name": "event_id", "type": "string"},
    {"name": "child_first_name", "type": ["null", "string"], "default": None},
    {"name": "child_last_name", "type": ["null", "string"], "default": None},
    {"name": "birth_date", "type": {"type": "int", "logicalType": "date"}},
    {"name": "birth_weight_grams", "type": ["null", "int"], "default": None},
    {"name": "county", "type": "string"},
    {"name": "plurality", "type": "int"},
    {"name": "mother_age", "type": ["null", "int"], "default": None},
]}
_INGESTED = re.compile(r'"ingested_at":"([^"]+)"')


def codec_and_id() -> tuple[SchemaRegistry, WireCodec, int]:
    registry = SchemaRegistry(InMemoryRegistryStore())
    schema_id = registry.register("bench-birth-view", VIEW).schema_id
    return registry, WireCodec(registry), schema_id


def append_like_the_router(path: str, subscriptions: int, rate: float, step_ms: float,
                           seconds: float, start_at: float) -> None:
    """In a child process: a batch per step to every subscription's topic, one
    transaction each, until `seconds` have passed."""
    _, codec, schema_id = codec_and_id()
    event_log = SqliteEventLog(Path(path))
    topics = [delivery_topic(f"bench-{i}") for i in range(subscriptions)]
    per_step = max(1, round(rate * step_ms / 1000))
    sent = 0
    time.sleep(max(0.0, start_at - time.time()))
    begun = time.monotonic()
    while (now := time.monotonic()) - begun < seconds:
        due = begun + sent / rate
        if due > now:
            time.sleep(due - now)
        now_ms = time.time_ns() // 1_000_000
        records = []
        for n in range(sent, sent + per_step):
            event_id = f"bench-{n}"
            value = codec.encode(schema_id, {
                "event_id": event_id, "child_first_name": "Ada", "child_last_name": "Moss",
                "birth_date": 20_000, "birth_weight_grams": 3300, "county": "Lane",
                "plurality": 1, "mother_age": 31})
            headers = delivery_headers(event_id, f"d-{n}", "birth", "vital-records",
                                       now_ms, now_ms, b"[]", b"[]")
            records.append(NewRecord(value=value, key=event_id.encode(), headers=headers))
        event_log.append_all([(topic, records) for topic in topics])
        sent += per_step
    event_log.close()


async def follow(fanout: FanOut, feed: DeliveryFeed, subscription: str,
                 arrivals: list[tuple[float, str]], stop: asyncio.Event) -> None:
    hub = await fanout.hub(subscription)
    cursor = Cursor(tuple(feed.end_offsets(subscription)))
    chunks = hub.follow(cursor, tick=0.5)
    while not stop.is_set():
        chunk = await anext(chunks)
        if chunk:
            arrivals.append((time.time(), chunk))


async def keep_busy(busy_ms: float, share: float, stop: asyncio.Event,
                    burnt: list[float]) -> None:
    """Stands in for the HTTP work of a serving process: a task that computes for
    `busy_ms` at a time, `share` of the time, and lets the loop run others in between."""
    pause = busy_ms * (1 - share) / share / 1000
    while not stop.is_set():
        started = time.thread_time()
        until = time.perf_counter() + busy_ms / 1000
        while time.perf_counter() < until:
            pass
        burnt.append(time.thread_time() - started)
        await asyncio.sleep(pause)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="handoff-hub-cpu-") as tmp:
        path = Path(tmp) / "log.db"
        registry, codec, _ = codec_and_id()
        event_log = SqliteEventLog(path)
        subscriptions = [f"bench-{i}" for i in range(args.subscriptions)]
        for sub in subscriptions:
            event_log.ensure_topic(TopicSpec(delivery_topic(sub)))
        feed = DeliveryFeed(event_log, codec, registry)
        fanout = FanOut(feed, anyio.CapacityLimiter(64))
        arrivals: list[tuple[float, str]] = []
        stop = asyncio.Event()
        tasks = [asyncio.create_task(follow(fanout, feed, sub, arrivals, stop))
                 for sub in subscriptions for _ in range(args.streams)]
        burnt: list[float] = []
        if args.busy_ms:
            tasks.append(asyncio.create_task(keep_busy(args.busy_ms, args.busy_share, stop, burnt)))
        await asyncio.sleep(1.0)
        start_at = time.time() + 0.5
        child = multiprocessing.get_context("spawn").Process(
            target=append_like_the_router,
            args=(str(path), args.subscriptions, args.rate, args.step_ms, args.seconds,
                  start_at))
        child.start()
        await asyncio.sleep(max(0.0, start_at - time.time()))
        cpu, wall, burnt_before = time.process_time(), time.monotonic(), sum(burnt)
        expected = args.rate * args.seconds  # roughly: whole steps
        while child.is_alive():
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # the last step's deliveries
        cpu = time.process_time() - cpu - (sum(burnt) - burnt_before)
        wall = time.monotonic() - wall
        stop.set()
        await fanout.close()
        for task in tasks:
            task.cancel()
        event_log.close()
    latencies = []
    frames = 0
    for arrived, chunk in arrivals:
        for stamp in _INGESTED.findall(chunk):
            sent = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
            latencies.append((arrived - sent) * 1000)
            frames += 1
    events = frames / max(1, args.subscriptions * args.streams)
    print(f"hubs: {args.subscriptions} subscriptions x {args.streams} streams, ~{expected:.0f} "
          f"events at {args.rate:g}/s in steps of {args.step_ms:g} ms: {frames} frames, "
          f"this process {cpu:.2f} s CPU over {wall:.1f} s = "
          f"{1e6 * cpu / max(events, 1):.0f} us per event, "
          f"{1e6 * cpu / max(frames, 1):.0f} us per frame")
    if latencies:
        print(f"      commit -> arrival p50 {percentile(latencies, 0.5):.1f} ms  "
              f"p99 {percentile(latencies, 0.99):.1f} ms  max {max(latencies):.1f} ms "
              "(ingest stamp has ms resolution)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscriptions", type=int, default=3)
    parser.add_argument("--streams", type=int, default=1, help="per subscription")
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--step-ms", type=float, default=29)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--busy-ms", type=float, default=0,
                        help="keep the loop busy too, in slices of this many ms (its CPU "
                             "is not counted), as HTTP work does in a serving process")
    parser.add_argument("--busy-share", type=float, default=0.6,
                        help="the share of the time the loop is kept busy (0 to 1)")
    asyncio.run(main(parser.parse_args()))
