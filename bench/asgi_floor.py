"""The floor for Handoff's publish path: a minimal ASGI app's publish ceiling.

A bare ASGI callable under uvicorn (the server `handoff serve` uses, with the same
defaults: uvloop and httptools where installed, no access log) that does what any publish
route must and nothing more: refuse a request without a bearer token or over the size cap,
read the JSON body, parse it, answer 202 with the event id. It runs in a process of its
own and is driven by the load generator the latency benchmark uses (bench/loadgen.py),
closed loop on keep-alive connections, as fast as it answers; the server's CPU is read
from /proc before and after.

    python bench/asgi_floor.py                 # 10 s, 32 connections
    python bench/asgi_floor.py --seconds 5 --connections 64
    python bench/asgi_floor.py --handoff       # also Handoff's own publish path

Prints requests/s (the ceiling) and CPU µs per request (the server's user + system CPU
over the requests it answered).

With `--handoff` it then measures Handoff's publish path alone, the same way: a real
`handoff serve --role api` on the embedded log (the demo bundle, rate limit off, no
router, so routing does not share the CPU) driven closed loop with births, one per
request, each under a new event id (so every request is appended, never answered as a
duplicate), and prints its requests/s and CPU µs per request beside the floor's.
`--handoff-only` skips the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.calibration import calibration_ms  # noqa: E402
from bench.loadgen import ConnectionPool, encode_post  # noqa: E402
from bench.proc_cpu import tree_cpu_seconds  # noqa: E402

MAX_BODY = 1 << 20
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """POST /v1/events/<type>: bearer token present, body capped, JSON parsed, 202."""
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
        return
    headers = dict(scope["headers"])
    if not headers.get(b"authorization", b"").startswith(b"Bearer "):
        await _answer(send, 401, b'{"title":"unauthorized"}')
        return
    if int(headers.get(b"content-length", b"0")) > MAX_BODY:
        await _answer(send, 413, b'{"title":"too large"}')
        return
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    try:
        event = json.loads(b"".join(chunks))
    except ValueError:
        await _answer(send, 400, b'{"title":"not JSON"}')
        return
    await _answer(send, 202, json.dumps({"event_id": event.get("event_id")}).encode())


@dataclass(frozen=True)
class AsgiFloor:
    requests: int
    refused: int
    seconds: float
    cpu_seconds: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_seconds / max(1, self.requests) * 1e6

    def line(self) -> str:
        return (f"floor (a): minimal ASGI app under uvicorn, one event per request, closed "
                f"loop: {self.per_second:,.0f} requests/s, {self.cpu_us_per_request:.0f} µs "
                f"CPU per request ({self.requests} answered in {self.seconds:.1f} s, "
                f"{self.refused} refused)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the minimal ASGI app exited before it listened")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the minimal ASGI app did not listen on port {port}")


async def _drive(port: int, raw: bytes | Iterator[bytes], seconds: float,
                 connections: int) -> tuple[int, int, float]:
    pool = ConnectionPool("127.0.0.1", port, connections)
    await pool.open()
    answered = refused = 0
    stop = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal answered, refused
        while time.monotonic() < stop:
            status, _ = await pool.request(raw if isinstance(raw, bytes) else next(raw))
            answered += 1
            refused += status != 202

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.monotonic() - started
    pool.close()
    return answered, refused, elapsed


def run(body: dict[str, Any], seconds: float = 10, connections: int = 32,
        token: str = "floor-token") -> AsgiFloor:
    """Start the app, drive it for `seconds` (after a 1 s warm-up), stop it."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.asgi_floor:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--no-access-log"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(port, proc)
        raw = encode_post("/v1/events/birth", "127.0.0.1", {"Authorization": f"Bearer {token}"},
                          body)
        asyncio.run(_drive(port, raw, 1.0, connections))   # warm-up, not counted
        before = tree_cpu_seconds([proc.pid])
        answered, refused, elapsed = asyncio.run(_drive(port, raw, seconds, connections))
        cpu = tree_cpu_seconds([proc.pid]) - before
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return AsgiFloor(requests=answered, refused=refused, seconds=elapsed, cpu_seconds=cpu)


def run_handoff(seconds: float = 10, connections: int = 32) -> AsgiFloor:
    """Handoff's publish path alone: `handoff serve --role api` on the embedded log,
    driven like the floor, with births under new event ids."""
    import tempfile
    import uuid

    from bench.e2e_load import bench_policy, new_birth
    from tests.e2e.harness import BrokerProcess, demo_keys

    with tempfile.TemporaryDirectory(prefix="handoff-publish-") as tmp:
        root = Path(tmp)
        broker = BrokerProcess(data_dir=root / "data", policy_dir=bench_policy(root),
                               role="api", env={"HANDOFF_API__RATE_LIMIT_PER_SECOND": "0"})
        broker.start(120)
        assert broker.proc is not None
        try:
            template = new_birth()
            placeholder = template["event_id"]
            raw = encode_post("/v1/events/birth", "127.0.0.1",
                              {"Authorization": f"Bearer {demo_keys()['county-general']}"},
                              template)
            # Same length as the placeholder: the Content-Length stays right.
            fresh = (raw.replace(placeholder.encode(), str(uuid.uuid4()).encode())
                     for _ in iter(int, 1))
            asyncio.run(_drive(broker.port, fresh, 1.0, connections))   # warm-up
            before = tree_cpu_seconds([broker.proc.pid])
            answered, refused, elapsed = asyncio.run(
                _drive(broker.port, fresh, seconds, connections))
            cpu = tree_cpu_seconds([broker.proc.pid]) - before
        finally:
            broker.stop()
    return AsgiFloor(requests=answered, refused=refused, seconds=elapsed, cpu_seconds=cpu)


def example_birth() -> dict[str, Any]:
    example: dict[str, Any] = json.loads(
        (REPO / "schemas" / "events" / "birth.example.json").read_text())
    return example


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--handoff", action="store_true",
                        help="also measure Handoff's publish path alone (handoff serve "
                        "--role api, embedded log)")
    parser.add_argument("--handoff-only", action="store_true",
                        help="measure Handoff's publish path alone, without the floor")
    args = parser.parse_args()
    print(f"calibration loop {calibration_ms():.0f} ms")
    if not args.handoff_only:
        print(run(example_birth(), args.seconds, args.connections).line())
    if args.handoff or args.handoff_only:
        result = run_handoff(args.seconds, args.connections)
        print(f"Handoff publish alone (handoff serve --role api, embedded, births one per "
              f"request, closed loop): {result.per_second:,.0f} requests/s, "
              f"{result.cpu_us_per_request:.0f} µs CPU per request ({result.requests} "
              f"answered in {result.seconds:.1f} s, {result.refused} not 202)")
