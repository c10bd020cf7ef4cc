"""CPU per publish of the serving process's publish path, in this process: the app
`handoff serve` runs (every middleware, the publish route, validation, Avro encoding) and
group commit over a real embedded log and idempotency index, without a server, a socket
or a router (so without uvicorn's parsing and writing, about 140-200 µs more per request).

    python bench/publish_cpu.py                    # 1,000 births/s, one per request, 10 s
    python bench/publish_cpu.py --rate 2000 --seconds 5 --rounds 3
    python bench/publish_cpu.py --rate 5000 --per-request 100   # batches of 100 births

Births are sent at `--rate` (in ticks of 1 ms, as an offered-rate load generator does,
so group commit batches them as it does under that load) and each round prints this
process's CPU (`time.process_time`: the event loop and the committer thread) per publish,
and the commits' mean batch size. A shared machine: figures are noisy; compare runs
back to back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.e2e_load import bench_policy, new_birth  # noqa: E402
from broker.api.app import create_app  # noqa: E402
from broker.bootstrap import build_broker  # noqa: E402
from broker.config import load_settings  # noqa: E402
from tests.e2e.harness import DEMO, demo_keys  # noqa: E402

Message = MutableMapping[str, Any]
TICK_S = 0.001
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu() -> dict[str, float]:
    """CPU seconds of each live thread of this process, by thread name."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    found: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(task.name), "other")
        found[name] = found.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / CLOCK_TICK
    return found


class Publishes:
    """Pre-encoded publish requests and the answers they got."""

    def __init__(self, app: Any, count: int, per_request: int = 1) -> None:
        self.app = app
        key = demo_keys()["county-general"]
        self.path = "/v1/events/birth" + (":batch" if per_request > 1 else "")
        self.bodies = [json.dumps(new_birth()).encode() for _ in range(count)] \
            if per_request == 1 else [
            json.dumps({"events": [new_birth() for _ in range(per_request)]}).encode()
            for _ in range(count)]
        self.key = f"Bearer {key}".encode()
        self.statuses: list[int] = []

    async def one(self, body: bytes) -> None:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "POST", "scheme": "http", "path": self.path,
                 "raw_path": self.path.encode(), "query_string": b"", "root_path": "",
                 "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000),
                 "headers": [(b"host", b"127.0.0.1:8000"),
                             (b"content-type", b"application/json"),
                             (b"content-length", str(len(body)).encode()),
                             (b"authorization", self.key)]}
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if sent:
                await asyncio.Event().wait()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.statuses.append(message["status"])

        await self.app(scope, receive, send)

    async def at_rate(self, bodies: list[bytes], rate: float) -> None:
        tasks: set[asyncio.Task[None]] = set()
        started = time.monotonic()
        for i, body in enumerate(bodies):
            due = started + i / rate
            wait = due - time.monotonic()
            if wait > TICK_S / 2:
                await asyncio.sleep(wait)
            task = asyncio.create_task(self.one(body))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.gather(*tasks)


class CountingCommits:
    """Counts the group commits' batches (wraps the committer's `_commit`)."""

    def __init__(self, committer: Any) -> None:
        self.batches = self.requests = 0
        inner = committer._commit

        def commit(batch: list[Any], unless_busy: bool = False) -> bool:
            done: bool = inner(batch, unless_busy)
            if done:   # not a try on the event loop that found the log busy
                self.batches += 1
                self.requests += len(batch)
            return done

        committer._commit = commit


async def run(app: Any, args: argparse.Namespace, commits: CountingCommits) -> None:
    per = args.per_request
    requests_per_second = args.rate / per
    per_round = max(1, int(requests_per_second * args.seconds))
    publishes = Publishes(app, per_round * (args.rounds + 1), per)
    async with app.router.lifespan_context(app):
        warm = publishes.bodies[:max(1, per_round // 4)]
        await publishes.at_rate(warm, requests_per_second)
        for r in range(args.rounds):
            bodies = publishes.bodies[(r + 1) * per_round:(r + 2) * per_round]
            births = len(bodies) * per
            before, batches, requests = time.process_time(), commits.batches, commits.requests
            wall, threads = time.monotonic(), thread_cpu()
            await publishes.at_rate(bodies, requests_per_second)
            cpu, wall = time.process_time() - before, time.monotonic() - wall
            spent = {name: used - threads.get(name, 0.0) for name, used in thread_cpu().items()}
            mean = (commits.requests - requests) / max(1, commits.batches - batches)
            print(f"round {r + 1}: {cpu / births * 1e6:6.1f} µs CPU per event "
                  f"({births:,} births at {args.rate:,.0f}/s, {per} per request, "
                  f"{cpu / wall:.2f} cores; {mean:.1f} requests per commit)", flush=True)
            print("   by thread: " + ", ".join(
                f"{name} {used / births * 1e6:.0f} µs" for name, used in
                sorted(spent.items(), key=lambda item: -item[1]) if used > 0), flush=True)
    refused = [s for s in publishes.statuses if s != 202]
    if refused:
        raise SystemExit(f"{len(refused)} publishes refused: {sorted(set(refused))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="births per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of a round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-request", type=int, default=1,
                        help="births per request (more than 1: the batch route)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        workdir = Path(name)
        settings = load_settings(policy_dir=bench_policy(workdir), data_dir=workdir / "data",
                                 keys_file=DEMO / "keys.yaml")
        broker = build_broker(settings, router_thread=False)
        try:
            assert broker.publisher is not None
            commits = CountingCommits(broker.publisher._committer)
            asyncio.run(run(create_app(broker.api), args, commits))
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
