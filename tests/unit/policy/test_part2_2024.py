"""42 CFR Part 2 as amended in 2024, provision by provision, on a state's own SUD
discharge record (a string date, sud facts, the patient's name and county).

A Part 2 consent covering the record's SUD information covers the identifiers of the
same record (still under the agreement's field list and transforms); without it nothing
that could identify the patient leaves the program.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pytest
from policy_cases import CATALOG, KEY, agreement, bundle_with, grant, ms

from policy import ConsentView, PolicyEngine
from schemas.catalog import SchemaCatalog, build_event_schema

DISCHARGE_SCHEMA = {
    "type": "record", "name": "SudDischarge", "namespace": "org.example.state",
    "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "occurred_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "subject_id", "type": "string", "tags": ["identifier.direct"]},
        {"name": "patient", "type": {"type": "record", "name": "Patient", "fields": [
            {"name": "name", "type": "string", "tags": ["identifier.direct"]},
            {"name": "county", "type": "string", "tags": ["identifier.quasi"]}]}},
        {"name": "discharge_date", "type": "string", "format": "date", "tags": ["sud"]},
        {"name": "substance", "type": "string", "tags": ["sud"]},
        {"name": "outcome", "type": "string", "tags": ["sud"]},
        {"name": "diagnosis", "type": ["null", "string"], "default": None, "tags": ["health"]},
    ],
}
CATALOG_WITH_DISCHARGE = SchemaCatalog([
    *(CATALOG.get(t, v) for t in CATALOG.event_types() for v in CATALOG.versions(t)),
    build_event_schema("sud_discharge", DISCHARGE_SCHEMA),
])
SUBJECT = "MPI-0049902"
AT = ms("2026-11-07T14:20:00")
FIELDS = ["event_id", "subject_id", "patient.name", "patient.county",
          {"discharge_date": {"generalise": "month"}}, "substance", "outcome", "diagnosis"]
IDENTITY = ("subject_id", "patient.name", "patient.county")
FACTS = ("substance", "outcome", "discharge_date")


def discharge() -> dict[str, Any]:
    return {"event_id": "ev-1", "occurred_at": dt.datetime(2026, 11, 7, tzinfo=dt.UTC),
            "subject_id": SUBJECT, "patient": {"name": "Ana Reyes", "county": "Dane"},
            "discharge_date": "2026-11-05", "substance": "OPIOIDS",
            "outcome": "COMPLETED", "diagnosis": "F11.20"}


def decide(consents: list[tuple[dict[str, Any], str]], *, recipient: str = "hv-nfp",
           purpose: str = "care_coordination", fields: list[Any] = FIELDS,
           at: int = AT) -> Any:
    deal = agreement("hrc-out", "recovery-clinic", recipient, purpose, "sud_discharge",
                     fields)
    engine = PolicyEngine(bundle_with([deal]), CATALOG_WITH_DISCHARGE, pseudonym_key=KEY)
    view = ConsentView()
    for record, by in consents:
        view.apply({**record, "subject_id": SUBJECT}, ms("2026-01-01"), by)
    return engine.decide("sud_discharge", 1, discharge(), "recovery-clinic", "hrc-out", view,
                         at)


@dataclass(frozen=True)
class Case:
    name: str
    consents: list[tuple[dict[str, Any], str]]
    released: tuple[str, ...] = ()
    withheld: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)


CLINIC = "recovery-clinic"
SUD = grant(recipients=["hv-nfp"], categories=["sud"])
CASES = [
    Case("no consent: nothing that identifies the patient, no SUD fact", [],
         withheld=(*IDENTITY, *FACTS, "diagnosis")),
    Case("consent covering sud: the facts and who they are about", [(SUD, CLINIC)],
         released=(*IDENTITY, "substance", "outcome"), withheld=("diagnosis",)),
    Case("consent covering sud and health: the diagnosis too",
         [(grant(recipients=["hv-nfp"], categories=["sud", "health"]), CLINIC)],
         released=(*IDENTITY, "substance", "diagnosis")),
    Case("consent covering the identifiers but not the SUD information: nothing",
         [(grant(recipients=["hv-nfp"],
                 categories=["identifier.direct", "identifier.quasi", "health"]), CLINIC)],
         withheld=(*IDENTITY, *FACTS, "diagnosis")),
    Case("the agreement's field list still applies (minimum necessary)", [(SUD, CLINIC)],
         released=("subject_id", "substance"), withheld=("patient.name", "patient.county"),
         options={"fields": ["event_id", "subject_id", "substance"]}),
    Case("2.31(a)(4)(i): a class of recipients (kind:home_visiting)",
         [(grant(recipients=["kind:home_visiting"], categories=["sud"]), CLINIC)],
         released=(*IDENTITY, "substance")),
    Case("2.31(a)(4)(i): a class the recipient is not of",
         [(grant(recipients=["kind:school"], categories=["sud"]), CLINIC)],
         withheld=(*IDENTITY, "substance")),
    Case("2.31(a)(2): the program named by class as discloser (kind:sud_treatment)",
         [(grant(recipients=["hv-nfp"], categories=["sud"],
                 disclosers=["kind:sud_treatment"]), CLINIC)],
         released=(*IDENTITY, "substance")),
    Case("2.31(a)(2): any holder does not name the program",
         [(grant(recipients=["hv-nfp"], categories=["sud"], disclosers=["*"]), CLINIC)],
         withheld=(*IDENTITY, "substance")),
    Case("attack: the recipient self-grants a consent naming the program",
         [(grant(recipients=["hv-nfp"], categories=["*"], disclosers=[CLINIC]), "hv-nfp")],
         withheld=(*IDENTITY, *FACTS)),
    Case("2.31(a)(4)(i): one tpo consent covers treatment years later",
         [(grant(recipients=["kind:hospital"], purposes=["tpo"], categories=["sud"]),
           CLINIC)],
         released=(*IDENTITY, "substance"),
         options={"recipient": "county-general", "purpose": "treatment",
                  "at": ms("2031-06-01")}),
    Case("a tpo consent does not cover care coordination",
         [(grant(recipients=["hv-nfp"], purposes=["tpo"], categories=["sud"]), CLINIC)],
         withheld=(*IDENTITY, "substance")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_part2_consent(case: Case) -> None:
    decision = decide(case.consents, **case.options)
    for path in case.released:
        assert decision.field(path).status == "released", decision.field(path).reason
    for path in case.withheld:
        assert decision.field(path).status == "withheld", path
    if "patient.name" not in case.released:
        assert "Ana Reyes" not in str(decision.view)


def test_the_date_string_is_generalised_to_the_month_when_released() -> None:
    decision = decide([(SUD, CLINIC)])
    entry = decision.field("discharge_date")
    assert (entry.status, entry.transform) == ("transformed", "generalise:month")
    assert decision.view is not None and decision.view["discharge_date"] == "2026-11"


def test_a_tpo_consent_puts_the_provision_in_the_legal_basis() -> None:
    decision = decide(
        [(grant(recipients=["kind:hospital"], purposes=["tpo"], categories=["sud"]), CLINIC)],
        recipient="county-general", purpose="treatment")
    assert decision.outcome == "permit"
    assert any(b.startswith("42 CFR 2.31(a)(4)(i): a single consent may cover all future")
               for b in decision.legal_basis)


def test_the_2_32_notice_travels_with_every_disclosure_in_its_2024_wording() -> None:
    decision = decide([(SUD, CLINIC)])
    (notice,) = [o for o in decision.obligations if o.id == "cfr42.2-32-notice"]
    text = " ".join(notice.text.split())
    assert text.startswith(
        "This record which has been disclosed to you is protected by Federal "
        "confidentiality rules (42 CFR part 2). These rules prohibit you from using or "
        "disclosing this record, or testimony that describes the information contained in "
        "this record, in any civil, criminal, administrative, or legislative proceedings")
    assert ("(ii) You are a covered entity or business associate and have received the "
            "record for treatment, payment, or health care operations, or (iii) You have "
            "received the record from a covered entity or business associate as permitted "
            "by 45 CFR part 164, subparts A and E.") in text
    assert text.endswith("to further use or redisclose the record (see 42 CFR 2.31).")


def test_the_pack_cites_the_amended_sections_and_stays_an_editable_default() -> None:
    pack = bundle_with([]).rulepacks["cfr42_part2"]
    citations = {r.id: r.citation for r in pack.rules}
    assert citations["cfr42.written-consent"].startswith("42 CFR 2.31(a)(2)-(4)(i):")
    assert citations["cfr42.tpo-single-consent"].startswith("42 CFR 2.31(a)(4)(i):")
    assert citations["cfr42.redisclosure-notice"].startswith("42 CFR 2.32(a):")
    assert "not legal advice" in pack.notice
