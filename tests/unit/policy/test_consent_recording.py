"""Who may record a consent, who may revoke one, and whose recorded consents a discloser
relies on: one row per case, over the demo agencies (hv-nfp may record for
county-general; county-general relies on hv-nfp; nobody else records for anyone)."""

from __future__ import annotations

from typing import Any

import pytest
from policy_cases import DEMO, grant

from policy import Agency
from policy.consent import ConsentKey
from policy.consent_recording import (
    ConsentChangeCode,
    check_grant,
    check_revoke,
    discloser_tokens,
    relied_on_recorders,
)

AGENCIES = DEMO.agencies
SUBJECT = "MPI-0049902"


def with_authority(agency_id: str, **consents: list[str]) -> dict[str, Agency]:
    """The demo agencies with one agency's `consents` entry replaced."""
    changed = AGENCIES[agency_id].model_copy(update={
        "consents": AGENCIES[agency_id].consents.model_copy(
            update={k: tuple(v) for k, v in consents.items()})})
    return {**AGENCIES, agency_id: changed}


GRANT_CASES: list[tuple[str, str, dict[str, Any], dict[str, Agency], ConsentChangeCode,
                        tuple[str, ...]]] = [
    ("a program records a consent for its own data (no discloser named)",
     "recovery-clinic", grant(recipients=["hv-nfp"]), AGENCIES, ConsentChangeCode.GRANTED, ()),
    ("naming itself as discloser", "recovery-clinic",
     grant(disclosers=["recovery-clinic"]), AGENCIES, ConsentChangeCode.GRANTED, ()),
    ("a recipient records an authorization naming a discloser it may record for",
     "hv-nfp", grant(disclosers=["county-general"]), AGENCIES, ConsentChangeCode.GRANTED, ()),
    ("attack: a recipient self-grants a consent to unlock a Part 2 program's records",
     "hv-nfp", grant(recipients=["hv-nfp"], disclosers=["recovery-clinic"]), AGENCIES,
     ConsentChangeCode.DISCLOSER_NOT_PERMITTED, ("disclosers",)),
    ("attack: naming a class of disclosers beyond its authority", "hv-nfp",
     grant(disclosers=["kind:hospital"]), AGENCIES,
     ConsentChangeCode.DISCLOSER_NOT_PERMITTED, ("disclosers",)),
    ("attack: naming any holder", "county-general", grant(disclosers=["*"]), AGENCIES,
     ConsentChangeCode.DISCLOSER_NOT_PERMITTED, ("disclosers",)),
    ("records_for a kind covers every agency of that kind", "hv-nfp",
     grant(disclosers=["county-general", "kind:hospital"]),
     with_authority("hv-nfp", records_for=["kind:hospital"]), ConsentChangeCode.GRANTED, ()),
    ("records_for * covers any holder", "hv-nfp", grant(disclosers=["*"]),
     with_authority("hv-nfp", records_for=["*"]), ConsentChangeCode.GRANTED, ()),
    ("an agency that does not publish consents records none", "state-evaluation", grant(),
     AGENCIES, ConsentChangeCode.NOT_A_RECORDER, ()),
    ("an unknown agency records none", "nobody", grant(), AGENCIES,
     ConsentChangeCode.NOT_A_RECORDER, ()),
    ("a discloser that is no agency token is refused", "county-general",
     grant(disclosers=["County General Hospital"]), AGENCIES, ConsentChangeCode.INVALID,
     ("disclosers[0]",)),
    ("a recipient of an unknown kind is refused", "county-general",
     grant(recipients=["hv-nfp", "kind:home_visitng"]), AGENCIES, ConsentChangeCode.INVALID,
     ("recipients[1]",)),
    ("a purpose that is no purpose name is refused", "county-general",
     grant(purposes=["Jolene's care"]), AGENCIES, ConsentChangeCode.INVALID, ("purposes[0]",)),
]


@pytest.mark.parametrize(("name", "recorder", "record", "agencies", "code", "fields"),
                         GRANT_CASES, ids=[c[0] for c in GRANT_CASES])
def test_who_may_record_a_grant(name: str, recorder: str, record: dict[str, Any],
                                agencies: dict[str, Agency], code: ConsentChangeCode,
                                fields: tuple[str, ...]) -> None:
    verdict = check_grant(agencies.get(recorder), record, agencies)
    assert verdict.code == code, verdict.reason
    assert verdict.allowed is (code == ConsentChangeCode.GRANTED)
    assert verdict.fields == fields
    # A refusal names fields and agencies, never a value the publisher wrote.
    assert "Jolene" not in verdict.reason and "County General Hospital" not in verdict.reason


REVOKE_CASES = [
    ("the recording agency revokes its own grant", "county-general", True, False,
     ConsentChangeCode.REVOKED),
    ("attack: a stranger revokes someone else's consent", "hv-nfp", True, False,
     ConsentChangeCode.NOT_THE_RECORDER),
    ("an administrator revokes on the recorder's behalf", "state-admin", True, True,
     ConsentChangeCode.REVOKED_BY_ADMIN),
    ("a revocation of a consent the agency never recorded", "county-general", False, False,
     ConsentChangeCode.NO_SUCH_CONSENT),
    ("an administrator cannot revoke what was never granted", "state-admin", False, True,
     ConsentChangeCode.NO_SUCH_CONSENT),
]


@pytest.mark.parametrize(("name", "requester", "known", "admin", "code"), REVOKE_CASES,
                         ids=[c[0] for c in REVOKE_CASES])
def test_who_may_revoke(name: str, requester: str, known: bool, admin: bool,
                        code: ConsentChangeCode) -> None:
    key = ConsentKey("county-general", SUBJECT, "CONSENT-HV-0311")
    verdict = check_revoke(key, known, requester, admin)
    assert verdict.code == code
    assert verdict.allowed is code.startswith("revoked")
    if not verdict.allowed:
        assert verdict.fields == ("consent_id",)


@pytest.mark.parametrize(("source", "agencies", "expected"), [
    ("recovery-clinic", AGENCIES, {"recovery-clinic"}),
    ("county-general", AGENCIES, {"county-general", "hv-nfp", "cw-hotline"}),
    ("county-general", with_authority("county-general", relies_on=["kind:home_visiting"]),
     {"county-general", "hv-nfp"}),
    ("county-general", with_authority("county-general", relies_on=["*"]), None),
])
def test_whose_recorded_consents_a_discloser_relies_on(
        source: str, agencies: dict[str, Agency], expected: set[str] | None) -> None:
    found = relied_on_recorders(agencies[source], agencies)
    assert found == (None if expected is None else frozenset(expected))


@pytest.mark.parametrize(("mode", "expected"), [
    ("source", {"recovery-clinic"}),
    ("source_or_kind", {"recovery-clinic", "kind:sud_treatment"}),
    ("any_holder", {"recovery-clinic", "kind:sud_treatment", "*"}),
])
def test_which_discloser_names_a_requirement_accepts(mode: str, expected: set[str]) -> None:
    assert discloser_tokens(AGENCIES["recovery-clinic"], mode) == frozenset(expected)
