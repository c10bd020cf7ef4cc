"""The plan contract of every audit backend: a decision handed over compact with its
plan (`DecisionDetail`, as the router does) is stored with the plan written once per
chain, before the first decision naming it, and every read gives the full decision."""

from __future__ import annotations

import hashlib
from collections import Counter

from broker.audit import AuditFilter
from broker.audit.plans import PLAN_KIND, DecisionDetail
from broker.audit.records import canonical_json
from tests.contract.audit_backends import (  # noqa: F401  (audit_backend fixture)
    BIRTH_DECISION,
    PSEUDONYMS,
    audit_backend_fixture,
    decision,
)
from tests.kafka_broker import kafka_broker  # noqa: F401  (session fixture)

PLANS = [
    {**{k: v for k, v in BIRTH_DECISION.items() if k != "consent_ids"}, "purpose": purpose}
    for purpose in ("care_coordination", "evaluation")
]


def compact(n: int) -> tuple[DecisionDetail, dict[str, object]]:
    """Decision n (of plan n % 2): the compact detail handed over, and the full one."""
    plan_text = canonical_json(PLANS[n % 2])
    digest = hashlib.sha256(plan_text.encode()).hexdigest()
    own = {"consent_ids": [f"cgh/C-{n}"], "decision_id": f"{n:032x}",
           "decision_time_ms": n, "event_id": f"ev-{n}"}
    text = canonical_json({**own, "plan": digest})
    return DecisionDetail(text, digest, plan_text), {**PLANS[n % 2], **own}


def test_plans_are_written_once_per_chain_before_their_decisions(audit_backend):
    writer, other = audit_backend.open(), audit_backend.open()
    writer.append([decision(n, detail=compact(n)[0]) for n in range(6)])
    writer.append([decision(n, detail=compact(n)[0]) for n in range(6, 10)])
    other.append([decision(n, detail=compact(n)[0]) for n in range(10, 12)])
    seen: dict[str, set[str]] = {}
    held: Counter[tuple[str, str]] = Counter()
    for record in audit_backend.open().iter_records():
        chain = getattr(record, "chain", "")
        if record.kind == PLAN_KIND:
            digest = hashlib.sha256(canonical_json(dict(record.detail)).encode()).hexdigest()
            seen.setdefault(chain, set()).add(digest)
            held[(chain, digest)] += 1
        else:
            assert compact(int(record.event_id[3:]))[0].plan_digest in seen.get(chain, set())
    assert set(held.values()) == {1}
    assert len(held) in (2, 4)  # one chain (embedded) or one per writer (Kafka)


def test_every_read_gives_the_full_decision(audit_backend):
    audit_backend.open().append([decision(n, detail=compact(n)[0]) for n in range(8)])
    reader = audit_backend.open()
    decisions = AuditFilter(kind="decision")
    for record in reader.iter_records(decisions):
        assert dict(record.detail) == compact(int(record.event_id[3:]))[1]
    page = reader.page(decisions, newest_first=True, limit=3)
    assert [r.to_dict()["detail"] for r in page.records] == [
        compact(n)[1] for n in (7, 6, 5)]
    found = reader.disclosures(AuditFilter(subject=PSEUDONYMS.pseudonym("MPI-0048213")))
    assert [d.purpose for d in found] == ["care_coordination", "evaluation"] * 4
    assert found[3].consent_ids == ("cgh/C-3",)
    assert found[0].released == tuple(BIRTH_DECISION["released"])
