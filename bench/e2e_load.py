"""The load bench/e2e_latency.py puts on a running Handoff deployment, and what it reads back.

Publishers send births over HTTP at a fixed offered rate from pre-encoded requests
(bench/loadgen.py), three subscribers hold server-sent-event streams, and each event's
latency is the time it reached a subscriber minus the time the schedule said to send it.
`cpu` is a callable returning the CPU seconds of the broker's processes so far (their
whole process trees, bench/proc_cpu.py); it is read before sending starts and after the
last event arrived (or the wait for it ended), so a phase's CPU includes routing and
delivery that finish after sending.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.loadgen import ConnectionPool, encode_post
from bench.proc_cpu import self_cpu_seconds
from bench.summary import percentile
from broker.demo import story
from tests.e2e.harness import DEMO

SUBSCRIPTIONS = ("hv-births", "hv-births-bench", "eval-births")
OWNERS = {"hv-births": "hv-nfp", "hv-births-bench": "hv-nfp", "eval-births": "state-evaluation"}
CpuReader = Callable[[], float]


def bench_policy(root: Path) -> Path:
    """The demo bundle plus a third subscription to county-general births."""
    policy = root / "policy"
    shutil.copytree(DEMO / "policy", policy)
    with (policy / "subscriptions.yaml").open("a") as out:
        out.write("\n  - id: hv-births-bench\n    agency: hv-nfp\n    event_types: [birth]\n"
                  "    purpose: care_coordination\n    sources: [county-general]\n"
                  "    delivery: stream\n")
    return policy


GIVEN = ("Jolene", "Amara", "Keisha", "Maria", "Ngoc", "Fatima", "Ashley", "Guadalupe",
         "Brianna", "Leah", "Hannah", "Yesenia", "Destiny", "Mai", "Rosa", "Tamika")
FAMILY = ("Lindqvist", "Okafor", "Nguyen", "Hernandez", "Yang", "Johnson", "Vang",
          "Garcia", "Thompson", "Abdi", "Kowalski", "Lee", "Martinez", "Her", "Olson",
          "Brown", "Moua", "Washington", "Schmidt", "Ali")


def new_birth(n: int = 0, subjects: int = 1) -> dict[str, Any]:
    """The demo story's first birth under a new event id; with `subjects` > 1, the n-th
    of that many mothers (spread over the ingress partitions, which are keyed by subject)
    instead of the story's one. Each of those mothers is another woman (her own name,
    date of birth, SSN, phone; her own child), as distinct subject ids are in an agency's
    records: record linkage then makes a person of each, rather than linking hundreds of
    records to one mother."""
    event: dict[str, Any] = story.STORY[1].build(datetime.now(UTC))
    event["event_id"] = str(uuid.uuid4())
    if subjects > 1:
        m = n % subjects
        event["subject_id"] = f"MPI-B{m:07d}"
        mother, child = event["mother"], event["child"]
        family = FAMILY[(m // len(GIVEN)) % len(FAMILY)]
        mother["first_name"] = GIVEN[m % len(GIVEN)]
        mother["last_name"] = child["last_name"] = family
        mother["birth_date"] = f"{1980 + m % 25}-{1 + m % 12:02d}-{1 + m % 28:02d}"
        mother["ssn"] = f"{100 + m % 800:03d}-{10 + m % 89:02d}-{m % 10000:04d}"
        mother["phone"] = f"608-{200 + m % 800:03d}-{m % 10000:04d}"
        mother["medicaid_id"] = f"WI-MA-{m:08d}"
        child["child_id"] = f"MPI-C{m:07d}"
        child["first_name"] = GIVEN[(m // 7) % len(GIVEN)]
        child["birth_date"] = (datetime.now(UTC).date() - timedelta(days=1 + m % 30)
                               ).isoformat()
    return event


RESUME: dict[tuple[str, str], str] = {}
"""The last cursor each subscription's stream got from a broker (url, subscription): the
next phase's stream resumes there with `Last-Event-ID`, as a subscriber does, instead of
reading the whole delivery topic again from its start."""


class Subscribers:
    def __init__(self, url: str, keys: dict[str, str]) -> None:
        self.url = url
        self.keys = keys
        self.arrived: dict[str, dict[str, float]] = {s: {} for s in SUBSCRIPTIONS}
        # ms from the broker's ingest timestamp to arrival: routing and delivery alone
        self.after_ingest: dict[str, list[float]] = {s: [] for s in SUBSCRIPTIONS}
        self.tasks: list[asyncio.Task[None]] = []

    async def _follow(self, sub: str) -> None:
        headers = {"Authorization": f"Bearer {self.keys[OWNERS[sub]]}"}
        resume = RESUME.get((self.url, sub))
        if resume is not None:
            headers["Last-Event-ID"] = resume
        got, after_ingest = self.arrived[sub], self.after_ingest[sub]
        async with httpx.AsyncClient(base_url=self.url, timeout=None) as client, \
                client.stream("GET", f"/v1/subscriptions/{sub}/stream",
                              headers=headers) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    frame = json.loads(line[6:])
                    got[frame["event_id"]] = time.monotonic()
                    ingested = datetime.fromisoformat(frame["ingested_at"]).timestamp()
                    after_ingest.append((time.time() - ingested) * 1000)
                elif line.startswith("id: "):
                    RESUME[(self.url, sub)] = line[4:]

    async def start(self) -> None:
        self.tasks = [asyncio.create_task(self._follow(s)) for s in SUBSCRIPTIONS]
        await asyncio.sleep(0.5)

    def complete(self, ids: set[str]) -> bool:
        return all(ids <= got.keys() for got in self.arrived.values())

    async def wait(self, ids: set[str], until: float) -> None:
        while not self.complete(ids) and time.monotonic() < until:
            await asyncio.sleep(0.05)

    def failures(self) -> dict[str, str]:
        """Subscriptions whose stream ended on its own (it should not), and how."""
        return {sub: (repr(task.exception()) if task.exception() else "the stream ended")
                for sub, task in zip(SUBSCRIPTIONS, self.tasks, strict=True)
                if task.done() and not task.cancelled()}

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@dataclass(frozen=True)
class Requests:
    """Pre-encoded publish requests and the event ids each carries."""

    raw: tuple[bytes, ...]
    ids: tuple[tuple[str, ...], ...]
    per_request: int


def encode_requests(host: str, key: str, count: int, per_request: int, subjects: int = 1
                    ) -> Requests:
    headers = {"Authorization": f"Bearer {key}"}
    path = "/v1/events/birth" if per_request == 1 else "/v1/events/birth:batch"
    events = [new_birth(n, subjects) for n in range(count)]
    raw, ids = [], []
    for i in range(0, count, per_request):
        chunk = events[i:i + per_request]
        body = chunk[0] if per_request == 1 else {"events": chunk}
        raw.append(encode_post(path, host, headers, body))
        ids.append(tuple(e["event_id"] for e in chunk))
    return Requests(tuple(raw), tuple(ids), per_request)


async def send_at_rate(url: str, requests: Requests, rate: float, answer_seconds: float,
                       connections: int = 64
                       ) -> tuple[dict[str, float], list[int], float, list[float]]:
    """Send every request at its scheduled time and wait for the answers at most
    `answer_seconds` past the end of the schedule (so a broker that falls behind cannot
    stretch the run; an unanswered request counts as status 0). Returns each event's
    scheduled time, the statuses, when the schedule ended, and how long each answered
    request took from its scheduled time to its answer (ms)."""
    host, port = url.removeprefix("http://").split(":")
    pool = ConnectionPool(host, int(port), connections)
    await pool.open()
    scheduled: dict[str, float] = {}
    statuses: list[int] = []
    answered_ms: list[float] = []

    async def send(raw: bytes, due: float) -> None:
        try:
            status, _ = await pool.request(raw)
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            status = 0
        else:
            answered_ms.append((time.monotonic() - due) * 1000)
        statuses.append(status)

    start = time.monotonic() + 0.2
    pending: list[asyncio.Task[None]] = []
    for n, (raw, ids) in enumerate(zip(requests.raw, requests.ids, strict=True)):
        due = start + n * requests.per_request / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        for event_id in ids:
            scheduled[event_id] = due
        pending.append(asyncio.create_task(send(raw, due)))
    ended = start + len(requests.raw) * requests.per_request / rate
    _, late = await asyncio.wait(pending, timeout=max(0.1, ended + answer_seconds
                                                      - time.monotonic()))
    for task in late:
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)
    statuses += [0] * len(late)
    pool.close()
    return scheduled, statuses, ended, answered_ms


@dataclass(frozen=True)
class LatencyResult:
    rate: float
    seconds: float
    events: int
    refused: int
    missing: int
    latencies_ms: tuple[float, ...]
    cpu_seconds: float
    wall_seconds: float

    @property
    def p50(self) -> float | None:
        return percentile(self.latencies_ms, .5) if self.latencies_ms else None

    @property
    def p99(self) -> float | None:
        return percentile(self.latencies_ms, .99) if self.latencies_ms else None

    @property
    def cpu_us_per_event(self) -> float:
        """CPU over the events offered: a lower bound when some were not delivered."""
        return self.cpu_seconds / max(1, self.events) * 1e6

    @property
    def cpu_us_per_delivered_event(self) -> float:
        """CPU over the events delivered (three deliveries each): an upper bound when some
        were not, since the phase's CPU also published and routed some of those."""
        delivered = (3 * self.events - self.missing) / 3
        return self.cpu_seconds / max(1.0, delivered) * 1e6


async def latency_run(url: str, keys: dict[str, str], rate: float, seconds: float,
                      cpu: CpuReader, per_request: int = 1, target_ms: float = 50,
                      subscribe_url: str | None = None, drain_seconds: float = 10,
                      subjects: int = 1) -> LatencyResult:
    subscribers = Subscribers(subscribe_url or url, keys)
    await subscribers.start()
    host = url.removeprefix("http://").split(":")[0]
    requests = encode_requests(host, keys["county-general"], int(rate * seconds), per_request,
                               subjects)
    cpu_before, wall_before, client_before = cpu(), time.monotonic(), self_cpu_seconds()
    scheduled, statuses, sent_at, answered_ms = await send_at_rate(url, requests, rate,
                                                                   drain_seconds)
    ids = set(scheduled)
    await subscribers.wait(ids, sent_at + drain_seconds)
    cpu_used, wall = cpu() - cpu_before, time.monotonic() - wall_before
    client_used = self_cpu_seconds() - client_before
    await subscribers.stop()
    refused = sum(s != 202 for s in statuses)
    unanswered = statuses.count(0)
    shape = "one event per request" if per_request == 1 else f"{per_request} events per request"
    print(f"\nlatency at {rate:.0f} events/s offered for {seconds:.0f} s ({len(ids)} events, "
          f"{shape}; {refused - unanswered} requests refused, {unanswered} not answered "
          f"within {drain_seconds:.0f} s of the schedule's end), HTTP publish -> SSE "
          "subscriber:")
    everything: list[float] = []
    missing = 0
    for sub in SUBSCRIPTIONS:
        got = subscribers.arrived[sub]
        lat = [(got[e] - scheduled[e]) * 1000 for e in ids if e in got]
        everything += lat
        missing += len(ids) - len(lat)
        if not lat:
            print(f"  {sub:18s} nothing arrived within {drain_seconds:.0f} s of the end of "
                  "sending")
            continue
        print(f"  {sub:18s} p50 {percentile(lat, .5):7.1f} ms  p99 {percentile(lat, .99):7.1f}"
              f" ms  max {max(lat):7.1f} ms  missing {len(ids) - len(lat)}")
    result = LatencyResult(rate, seconds, len(ids), refused, missing, tuple(everything),
                           cpu_used, wall)
    if result.p50 is not None and result.p99 is not None:
        print(f"  {'all subscribers':18s} p50 {result.p50:7.1f} ms  p99 {result.p99:7.1f} ms  "
              f"(target: p99 < {target_ms:.0f} ms)")
    routed = [ms for sub in SUBSCRIPTIONS for ms in subscribers.after_ingest[sub]]
    if routed:
        print(f"  {'ingest -> arrival':18s} p50 {percentile(routed, .5):7.1f} ms  p99 "
              f"{percentile(routed, .99):7.1f} ms  (the broker's ingest timestamp to "
              "arrival: routing and delivery)")
    if answered_ms:
        print(f"  {'publish answered':18s} p50 {percentile(answered_ms, .5):7.1f} ms  p99 "
              f"{percentile(answered_ms, .99):7.1f} ms  (scheduled send -> 202, "
              "the part of the latency spent before the router)")
    per_event = f"{result.cpu_us_per_event:,.0f} µs per event"
    if missing:
        per_event = (f"between {result.cpu_us_per_event:,.0f} µs per event offered and "
                     f"{result.cpu_us_per_delivered_event:,.0f} µs per event delivered")
    print(f"  broker CPU (user + system, every broker process and its children): "
          f"{cpu_used:.1f} s, {per_event}, {cpu_used / wall:.2f} cores busy over {wall:.0f} s")
    print(f"  this load generator (publishers and subscribers, one process): "
          f"{client_used / max(1, len(ids)) * 1e6:,.0f} µs per event, "
          f"{client_used / wall:.2f} cores busy")
    return result


KEEP_UP = 0.95
"""The share of the offered rate a sustained rate delivers, sending and catching up."""


@dataclass(frozen=True)
class SweepStep:
    rate: float
    sustained: bool
    delivered: int
    events: int
    achieved: float
    cpu_us_per_event: float
    cores: float


async def throughput_run(url: str, keys: dict[str, str], rate: float, seconds: float,
                         cpu: CpuReader, batch: int = 100, subscribe_url: str | None = None,
                         grace_seconds: float = 2, subjects: int = 1) -> SweepStep:
    """A rate is sustained when every event reaches all three subscribers within
    `grace_seconds` of the end of sending, no batch is refused, and the rate delivered
    over the sending and the catching up is at least `KEEP_UP` of the rate offered (a
    broker that ends a run seconds behind would fall further behind over a longer one)."""
    subscribers = Subscribers(subscribe_url or url, keys)
    await subscribers.start()
    host = url.removeprefix("http://").split(":")[0]
    requests = encode_requests(host, keys["county-general"], int(rate * seconds), batch,
                               subjects)
    cpu_before, wall_before = cpu(), time.monotonic()
    scheduled, statuses, sent_at, _ = await send_at_rate(url, requests, rate, grace_seconds)
    start = min(scheduled.values())
    ids = set(scheduled)
    await subscribers.wait(ids, sent_at + grace_seconds)
    cpu_used, wall = cpu() - cpu_before, time.monotonic() - wall_before
    refused = sum(s != 202 for s in statuses)
    done = subscribers.complete(ids) and refused == 0
    finished = time.monotonic()
    failures = subscribers.failures()
    await subscribers.stop()
    each = {sub: len(got.keys() & ids) for sub, got in subscribers.arrived.items()}
    delivered = min(each.values())
    achieved = delivered / (finished - start)
    done = done and achieved >= KEEP_UP * rate
    step = SweepStep(rate, done, delivered, len(ids), achieved,
                     cpu_used / max(1, len(ids)) * 1e6, cpu_used / wall)
    print(f"  offered {rate:6.0f}/s: {'sustained' if done else 'NOT sustained':13s} "
          f"delivered {delivered}/{len(ids)} to each of 3 subscribers, "
          f"{step.achieved:6.0f}/s achieved, batches refused or unanswered {refused}, "
          f"broker CPU {step.cpu_us_per_event:,.0f} µs/event, {step.cores:.2f} cores")
    if not done:
        print("    delivered per subscription: " + ", ".join(
            f"{sub} {count}" for sub, count in each.items()))
    for sub, how in failures.items():
        print(f"    the stream of {sub} ended during the run: {how}")
    return step


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
        cursor: str | None = None
        seen: set[str] = set()
        deadline = time.monotonic() + timeout
        while not wanted <= seen:
            if time.monotonic() > deadline:
                raise RuntimeError("warm-up births were not delivered")
            params: dict[str, str | int] = {"limit": 1000, "wait": 1}
            if cursor:
                params["after"] = cursor
            body = client.get(f"{subscribe_url}/v1/subscriptions/eval-births/events",
                              params=params, headers=reader).json()
            seen.update(e["event_id"] for e in body["events"])
            cursor = body["next"]
