"""Record linkage on Kafka has one writer. Two router processes started with linkage on:
the first to link claims the `_linkage` topic, the other steps down (leaves the consumer
group, reports not ready), and every accepted event is routed by the one that links."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.harness import BrokerProcess, Client, LogBackend
from tests.integration.roles.conftest import (
    Installation,
    audited_decision_ids,
    birth_of,
    mother,
    pull_until,
)
from tests.kafka_broker import kafka_broker  # noqa: F401
from tests.waiting import eventually

pytestmark = pytest.mark.slow


@pytest.fixture
def linked_on_kafka(tmp_path, kafka_broker) -> Iterator[Installation]:  # noqa: F811
    installation = Installation(tmp_path, LogBackend.kafka(kafka_broker.bootstrap_servers))
    yield installation
    installation.close()


def ready(process_url: str) -> bool:
    return httpx.get(f"{process_url}/readyz", timeout=5).status_code == 200


def how_routers_stand(routers: list[BrokerProcess]) -> str:
    """For a failure: which routers were ready, and how each one's log ends."""
    said = []
    for n, router in enumerate(routers):
        try:
            state = "ready" if ready(router.url) else "not ready"
        except httpx.HTTPError as exc:
            state = f"not answering ({type(exc).__name__})"
        said.append(f"router {n} {state}, its log ends: {router.logs()[-2000:]}")
    return "; ".join(said)


def test_one_router_links_and_the_other_steps_down_losing_nothing(
        linked_on_kafka: Installation, keys):
    front, *routers = linked_on_kafka.start_together("api,delivery", "router", "router")
    hospital = Client(front.url, keys["county-general"])
    accepted: list[str] = []

    def births_until_one_router_is_left() -> bool:
        """Publish 16 more births (new mothers, spread over every ingress partition) and
        say whether exactly one router is still ready. More than once when the first
        router to join the group linked every birth before the second was given
        partitions: the second steps down only once it has a decision of its own."""
        first = 700_000 + len(accepted)
        accepted.extend(hospital.publish_ok("birth", birth_of(mother(first + n)))["event_id"]
                        for n in range(16))
        return sum(ready(r.url) for r in routers) == 1

    eventually(births_until_one_router_is_left, timeout=60, interval=2,
               message=lambda: "not exactly one router kept routing; "
               + how_routers_stand(routers))
    (stepped_down,) = [r for r in routers if not ready(r.url)]
    assert "router stepped down" in stepped_down.logs()
    assert "run one router process" in stepped_down.logs()
    evaluation = Client(front.url, keys["state-evaluation"])
    delivered = {d["event_id"] for d in pull_until(evaluation, "eval-births", set(accepted))}
    assert set(accepted) <= delivered, "an accepted event was lost"
    audited = audited_decision_ids(Client(front.url, keys["auditor"]), "eval-births")
    assert len(audited) >= len(accepted)
    # The API process reads the linker's decisions from the topic: the records (one
    # name and date of birth, as the test's births have) are one person.
    steward = Client(front.url, keys["steward"])
    people = {steward.http.get(f"/v1/linkage/records/county-general/{mother(700_000 + n)}"
                               ).json()["person_id"] for n in range(len(accepted))}
    assert len(people) == 1
