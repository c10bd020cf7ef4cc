"""Per-key rate limits: token buckets, and a running broker answering 429 with
`Retry-After` to a key that spent its burst while other keys carry on."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from broker.api.rate_limit import Limit, TokenBuckets
from tests.e2e.harness import BrokerProcess, demo_keys

KEYS = demo_keys()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_admits_its_burst_then_refills_at_its_rate():
    clock = FakeClock()
    buckets = TokenBuckets(clock)
    limit = Limit(per_second=2, burst=3)
    assert [buckets.take("k", limit) for _ in range(3)] == [0, 0, 0]
    assert buckets.take("k", limit) == pytest.approx(0.5)
    clock.now += 0.5
    assert buckets.take("k", limit) == 0
    assert buckets.take("other", limit) == 0        # buckets are per name
    clock.now += 60                                 # never more than the burst
    assert [buckets.take("k", limit) for _ in range(4)][-1] > 0


def test_forgotten_buckets_come_back_full():
    clock = FakeClock()
    buckets = TokenBuckets(clock, max_buckets=2)
    limit = Limit(per_second=1, burst=1)
    assert buckets.take("a", limit) == 0 and buckets.take("a", limit) > 0
    buckets.take("b", limit)
    buckets.take("c", limit)                        # pushes "a" out
    assert buckets.take("a", limit) == 0


@pytest.fixture
def limited(tmp_path) -> Iterator[BrokerProcess]:
    broker = BrokerProcess(data_dir=tmp_path / "data", env={
        "HANDOFF_API__RATE_LIMIT_PER_SECOND": "0.2",
        "HANDOFF_API__RATE_LIMIT_BURST": "3",
        "HANDOFF_API__RATE_LIMIT_PER_ROLE": json.dumps(
            {"auditor": {"per_second": 0.2, "burst": 6}}),
    }).start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.mark.slow
def test_a_key_over_its_limit_gets_429_and_others_carry_on(limited):
    def get(who: str | None, path: str = "/v1/registry/subjects") -> httpx.Response:
        headers = {"Authorization": f"Bearer {KEYS[who]}"} if who else {}
        return httpx.get(f"{limited.url}{path}", headers=headers)

    assert [get("hv-nfp").status_code for _ in range(3)] == [200, 200, 200]
    refused = get("hv-nfp")
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "/problems/rate-limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 5
    assert get("medicaid").status_code == 200       # another key has its own bucket
    # The auditor role's override allows a burst of 6.
    assert [get("auditor").status_code for _ in range(7)] == [200] * 6 + [429]
    # Calls without a valid key share a bucket per client address: refusals stop being
    # written to the audit log once it is spent.
    assert [get(None).status_code for _ in range(4)] == [401, 401, 401, 429]
    assert all(get(None, "/healthz").status_code == 200 for _ in range(5))
    metrics = get(None, "/metrics").text
    assert 'status="429"' in metrics
