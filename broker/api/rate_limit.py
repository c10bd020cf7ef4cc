"""Per-key rate limits: a token bucket per API key, as pure ASGI middleware.

Runs inside the authentication middleware, so it knows the caller: each key has its own
bucket, sized by its roles (`api.rate_limit_per_role`, the most generous of the key's
roles, else `api.rate_limit_per_second` and `api.rate_limit_burst`). Calls without a
valid key share a bucket per client address, which also bounds how many refusals an
outsider can make the broker write to its audit log. An empty bucket answers
`429 Too Many Requests` as problem+json with `Retry-After`. Health probes and the
Prometheus scrape are exempt.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from broker.api.auth import PRINCIPAL
from broker.api.problems import problem
from broker.auth import Principal
from broker.config import ApiSettings

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
MAX_BUCKETS = 10_000


@dataclass(frozen=True, slots=True)
class Limit:
    per_second: float
    burst: int


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, now: float) -> None:
        self.tokens = tokens
        self.updated = now


class TokenBuckets:
    """Token buckets by name, the least recently used forgotten past `MAX_BUCKETS`
    (a forgotten bucket comes back full, which errs towards admitting)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 max_buckets: int = MAX_BUCKETS) -> None:
        self._clock = clock
        self._max = max_buckets
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, name: str, limit: Limit) -> float:
        """Take one token. Returns 0 when admitted, else seconds until a token is due."""
        now = self._clock()
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = _Bucket(float(limit.burst), now)
            if len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(name)
            bucket.tokens = min(float(limit.burst),
                                bucket.tokens + (now - bucket.updated) * limit.per_second)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / limit.per_second


class RateLimitMiddleware:
    """Answer 429 to a caller whose bucket is empty; pass everything else on."""

    def __init__(self, app: ASGIApp, default: Limit,
                 per_role: Mapping[str, Limit] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.default = default
        self.per_role = dict(per_role or {})
        self.buckets = TokenBuckets(clock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        principal: Principal | None = scope.get("state", {}).get(PRINCIPAL)
        limit = self._limit_for(principal)
        if limit.per_second <= 0:
            await self.app(scope, receive, send)
            return
        if principal is not None:
            name = "key:" + principal.key_id
        else:
            client = scope.get("client")
            name = "addr:" + (str(client[0]) if client else "unknown")
        wait = self.buckets.take(name, limit)
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(wait))
        response = problem(
            429, "rate-limited", "Too many requests",
            f"this caller may make {limit.per_second:g} requests a second (bursts of "
            f"{limit.burst}); retry after {retry_after} s", retry_after=retry_after)
        await response(scope, receive, send)

    def _limit_for(self, principal: Principal | None) -> Limit:
        if principal is None or not self.per_role:
            return self.default
        overrides = [self.per_role[r.value] for r in principal.roles if r.value in self.per_role]
        if not overrides:
            return self.default
        if any(o.per_second <= 0 for o in overrides):
            return Limit(0, 1)
        return max(overrides, key=lambda o: (o.per_second, o.burst))


def limits(api: ApiSettings) -> dict[str, Any]:
    """The middleware's keyword arguments from the `api` settings."""
    return {
        "default": Limit(api.rate_limit_per_second, api.rate_limit_burst),
        "per_role": {role: Limit(o.per_second, o.burst)
                     for role, o in api.rate_limit_per_role.items()},
    }
