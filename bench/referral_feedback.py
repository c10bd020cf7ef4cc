"""The return path's latency, and the wired referral worker's cost with many referrals.

**Latency** (`latency`): a real `handoff serve` on the embedded log with the demo
policy. The hotline publishes `--referrals` referrals; then home visiting publishes one
`ACCEPTED` status per referral over HTTP at a fixed offered rate, one request each, while
the hotline holds a server-sent-event stream on `cw-referral-status`. A status's latency
is when it reached the hotline minus when the schedule said to send it, so a stall
anywhere shows. Each publish also pays the publish-path check: the ledger caught up with
the log, the update checked against the referral.

**Wired worker** (`worker`): a broker built in this process (not started), `--open`
referrals published through its publisher, then: the catch-up that builds the ledger
from the log (what a fresh Kafka process or a lost ledger file costs), the worker's idle
tick (catch up with nothing new, then the due-time index: what every second costs), and
the process's peak resident set.

    python bench/referral_feedback.py                    # both, 50 statuses/s for 20 s
    python bench/referral_feedback.py latency --rate 100 --seconds 30
    python bench/referral_feedback.py worker --open 100000

Figures depend on the machine and on what else runs on it; on a shared 2-core machine
they are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.loadgen import ConnectionPool, encode_post  # noqa: E402
from broker.demo import story  # noqa: E402
from tests.e2e.harness import DEMO, BrokerProcess, demo_keys  # noqa: E402

BATCH = 500


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def referral(n: int, at: datetime) -> dict[str, Any]:
    event = story.referral(f"MPI-B{n:07d}", f"HL-B{n:07d}", "Keisha", "Brown", "Jaylen")(at)
    event["event_id"] = str(uuid.uuid4())
    return event


def accepted(n: int, at: datetime) -> dict[str, Any]:
    event = story.status(f"MPI-B{n:07d}", f"HL-B{n:07d}", "ACCEPTED")(at)
    event["event_id"] = str(uuid.uuid4())
    return event


# -- latency -------------------------------------------------------------------------------


async def follow(url: str, key: str, arrived: dict[str, float]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=None) as client, \
            client.stream("GET", "/v1/subscriptions/cw-referral-status/stream",
                          headers={"Authorization": f"Bearer {key}"}) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                arrived[json.loads(line[6:])["event_id"]] = time.monotonic()


async def latency_run(url: str, keys: dict[str, str], rate: float, seconds: float) -> None:
    total = int(rate * seconds)
    t = datetime.now(UTC)
    hotline = {"Authorization": f"Bearer {keys['cw-hotline']}"}
    async with httpx.AsyncClient(base_url=url, headers=hotline, timeout=120) as client:
        for start in range(0, total + 1, BATCH):
            events = [referral(n, t) for n in range(start, min(total + 1, start + BATCH))]
            response = await client.post("/v1/events/referral:batch", json={"events": events})
            assert response.status_code == 202, response.text
    nfp = {"Authorization": f"Bearer {keys['hv-nfp']}"}
    async with httpx.AsyncClient(base_url=url, headers=nfp, timeout=120) as client:
        # One status first: the API process's ledger catches up with every referral.
        warm = await client.post("/v1/events/referral_status",
                                 json=accepted(total, t + timedelta(hours=1)))
        assert warm.status_code == 202, warm.text
    arrived: dict[str, float] = {}
    follower = asyncio.create_task(follow(url, keys["cw-hotline"], arrived))
    await asyncio.sleep(0.5)
    host, port = url.removeprefix("http://").split(":")
    pool = ConnectionPool(host, int(port), 32)
    await pool.open()
    statuses = [accepted(n, t + timedelta(hours=1)) for n in range(total)]
    scheduled: dict[str, float] = {}
    answered: list[float] = []
    codes: list[int] = []

    async def send(raw: bytes, due: float) -> None:
        code, _ = await pool.request(raw)
        codes.append(code)
        answered.append((time.monotonic() - due) * 1000)

    start = time.monotonic() + 0.2
    pending: list[asyncio.Task[None]] = []
    for n, event in enumerate(statuses):
        due = start + n / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        scheduled[event["event_id"]] = due
        pending.append(asyncio.create_task(send(
            encode_post("/v1/events/referral_status", host, nfp, event), due)))
    await asyncio.gather(*pending)
    pool.close()
    deadline = time.monotonic() + 10
    while not set(scheduled) <= set(arrived) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    follower.cancel()
    await asyncio.gather(follower, return_exceptions=True)
    lat = [(arrived[e] - due) * 1000 for e, due in scheduled.items() if e in arrived]
    print(f"\nreturn path at {rate:.0f} statuses/s offered for {seconds:.0f} s ({total} "
          f"statuses over {total + 1} referrals, embedded log, {sum(c != 202 for c in codes)} "
          "refused):")
    print(f"  publish answered (incl. ledger check)  p50 {percentile(answered, .5):7.1f} ms  "
          f"p99 {percentile(answered, .99):7.1f} ms")
    print(f"  status publish -> referrer's stream    p50 {percentile(lat, .5):7.1f} ms  "
          f"p99 {percentile(lat, .99):7.1f} ms  max {max(lat):7.1f} ms  missing "
          f"{total - len(lat)}")


def latency(rate: float, seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="handoff-feedback-") as tmp:
        broker = BrokerProcess(data_dir=Path(tmp) / "data").start()
        try:
            asyncio.run(latency_run(broker.url, demo_keys(), rate, seconds))
        finally:
            broker.stop()


# -- the wired worker ----------------------------------------------------------------------


def worker(count: int, ticks: int) -> None:
    from broker.auth import Principal
    from broker.bootstrap import build_broker
    from broker.config import load_settings
    from broker.referral_timers import ReferralTimers

    with tempfile.TemporaryDirectory(prefix="handoff-worker-") as tmp:
        settings = load_settings(policy_dir=DEMO / "policy", data_dir=Path(tmp) / "data",
                                 keys_file=DEMO / "keys.yaml")
        broker = build_broker(settings, router_thread=False)
        try:
            assert broker.publisher is not None and broker.referrals is not None
            hotline = Principal("bench", "cw-hotline", frozenset())
            t = datetime.now(UTC)
            started = time.perf_counter()
            for start in range(0, count, BATCH):
                broker.publisher.publish_json(hotline, "referral", [
                    referral(n, t) for n in range(start, min(count, start + BATCH))])
            published = time.perf_counter() - started
            feed = broker.referrals
            started = time.process_time()
            feed.catch_up()
            rebuild = time.process_time() - started
            timers = next(w for w in broker.workers.all if isinstance(w, ReferralTimers))
            started = time.process_time()
            for _ in range(ticks):
                timers.tick()
            idle = (time.process_time() - started) / ticks * 1e6
            store = feed.ledger.store
            print(f"\nwired referral worker: {count:,} open referrals published through the "
                  f"publisher ({count / published:,.0f}/s), embedded log")
            print(f"  ledger built from the log   {rebuild:8.2f} s CPU "
                  f"({count / max(rebuild, 1e-9):,.0f} referrals/s; "
                  f"{store.timer_count():,} timers)")  # type: ignore[attr-defined]
            print(f"  idle tick (catch-up + index) {idle:7.0f} us CPU")
            print(f"  peak RSS                    "
                  f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:8.1f} MiB")
        finally:
            broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", nargs="?", choices=["latency", "worker", "both"],
                        default="both")
    parser.add_argument("--rate", type=float, default=50.0, help="statuses per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--open", type=int, default=100_000, help="open referrals")
    parser.add_argument("--ticks", type=int, default=200)
    args = parser.parse_args()
    print("referral return path and worker (figures are noisy on a shared machine)")
    if args.part in ("latency", "both"):
        latency(args.rate, args.seconds)
    if args.part in ("worker", "both"):
        worker(args.open, args.ticks)


if __name__ == "__main__":
    main()
