"""Publish-to-delivery latency and sustained throughput through a real `handoff serve`.

    python bench/e2e_latency.py                      # 1,000 events/s for 20 s, then the rate sweep
    python bench/e2e_latency.py --rate 1000 --seconds 30 --no-sweep
    python bench/e2e_latency.py --split --no-sweep   # api+delivery process, router process
    python bench/e2e_latency.py --split "api delivery router" --no-sweep   # three processes
    python bench/e2e_latency.py --backend kafka --split --no-sweep   # on Tansu (loopback)
    python bench/e2e_latency.py --backend kafka --split "api delivery router" --no-sweep \
        --rate 1000 --kafka-floor                    # with the bare kafka-python floor
    python bench/e2e_latency.py --profile /tmp/prof  # py-spy flame graphs of each process

Deployments: one `handoff serve` (default), or `--split`: one process with the api and
delivery roles and one with the router role; `--split "api delivery router"` names each
process's roles. Publishers talk to the first process with the api role, subscribers to
the first with the delivery role.
`--backend kafka` runs on Kafka: a Tansu broker started on loopback for the run, or the
cluster at `--bootstrap-servers`. `--kafka-floor` first measures, on the same broker and
at the same rate, a bare kafka-python two-hop pipeline (bench/kafka_floor.py), so the
figures can be compared within one run on a shared machine.

Latency: births are published over HTTP at a fixed offered rate, one request per event;
three subscribers hold server-sent-event streams. Each event's latency is the time it
arrived at a subscriber minus the time the schedule said to send it (not when the sender
got round to it), so any stall, in the broker or the client, shows in the percentiles.

Throughput: births are published in batches at rising offered rates; a rate is sustained
when every event reaches all three subscribers within two seconds of the end of sending.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.calibration import calibration_ms  # noqa: E402
from bench.kafka_floor import percentile as floor_percentile  # noqa: E402
from bench.kafka_floor import run as kafka_floor_run  # noqa: E402
from bench.loadgen import ConnectionPool, encode_post  # noqa: E402
from broker.demo import story  # noqa: E402
from tests.e2e.harness import DEMO, BrokerProcess, LogBackend, demo_keys  # noqa: E402
from tests.kafka_broker import TansuBroker  # noqa: E402

TARGET_P99_MS = {"embedded": 50, "kafka": 150}

SUBSCRIPTIONS = ("hv-births", "hv-births-bench", "eval-births")
OWNERS = {"hv-births": "hv-nfp", "hv-births-bench": "hv-nfp", "eval-births": "state-evaluation"}


def bench_policy(root: Path) -> Path:
    """The demo bundle plus a third subscription to county-general births."""
    policy = root / "policy"
    shutil.copytree(DEMO / "policy", policy)
    with (policy / "subscriptions.yaml").open("a") as out:
        out.write("\n  - id: hv-births-bench\n    agency: hv-nfp\n    event_types: [birth]\n"
                  "    purpose: care_coordination\n    sources: [county-general]\n"
                  "    delivery: stream\n")
    return policy


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Subscribers:
    def __init__(self, url: str, keys: dict[str, str]) -> None:
        self.url = url
        self.keys = keys
        self.arrived: dict[str, dict[str, float]] = {s: {} for s in SUBSCRIPTIONS}
        self.tasks: list[asyncio.Task[None]] = []

    async def _follow(self, sub: str) -> None:
        headers = {"Authorization": f"Bearer {self.keys[OWNERS[sub]]}"}
        got = self.arrived[sub]
        async with httpx.AsyncClient(base_url=self.url, timeout=None) as client, \
                client.stream("GET", f"/v1/subscriptions/{sub}/stream",
                              headers=headers) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    got[json.loads(line[6:])["event_id"]] = time.monotonic()

    async def start(self) -> None:
        self.tasks = [asyncio.create_task(self._follow(s)) for s in SUBSCRIPTIONS]
        await asyncio.sleep(0.5)

    def complete(self, ids: set[str]) -> bool:
        return all(ids <= set(got) for got in self.arrived.values())

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def new_birth() -> dict:
    event = story.STORY[1].build(datetime.now(UTC))
    event["event_id"] = str(uuid.uuid4())
    return event


async def latency_run(url: str, keys: dict[str, str], rate: float, seconds: float,
                      per_request: int = 1, target_ms: float = 50,
                      subscribe_url: str | None = None) -> None:
    subscribers = Subscribers(subscribe_url or url, keys)
    await subscribers.start()
    host, port = url.removeprefix("http://").split(":")
    pool = ConnectionPool(host, int(port), 64)
    await pool.open()
    headers = {"Authorization": f"Bearer {keys['county-general']}"}
    total = int(rate * seconds)
    events = [new_birth() for _ in range(total)]
    path = "/v1/events/birth" if per_request == 1 else "/v1/events/birth:batch"
    requests = []
    for i in range(0, total, per_request):
        chunk = events[i:i + per_request]
        body = chunk[0] if per_request == 1 else {"events": chunk}
        requests.append((chunk, encode_post(path, host, headers, body)))
    scheduled: dict[str, float] = {}
    statuses: list[int] = []

    async def send(raw: bytes) -> None:
        status, _ = await pool.request(raw)
        statuses.append(status)

    start = time.monotonic() + 0.2
    pending: list[asyncio.Task[None]] = []
    for n, (chunk, raw) in enumerate(requests):
        due = start + n * per_request / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        for event in chunk:
            scheduled[event["event_id"]] = due
        pending.append(asyncio.create_task(send(raw)))
    await asyncio.gather(*pending)
    pool.close()
    ids = set(scheduled)
    deadline = time.monotonic() + 10
    while not subscribers.complete(ids) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await subscribers.stop()
    errors = sum(s != 202 for s in statuses)
    shape = "one event per request" if per_request == 1 else f"{per_request} events per request"
    print(f"\nlatency at {rate:.0f} events/s offered for {seconds:.0f} s ({len(ids)} events, "
          f"{shape}, {errors} requests refused), HTTP publish -> SSE subscriber:")
    everything: list[float] = []
    for sub in SUBSCRIPTIONS:
        got = subscribers.arrived[sub]
        lat = [(got[e] - scheduled[e]) * 1000 for e in ids if e in got]
        everything += lat
        missing = len(ids) - len(lat)
        if not lat:
            print(f"  {sub:18s} nothing arrived within 10 s of the end of sending")
            continue
        print(f"  {sub:18s} p50 {percentile(lat, .5):7.1f} ms  p99 {percentile(lat, .99):7.1f}"
              f" ms  max {max(lat):7.1f} ms  missing {missing}")
    if not everything:
        return
    print(f"  {'all subscribers':18s} p50 {percentile(everything, .5):7.1f} ms  p99 "
          f"{percentile(everything, .99):7.1f} ms  (target: p99 < {target_ms:.0f} ms)")


async def throughput_run(url: str, keys: dict[str, str], rate: float, seconds: float,
                         batch: int = 100, subscribe_url: str | None = None
                         ) -> tuple[bool, float]:
    subscribers = Subscribers(subscribe_url or url, keys)
    await subscribers.start()
    headers = {"Authorization": f"Bearer {keys['county-general']}"}
    ids: set[str] = set()
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        batches = int(rate * seconds / batch)
        start = time.monotonic()
        pending: list[asyncio.Task[httpx.Response]] = []
        for i in range(batches):
            due = start + i * batch / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            events = [new_birth() for _ in range(batch)]
            ids.update(e["event_id"] for e in events)
            pending.append(asyncio.create_task(
                client.post("/v1/events/birth:batch", json={"events": events})))
        responses = await asyncio.gather(*pending)
        sent_at = time.monotonic()
    refused = sum(r.status_code != 202 for r in responses)
    deadline = sent_at + 2
    while not subscribers.complete(ids) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    done = subscribers.complete(ids) and refused == 0
    lag = max(0.0, time.monotonic() - sent_at)
    await subscribers.stop()
    delivered = min(len(set(got) & ids) for got in subscribers.arrived.values())
    achieved = delivered / (sent_at - start + lag)
    print(f"  offered {rate:6.0f}/s: {'sustained' if done else 'NOT sustained':13s} "
          f"delivered {delivered}/{len(ids)} to each of 3 subscribers, "
          f"{achieved:6.0f}/s achieved, refused batches {refused}")
    return done, achieved


def warm_up(url: str, keys: dict[str, str], subscribe_url: str, timeout: float = 120
            ) -> None:
    """Publish births to every ingress partition and wait until they are delivered: a
    router on Kafka is ready before its consumer group has handed it partitions."""
    events = []
    for n in range(32):
        event = new_birth()
        event["subject_id"] = f"MPI-WARM{n:04d}"
        events.append(event)
    wanted = {e["event_id"] for e in events}
    publisher = {"Authorization": f"Bearer {keys['county-general']}"}
    reader = {"Authorization": f"Bearer {keys[OWNERS['eval-births']]}"}
    with httpx.Client(timeout=60) as client:
        response = client.post(f"{url}/v1/events/birth:batch", json={"events": events},
                               headers=publisher)
        response.raise_for_status()
        cursor, seen = None, set()
        deadline = time.monotonic() + timeout
        while not wanted <= seen:
            if time.monotonic() > deadline:
                raise RuntimeError("warm-up births were not delivered")
            params: dict[str, object] = {"limit": 1000, "wait": 1}
            if cursor:
                params["after"] = cursor
            body = client.get(f"{subscribe_url}/v1/subscriptions/eval-births/events",
                              params=params, headers=reader).json()
            seen.update(e["event_id"] for e in body["events"])
            cursor = body["next"]


def start_processes(root: Path, args: argparse.Namespace, backend: LogBackend
                    ) -> list[BrokerProcess]:
    """The deployment under test; the first process is the one clients talk to."""
    template = BrokerProcess(data_dir=root / "data", policy_dir=bench_policy(root),
                             backend=backend,
                             env={"HANDOFF_AUDIT__CHECKPOINT_INTERVAL_SECONDS": "60"})
    processes = ([template.sibling(roles) for roles in args.split.split()]
                 if args.split else [template])
    for process in processes:
        process.launch()
    for process in processes:
        process.wait_ready(120)
    return processes


def start_profiles(processes: list[BrokerProcess], out: Path, seconds: float,
                   form: str = "flamegraph") -> list[subprocess.Popen[bytes]]:
    """py-spy profiles of every process, for the length of the latency run: flame graphs
    (SVG), or collapsed stacks (`raw`, text) to grep and sum."""
    out.mkdir(parents=True, exist_ok=True)
    profilers = []
    for process in processes:
        assert process.proc is not None
        suffix = {"flamegraph": "svg", "raw": "txt", "speedscope": "json"}[form]
        target = out / f"{process.role.replace(',', '-')}-{process.port}.{suffix}"
        profilers.append(subprocess.Popen(
            # Non-blocking: a profiler that stops the process 200 times a second would
            # be the latency it measures. Idle threads too, so a thread's samples show
            # where its wall time goes (waiting on Kafka included).
            ["py-spy", "record", "--nonblocking", "--idle", "--pid", str(process.proc.pid),
             "--duration",
             str(int(seconds) + 1), "--rate", "200", "--format", form, "--output",
             str(target)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return profilers


async def main(args: argparse.Namespace) -> None:
    keys = demo_keys()
    with tempfile.TemporaryDirectory(prefix="handoff-bench-") as tmp, \
            contextlib.ExitStack() as stack:
        root = Path(tmp)
        backend = LogBackend.embedded()
        if args.backend == "kafka":
            servers = args.bootstrap_servers or stack.enter_context(
                TansuBroker()).bootstrap_servers
            backend = LogBackend.kafka(servers)
        processes = start_processes(root, args, backend)
        url = next(p.url for p in processes if p.role == "all" or "api" in p.role.split(","))
        subscribe_url = next(p.url for p in processes
                             if p.role == "all" or "delivery" in p.role.split(","))
        target = TARGET_P99_MS[args.backend]
        shape = (f"split: {', '.join(p.role for p in processes)} processes" if args.split
                 else "one process")
        print(f"{args.backend} log, {shape}; calibration loop {calibration_ms():.0f} ms")
        if args.kafka_floor and args.backend == "kafka":
            assert backend.bootstrap_servers is not None
            floor = kafka_floor_run(backend.bootstrap_servers, args.rate, args.seconds,
                                    args.floor_fetch_wait_ms)
            print(f"\nfloor: bare kafka-python two-hop pipeline, {args.rate:.0f} records/s for "
                  f"{args.seconds:.0f} s, fetch wait {args.floor_fetch_wait_ms} ms, same "
                  f"broker: p50 {floor_percentile(floor, .5):.1f} ms  p99 "
                  f"{floor_percentile(floor, .99):.1f} ms  "
                  f"(target for Handoff: p99 < 150 ms or <= "
                  f"{1.5 * floor_percentile(floor, .99):.0f} ms, 1.5x this)")
        try:
            warm_up(url, keys, subscribe_url)
            profilers = (start_profiles(processes, args.profile, args.seconds + 1,
                                        args.profile_format) if args.profile else [])
            if not args.batched_only:
                await latency_run(url, keys, args.rate, args.seconds, target_ms=target,
                                  subscribe_url=subscribe_url)
            for profiler in profilers:
                profiler.wait(60)
            if args.per_request > 1:
                await latency_run(url, keys, args.rate, args.seconds, args.per_request,
                                  target_ms=target, subscribe_url=subscribe_url)
            if args.sweep:
                print("\nsustained rate to 3 subscribers (batches of 100 over HTTP):")
                best = 0.0
                for rate in args.sweep_rates:
                    ok, _ = await throughput_run(url, keys, rate, args.sweep_seconds,
                                                 subscribe_url=subscribe_url)
                    if not ok:
                        break
                    best = rate
                print(f"  highest sustained offered rate: {best:.0f} events/s "
                      f"(target: 5,000)")
        finally:
            for process in reversed(processes):
                process.stop()
            for process in processes:
                warned = [line for line in process.logs().splitlines() if " WARNING " in line]
                blocking = sum("blocking the event loop" in line for line in warned)
                print(f"  {process.role}: {len(warned)} warnings logged, {blocking} of them "
                      "kafka-python's 'blocking the event loop'")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--per-request", type=int, default=10,
                        help="also measure with this many events per batch request")
    parser.add_argument("--batched-only", action="store_true",
                        help="measure latency with --per-request events per request only")
    parser.add_argument("--no-sweep", dest="sweep", action="store_false")
    parser.add_argument("--sweep-rates", type=float, nargs="+",
                        default=[1000, 2000, 3000, 4000, 5000, 6000, 8000])
    parser.add_argument("--sweep-seconds", type=float, default=10)
    parser.add_argument("--backend", choices=["embedded", "kafka"], default="embedded")
    parser.add_argument("--bootstrap-servers", default=None,
                        help="Kafka to run on (default: a Tansu broker started for the run)")
    parser.add_argument("--kafka-floor", action="store_true",
                        help="with --backend kafka: first measure a bare kafka-python "
                             "two-hop pipeline at --rate on the same broker")
    parser.add_argument("--floor-fetch-wait-ms", type=int, default=10)
    parser.add_argument("--split", nargs="?", const="api,delivery router", default=None,
                        help="run several processes: each word is one process's roles "
                             "(default 'api,delivery router')")
    parser.add_argument("--profile", type=Path, default=None,
                        help="write py-spy profiles of the latency run to this folder")
    parser.add_argument("--profile-format", choices=["flamegraph", "raw", "speedscope"],
                        default="flamegraph")
    asyncio.run(main(parser.parse_args()))
