"""A split deployment on Kafka: one process serving agencies and two router processes
in one consumer group, against a Tansu broker on loopback."""

from __future__ import annotations

import subprocess
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from broker.log.kafka import KafkaEventLog
from broker.log.port import TopicSpec
from tests.e2e.harness import REPO, BrokerProcess, Client
from tests.integration.roles.conftest import (
    MOTHER_PHONE,
    Installation,
    audited_decision_ids,
    birth_of,
    consent_of,
    decisions_made,
    mother,
    pull_until,
)
from tests.waiting import eventually

HEALTH_FIELDS = ("birth_weight_grams", "gestational_age_weeks", "nicu_admission",
                 "substance_exposure")


def test_a_topic_of_the_wrong_shape_stops_serve_with_one_line_and_exit_code_2(
        on_kafka: Installation):
    backend = on_kafka.template.backend
    assert backend.bootstrap_servers is not None
    log = KafkaEventLog(backend.bootstrap_servers, topic_prefix=backend.topic_prefix)
    try:
        log.ensure_topic(TopicSpec("events.birth", partitions=2))
    finally:
        log.close()
    process = on_kafka.template.sibling("all")
    result = subprocess.run(process.command(), env=process.environment(), cwd=REPO,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("handoff:")]
    assert f"'{backend.topic_prefix}events.birth' exists" in line
    assert "2 partition(s) but 4 are required" in line


def test_serve_creates_every_topic_with_its_partitions_and_cleanup_policy(
        on_kafka: Installation):
    on_kafka.start("all")
    backend = on_kafka.template.backend
    admin = KafkaAdminClient(bootstrap_servers=backend.bootstrap_servers)
    try:
        def shape(name: str) -> tuple[int, str]:
            topic = backend.topic_prefix + name
            (described,) = admin.describe_topics([topic])
            configs: Any = admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
            policy = configs["topic"][topic]["cleanup.policy"]["value"]
            return len(described["partitions"]), policy

        assert shape("events.birth") == (4, "delete")
        assert shape("events.consent") == (4, "delete")
        assert shape("deliver.hv-births") == (1, "delete")
        assert shape("_schemas") == (1, "compact")
        assert shape("_policy") == (1, "delete")
        assert shape("_accepted") == (4, "compact")
        assert shape("_audit") == (1, "delete")
        assert shape("quarantine.events") == (1, "delete")
    finally:
        admin.close()


def start_two_routers(on_kafka: Installation, keys: dict[str, str]
                      ) -> tuple[BrokerProcess, BrokerProcess, BrokerProcess]:
    """A front process (api and delivery) and two routers that have both routed events,
    so the consumer group has split the ingress partitions between them."""
    front, *routers = on_kafka.start_together("api,delivery", "router", "router")
    hospital = Client(front.url, keys["county-general"])
    waves = iter(range(10**6))

    def both_routed() -> bool:
        if all(decisions_made(r) > 0 for r in routers):
            return True
        wave = next(waves)
        for n in range(16):
            hospital.publish_ok("birth", birth_of(mother(900_000 + wave * 16 + n)))
        return False

    eventually(both_routed, timeout=60, interval=1,
               message="the two routers never both routed events")
    return front, *routers


@pytest.mark.slow
def test_kill_9_of_one_of_two_routers_loses_nothing_and_keeps_order_per_subject(
        on_kafka: Installation, keys):
    front, doomed, survivor = start_two_routers(on_kafka, keys)
    hospital = Client(front.url, keys["county-general"])
    subjects, per_subject = 24, 12
    # Each mother's births in order, mothers interleaved, as a hospital sends them.
    order: dict[str, tuple[str, int]] = {}
    events = []
    for k in range(per_subject):
        for n in range(subjects):
            event = birth_of(mother(n))
            order[event["event_id"]] = (event["subject_id"], k)
            events.append(event)
    accepted: list[str] = []

    def publish() -> None:
        for event in events:
            accepted.append(hospital.publish_ok("birth", event)["event_id"])

    publisher = threading.Thread(target=publish)
    publisher.start()
    eventually(lambda: len(accepted) >= len(events) // 3 or not publisher.is_alive(),
               timeout=120, interval=0.01, message="a third of the events were not accepted")
    routed_before_kill = decisions_made(doomed)
    doomed.kill()
    publisher.join(120)
    assert len(accepted) == len(events)

    evaluation = Client(front.url, keys["state-evaluation"])
    delivered = [d for d in pull_until(evaluation, "eval-births", set(accepted))
                 if d["event_id"] in order]
    assert {d["event_id"] for d in delivered} == set(accepted), "an accepted event was lost"
    assert routed_before_kill > 0

    # Order per subject: a mother's births first arrive in the order they were sent; a
    # replay after the kill may repeat some, never skip ahead.
    sent_next: dict[str, int] = {}
    for d in delivered:
        subject, k = order[d["event_id"]]
        assert k <= sent_next.get(subject, 0), f"{subject}: birth {k} arrived too early"
        sent_next[subject] = max(sent_next.get(subject, 0), k + 1)
    assert all(sent_next[mother(n)] == per_subject for n in range(subjects))

    # Every delivery was audited; duplicates carry the same decision id.
    audited = audited_decision_ids(Client(front.url, keys["auditor"]), "eval-births")
    assert {d["decision_id"] for d in delivered} <= audited
    by_event: dict[str, set[str]] = {}
    for d in delivered:
        by_event.setdefault(d["event_id"], set()).add(d["decision_id"])
    assert all(len(ids) == 1 for ids in by_event.values())
    assert decisions_made(survivor) > 0


@pytest.mark.slow
def test_consent_changes_acknowledged_before_an_event_hold_in_every_router(
        on_kafka: Installation, keys):
    front, *routers = start_two_routers(on_kafka, keys)
    hospital = Client(front.url, keys["county-general"])
    subjects = [mother(100 + n) for n in range(12)]   # spread over every partition
    before_routers = [decisions_made(r) for r in routers]

    with_consent, after_revocation = {}, {}
    for subject in subjects:
        hospital.publish_ok("consent", consent_of(subject, "GRANT"))
        with_consent[subject] = hospital.publish_ok("birth", birth_of(subject))["event_id"]
        hospital.publish_ok("consent", consent_of(subject, "REVOKE"))
        # Sent only once the revocation was acknowledged: no router may share health facts.
        after_revocation[subject] = hospital.publish_ok("birth", birth_of(subject))["event_id"]
    # A grant backdated on its form does not reach a birth the broker already had.
    late = mother(300)
    before_grant = hospital.publish_ok("birth", birth_of(late))["event_id"]
    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    hospital.publish_ok("consent", consent_of(late, "GRANT", effective_at=an_hour_ago))

    hv = Client(front.url, keys["hv-nfp"])
    wanted = set(with_consent.values()) | set(after_revocation.values()) | {before_grant}
    births = {d["event_id"]: d for d in pull_until(hv, "hv-births", wanted)
              if d["event_id"] in wanted}
    assert set(births) == wanted
    for event_id in with_consent.values():
        child = births[event_id]["data"]["child"]
        assert all(child[f] is not None for f in HEALTH_FIELDS)
    for event_id in [*after_revocation.values(), before_grant]:
        delivered = births[event_id]
        assert all(delivered["data"]["child"].get(f) is None for f in HEALTH_FIELDS)
        assert {f"child.{f}" for f in HEALTH_FIELDS} <= set(delivered["withheld"])
        assert delivered["data"]["mother"]["phone"] == MOTHER_PHONE   # not consent-gated
    # Both routers took part in deciding these subjects' events.
    assert all(decisions_made(r) > before for r, before in zip(routers, before_routers,
                                                                strict=True))
