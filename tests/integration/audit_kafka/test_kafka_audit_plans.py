"""Decision plans on Kafka: each chain holds the plans its decisions name, verify proves
them (a missing, foreign or altered plan is named), and the local index finds them."""

from __future__ import annotations

import hashlib
import sqlite3

from broker.audit.kafka_records import AUDIT_TOPIC
from broker.audit.kafka_verify import verify_kafka
from broker.audit.plans import PLAN_KIND, DecisionDetail
from broker.audit.records import CanonicalDetail, canonical_json
from broker.log.port import LogRecord
from tests.integration.audit_kafka.conftest import (
    BIRTH_DECISION,
    copy_audit,
    decision,
    read_topic,
)

PLAN_TEXT = canonical_json({k: v for k, v in BIRTH_DECISION.items() if k != "consent_ids"})
DIGEST = hashlib.sha256(PLAN_TEXT.encode()).hexdigest()


def compact(n: int) -> DecisionDetail:
    own = {"consent_ids": [], "decision_id": f"{n:032x}", "decision_time_ms": n,
           "event_id": f"ev-{n}", "plan": DIGEST}
    return DecisionDetail(canonical_json(own), DIGEST, PLAN_TEXT)


def test_each_chain_holds_its_plans_and_verifies_with_its_index(space):
    first, second = space.store("router-a", index="a.db"), space.store("router-b")
    first.append([decision(n, detail=compact(n)) for n in range(3)])
    second.append([decision(n, detail=compact(n)) for n in range(3, 5)])
    first.append([decision(n, detail=compact(n)) for n in range(5, 7)])
    kinds = [r.kind for r in first.iter_records()]
    assert kinds == [PLAN_KIND, "decision", "decision", "decision", PLAN_KIND, "decision",
                     "decision", "decision", "decision"]
    assert dict(next(first.iter_records(after=1)).detail)["fields"] == BIRTH_DECISION["fields"]
    report = verify_kafka(space.log(), index=space.tmp_path / "a.db")
    assert report.ok, report.problem


def test_a_decision_whose_plan_is_only_in_another_chain_is_named(space):
    first, second = space.store("router-a"), space.store("router-b")
    first.append([decision(0, detail=compact(0))])
    # A writer that did not put the plan into its own chain.
    second.append([decision(1, detail=CanonicalDetail(compact(1).text))])
    report = verify_kafka(space.log())
    assert not report.ok
    assert report.problem == (f"chain {second.chain} record 1: its decision plan "
                              f"({DIGEST[:16]}…) is not a plan record earlier in the chain "
                              "(removed, or altered)")
    assert (report.first_bad_chain, report.first_bad_seq) == (second.chain, 1)


def test_an_altered_plan_record_is_named(space):
    store = space.store("router-a")
    store.append([decision(n, detail=compact(n)) for n in range(3)])

    def alter(records: list[LogRecord]) -> list[LogRecord]:
        plan = records[0]
        value = plan.value.replace(b"mother.field_1", b"mother.field_X")
        return [LogRecord(plan.topic, plan.partition, plan.offset, plan.key, value,
                          plan.headers, plan.timestamp_ms), *records[1:]]

    report = verify_kafka(copy_audit(space, space.log(), records=alter))
    assert report.problem == f"chain {store.chain} record 1: hash mismatch (content changed)"


def test_an_edited_plan_index_is_named(space):
    store = space.store("router-a", index="a.db")
    store.append([decision(n, detail=compact(n)) for n in range(3)])
    assert len(read_topic(space.log(), AUDIT_TOPIC)) == 4
    assert len(list(store.iter_records())) == 4  # indexed
    store.close()
    conn = sqlite3.connect(space.tmp_path / "a.db", isolation_level=None)
    conn.execute("UPDATE audit_plans SET seq = 2")
    conn.close()
    report = verify_kafka(space.log(), index=space.tmp_path / "a.db")
    assert not report.ok
    assert "plan index (audit_plans)" in str(report.problem)
