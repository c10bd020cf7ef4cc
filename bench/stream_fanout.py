"""CPU and latency of server-sent-event streams sharing one subscription, through a real
`handoff serve` split into an `api,router` process and a `delivery` process (so the
delivery process's CPU is the streams' cost alone).

    python bench/stream_fanout.py                          # 10 live streams at 100 ev/s, 200 idle
    python bench/stream_fanout.py --streams 30 --rate 200 --idle-streams 500

Idle: `--idle-streams` streams held open on one subscription with nothing published;
prints the delivery process's CPU (share of one core) over `--seconds`.
Live: `--streams` streams on one subscription while births are published one per request
at `--rate`; prints the delivery process's CPU per event and per delivered frame, and
each event's latency from its scheduled send time to its arrival at every stream (all
streams must get every event once).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.calibration import calibration_ms  # noqa: E402
from broker.demo import story  # noqa: E402
from tests.e2e.harness import BrokerProcess, demo_keys  # noqa: E402

SUBSCRIPTION = "eval-births"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class SseReader:
    """One stream on a raw connection: the arrival time of each event id."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.duplicates = 0
        self.connected = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def run(self, host: str, port: int, key: str) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            f"GET /v1/subscriptions/{SUBSCRIPTION}/stream HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n".encode())
        await writer.drain()
        try:
            while line := await reader.readline():
                if line.startswith(b": connected"):
                    self.connected.set()
                elif line.startswith(b"data: {"):
                    event_id = json.loads(line[6:])["event_id"]
                    if event_id in self.arrivals:
                        self.duplicates += 1
                    self.arrivals.setdefault(event_id, time.monotonic())
        finally:
            writer.close()


def birth(event_id: str) -> bytes:
    first = next(step for step in story.STORY if step.event_type == "birth")
    return json.dumps({**first.build(datetime.now(UTC)), "event_id": event_id}).encode()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def open_streams(url: httpx.URL, key: str, count: int) -> list[SseReader]:
    readers = [SseReader() for _ in range(count)]
    for r in readers:
        r.task = asyncio.create_task(r.run(url.host, url.port or 80, key))
    async with asyncio.timeout(120):
        for r in readers:
            await r.connected.wait()
    await asyncio.sleep(2.0)  # settled
    return readers


async def idle(delivery: BrokerProcess, key: str, args: argparse.Namespace) -> None:
    assert delivery.proc is not None
    readers = await open_streams(httpx.URL(delivery.url), key, args.idle_streams)
    before, started = cpu_seconds(delivery.proc.pid), time.monotonic()
    await asyncio.sleep(args.seconds)
    used = cpu_seconds(delivery.proc.pid) - before
    share = used / (time.monotonic() - started)
    print(f"idle: {args.idle_streams} streams open, nothing published: delivery process "
          f"{100 * share:.1f}% of one core")
    for r in readers:
        assert r.task is not None
        r.task.cancel()


async def live(api: BrokerProcess, delivery: BrokerProcess, keys: dict[str, str],
               args: argparse.Namespace) -> None:
    assert delivery.proc is not None
    readers = await open_streams(httpx.URL(delivery.url), keys["state-evaluation"],
                                 args.streams)
    sent: dict[str, float] = {}
    total = int(args.rate * args.seconds)
    headers = {"Authorization": f"Bearer {keys['county-general']}",
               "Content-Type": "application/json"}
    before = cpu_seconds(delivery.proc.pid)
    async with httpx.AsyncClient(base_url=api.url, timeout=60,
                                 limits=httpx.Limits(max_connections=64)) as client:
        start = time.monotonic()

        async def send(i: int) -> None:
            event_id = f"fan-{i}"
            sent[event_id] = start + i / args.rate
            response = await client.post("/v1/events/birth", content=birth(event_id),
                                         headers=headers)
            response.raise_for_status()

        tasks = []
        for i in range(total):
            delay = start + i / args.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(i)))
        await asyncio.gather(*tasks)
    deadline = time.monotonic() + 30
    while (time.monotonic() < deadline
           and any(len(r.arrivals) < total for r in readers)):
        await asyncio.sleep(0.1)
    used = cpu_seconds(delivery.proc.pid) - before
    latencies = [(r.arrivals[e] - t) * 1000 for r in readers for e, t in sent.items()
                 if e in r.arrivals]
    missing = sum(total - len(r.arrivals) for r in readers)
    duplicates = sum(r.duplicates for r in readers)
    print(f"live: {args.streams} streams on {SUBSCRIPTION}, {total} events at {args.rate:g}/s "
          f"one per request: delivery process {used:.2f} s CPU = {1000 * used / total:.2f} ms "
          f"per event, {1e6 * used / max(len(latencies), 1):.0f} us per frame delivered")
    print(f"      latency p50 {percentile(latencies, 0.5):.1f} ms  "
          f"p99 {percentile(latencies, 0.99):.1f} ms  missing {missing}  "
          f"duplicates {duplicates}")
    for r in readers:
        assert r.task is not None
        r.task.cancel()


async def main(args: argparse.Namespace) -> None:
    keys = demo_keys()
    with tempfile.TemporaryDirectory(prefix="handoff-fanout-") as tmp:
        template = BrokerProcess(data_dir=Path(tmp) / "data")
        api, delivery = template.sibling("api,router"), template.sibling("delivery")
        for process in (api, delivery):
            process.launch()
        try:
            for process in (api, delivery):
                process.wait_ready(120)
            print(f"calibration loop {calibration_ms():.0f} ms (higher: a busier machine)")
            if args.idle_streams:
                await idle(delivery, keys["state-evaluation"], args)
            if args.streams:
                await live(api, delivery, keys, args)
        finally:
            for process in (delivery, api):
                process.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--idle-streams", type=int, default=200)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    asyncio.run(main(parser.parse_args()))
