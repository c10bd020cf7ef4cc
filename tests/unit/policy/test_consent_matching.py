"""Consent matching over the demo bundle, one worked case per row: discloser, recipient
or class, purpose, categories, period, revocation, and who recorded the consent.

docs/policy.md carries the same table; keep the two in step. Each row is a consent (and
the agency that recorded it), a route of the demo bundle, and the fate of one field that
needs consent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from policy_cases import AT, DEMO, engine_for, example, grant, ms, revoke

from policy import ConsentView

ENGINE = engine_for(DEMO)
# (subscription, source, event type, a field that needs consent)
BIRTHS = ("hv-births", "county-general", "birth", "child.birth_weight_grams")
PART2 = ("hv-sud-enrollments", "recovery-clinic", "enrollment", "participant.first_name")
FERPA = ("school-ei-transitions", "birth-to-three", "enrollment", "participant.first_name")


@dataclass(frozen=True)
class Row:
    name: str
    route: tuple[str, str, str, str]
    consent: dict[str, Any]
    recorded_by: str
    expect: str
    revoked_at: str | None = None


ROWS = [
    Row("hospital records the mother's consent naming hv-nfp", BIRTHS, grant(),
        "county-general", "released"),
    Row("recipient by class: kind:home_visiting", BIRTHS,
        grant(recipients=["kind:home_visiting"]), "county-general", "released"),
    Row("another recipient named", BIRTHS, grant(recipients=["medicaid"]), "county-general",
        "withheld"),
    Row("another purpose", BIRTHS, grant(purposes=["program_evaluation"]), "county-general",
        "withheld"),
    Row("categories that leave out health", BIRTHS, grant(categories=["benefits"]),
        "county-general", "withheld"),
    Row("not yet effective when the birth was ingested", BIRTHS,
        grant(effective="2026-12-01"), "county-general", "withheld"),
    Row("expired before the birth was ingested", BIRTHS, grant(expires="2026-11-01"),
        "county-general", "withheld"),
    Row("revoked before the birth was ingested", BIRTHS, grant(), "county-general",
        "withheld", revoked_at="2026-11-07T14:19:59"),
    Row("revoked after the birth was ingested", BIRTHS, grant(), "county-general",
        "released", revoked_at="2026-11-07T14:20:01"),
    Row("recipient records an authorization naming the hospital, which relies on it",
        BIRTHS, grant(disclosers=["county-general"]), "hv-nfp", "released"),
    Row("discloser by class: kind:hospital", BIRTHS, grant(disclosers=["kind:hospital"]),
        "hv-nfp", "released"),
    Row("recorded by an agency the hospital does not rely on", BIRTHS,
        grant(disclosers=["county-general"]), "recovery-clinic", "withheld"),
    Row("recipient's own consent, no discloser named: it names the recipient", BIRTHS,
        grant(), "hv-nfp", "withheld"),
    Row("another discloser named", BIRTHS, grant(disclosers=["medicaid"]), "county-general",
        "withheld"),
    Row("any holder: not enough under HIPAA", BIRTHS, grant(disclosers=["*"]),
        "county-general", "withheld"),
    Row("Part 2 program records the patient's consent naming hv-nfp", PART2, grant(),
        "recovery-clinic", "released"),
    Row("Part 2 (2024): recipient by class", PART2, grant(recipients=["kind:home_visiting"]),
        "recovery-clinic", "released"),
    Row("Part 2: the recipient self-grants, naming the program as discloser", PART2,
        grant(disclosers=["recovery-clinic"]), "hv-nfp", "withheld"),
    Row("FERPA: parent's consent naming any holder and the district's class", FERPA,
        grant(recipients=["kind:school"], purposes=["education_transition"],
              disclosers=["*"]), "birth-to-three", "released"),
    Row("FERPA: any holder, recorded by someone the program does not rely on", FERPA,
        grant(recipients=["kind:school"], purposes=["education_transition"],
              disclosers=["*"]), "metro-schools", "withheld"),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_consent_matching(row: Row) -> None:
    subscription, source, event_type, path = row.route
    view = ConsentView()
    view.apply(row.consent, ms("2026-01-01"), row.recorded_by)
    if row.revoked_at is not None:
        view.apply(revoke("C-1"), ms(row.revoked_at), row.recorded_by)
    record = example(event_type)
    record["subject_id"] = row.consent["subject_id"]
    decision = ENGINE.decide(event_type, 1, record, source, subscription, view, AT)
    assert decision.field(path).status == row.expect, decision.field(path).reason
    if row.expect == "released":
        assert f"{row.recorded_by}/C-1" in decision.consent_ids
