"""CPU per request of the broker's own ASGI middleware, apart from everything else.

The chain `handoff serve` puts around every request (request id, metrics, API key,
rate limit, body guard), in its order, around an app that reads the body and answers
202: a publish of one birth as the middleware sees it, with the demo's publisher key.
Run in this process, without a server or a socket, so the figure is the middleware's
alone and steadier than an end-to-end one (still noisy on a shared machine: it prints
the best of several rounds).

    python bench/api_middleware.py                  # rate limit off, as bench/asgi_floor.py
    python bench/api_middleware.py --rate-limit     # a token bucket taken from per request
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from broker.api.auth import BearerKeyMiddleware  # noqa: E402
from broker.api.body_guard import BodyCaps, BodyGuard  # noqa: E402
from broker.api.metrics_middleware import RequestMetricsMiddleware  # noqa: E402
from broker.api.rate_limit import Limit, RateLimitMiddleware  # noqa: E402
from broker.api.request_ids import RequestIdMiddleware  # noqa: E402
from broker.auth.watch import FileKeyRing  # noqa: E402
from broker.config import ApiSettings  # noqa: E402
from broker.metrics import Metrics  # noqa: E402
from tests.e2e.harness import DEMO, demo_keys  # noqa: E402

Message = MutableMapping[str, Any]
BODY: Message = {"type": "http.request", "body": b"x" * 700, "more_body": False}


async def accept(scope: Message, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 202,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b"{}"})


async def receive() -> Message:
    return BODY


async def send(message: Message) -> None:
    return None


def chain(rate_limit: bool) -> Any:
    """The broker's middleware in `broker.api.app.create_app`'s order, outermost last."""
    api = ApiSettings()
    # On, a limit no loop here reaches: every request takes a token, none is refused.
    limit = Limit(1e9, 10**9) if rate_limit else Limit(0, 1)
    app: Any = BodyGuard(accept, BodyCaps.of(api))
    app = RateLimitMiddleware(app, default=limit, per_role={})
    app = BearerKeyMiddleware(app, keyring=FileKeyRing(DEMO / "keys.yaml"))
    app = RequestMetricsMiddleware(app, metrics=Metrics())
    return RequestIdMiddleware(app)


async def drive(app: Any, headers: list[tuple[bytes, bytes]], requests: int) -> None:
    for _ in range(requests):
        scope = {"type": "http", "method": "POST", "path": "/v1/events/birth",
                 "root_path": "", "headers": list(headers), "client": ("127.0.0.1", 5000)}
        await app(scope, receive, send)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate-limit", action="store_true",
                        help="a rate limit on, never reached (bench/asgi_floor.py runs "
                        "without)")
    args = parser.parse_args()
    app = chain(args.rate_limit)
    key = demo_keys()["county-general"]
    headers = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
               (b"content-length", b"700"), (b"authorization", f"Bearer {key}".encode())]
    asyncio.run(drive(app, headers, 2_000))   # warm-up
    best = float("inf")
    for _ in range(args.rounds):
        started = time.process_time()
        asyncio.run(drive(app, headers, args.requests))
        best = min(best, (time.process_time() - started) / args.requests)
    print(f"broker middleware chain (rate limit {'on' if args.rate_limit else 'off'}): "
          f"{best * 1e6:.2f} µs CPU per request (best of {args.rounds} rounds of "
          f"{args.requests:,})")


if __name__ == "__main__":
    main()
