"""The consent view: grants and revocations scoped to their recording agency, by ingest
time; matching on recipient, purpose, categories, discloser and recorder; snapshots."""

from __future__ import annotations

import json
from typing import Any

import pytest
from policy_cases import grant, ms, revoke

from policy import ConsentRecordError, ConsentView
from policy.consent import ConsentKey, ConsentProbe, purpose_tokens

SUBJECT = "MPI-0048213"
HOSPITAL = "county-general"


def probe(recipient: str = "hv-nfp", kind: str | None = "kind:home_visiting",
          purpose: str = "care_coordination", categories: tuple[str, ...] = ("health",),
          disclosers: tuple[str, ...] = (HOSPITAL, "kind:hospital"),
          recorders: tuple[str, ...] | None = (HOSPITAL,)) -> ConsentProbe:
    return ConsentProbe(recipient, kind, purpose_tokens(purpose), frozenset(categories),
                        frozenset(disclosers),
                        None if recorders is None else frozenset(recorders))


def on_file(*records: tuple[dict[str, Any], str], at: str = "2026-01-01") -> ConsentView:
    """A view holding (record, recording agency) pairs, all ingested at `at`."""
    view = ConsentView()
    for record, by in records:
        view.apply(record, ms(at), by)
    return view


@pytest.mark.parametrize(("consent", "by", "wanted", "matches"), [
    (grant(), HOSPITAL, probe(), True),
    (grant(recipients=["kind:home_visiting"]), HOSPITAL, probe(), True),
    (grant(recipients=["kind:home_visiting"]), HOSPITAL, probe(kind=None), False),
    (grant(recipients=["hv-nfp"]), HOSPITAL, probe(kind=None), True),
    (grant(recipients=["medicaid"]), HOSPITAL, probe(), False),
    (grant(purposes=["program_evaluation"]), HOSPITAL, probe(), False),
    (grant(categories=["health"]), HOSPITAL, probe(categories=("health", "benefits")), False),
    (grant(categories=["health", "benefits"]), HOSPITAL,
     probe(categories=("health", "benefits")), True),
    (grant(categories=["*"]), HOSPITAL, probe(categories=("sud", "education")), True),
    (grant(categories=[]), HOSPITAL, probe(categories=()), True),
    # discloser: none named means the recording agency
    (grant(), "hv-nfp", probe(recorders=None), False),
    (grant(disclosers=[HOSPITAL]), "hv-nfp", probe(recorders=("county-general", "hv-nfp")),
     True),
    (grant(disclosers=["kind:hospital"]), "hv-nfp", probe(recorders=None), True),
    (grant(disclosers=["kind:hospital"]), "hv-nfp", probe(disclosers=(HOSPITAL,),
                                                          recorders=None), False),
    (grant(disclosers=["*"]), HOSPITAL, probe(), False),
    (grant(disclosers=["*"]), HOSPITAL, probe(disclosers=(HOSPITAL, "*")), True),
    (grant(disclosers=["medicaid"]), HOSPITAL, probe(), False),
    # recorder: the discloser relies only on the recorders it lists
    (grant(disclosers=[HOSPITAL]), "hv-nfp", probe(), False),
    (grant(disclosers=[HOSPITAL]), "cw-hotline", probe(recorders=(HOSPITAL, "hv-nfp")),
     False),
    # purpose: tpo covers treatment, payment and health care operations, nothing else
    (grant(purposes=["tpo"]), HOSPITAL, probe(purpose="treatment"), True),
    (grant(purposes=["tpo"]), HOSPITAL, probe(purpose="health_care_operations"), True),
    (grant(purposes=["tpo"]), HOSPITAL, probe(purpose="care_coordination"), False),
    (grant(purposes=["treatment"]), HOSPITAL, probe(purpose="payment"), False),
])
def test_what_a_consent_satisfies(consent: dict[str, Any], by: str, wanted: ConsentProbe,
                                  matches: bool) -> None:
    view = on_file((consent, by))
    mask, ids = view.match(SUBJECT, ms("2026-06-01"), [wanted])
    assert (mask == 1) is matches
    assert ids == ((f"{by}/C-1",) if matches else ())


@pytest.mark.parametrize(("at", "active"), [
    ("2026-01-31T23:59:59", False),   # before effective_at
    ("2026-02-01", True),             # effective_at itself
    ("2026-02-27T23:59:59", True),
    ("2026-02-28", False),            # expires_at is exclusive
])
def test_consent_window(at: str, active: bool) -> None:
    view = on_file((grant(effective="2026-02-01", expires="2026-02-28"), HOSPITAL))
    assert view.match(SUBJECT, ms(at), [probe()])[0] == int(active)
    assert bool(view.active_for(SUBJECT, ms(at))) is active


def test_a_tpo_consent_without_expiry_covers_every_future_use() -> None:
    view = on_file((grant(purposes=["tpo"], expires=None), HOSPITAL))
    for purpose in ("treatment", "payment", "health_care_operations"):
        assert view.match(SUBJECT, ms("2036-01-01"), [probe(purpose=purpose)])[0] == 1


@pytest.mark.parametrize(("revoked_at", "decided_at", "active"), [
    ("2026-03-01", "2026-02-28T23:59:59", True),   # event ingested before the revocation
    ("2026-03-01", "2026-03-01", False),           # at the revocation's ingest time
    ("2026-03-01", "2026-04-01", False),
])
def test_revocation_applies_from_its_ingest_time(revoked_at: str, decided_at: str,
                                                 active: bool) -> None:
    view = on_file((grant(), HOSPITAL))
    change = view.apply(revoke("C-1"), ms(revoked_at), HOSPITAL)
    assert change.kind == "revoked"
    assert view.match(SUBJECT, ms(decided_at), [probe()])[0] == int(active)
    (consent,) = view.consents_for(SUBJECT)
    assert consent.revoked_at == ms(revoked_at)


@pytest.mark.parametrize(("decided_at", "active"), [
    ("2026-02-28T23:59:59", False),   # ingested before the broker knew of the grant
    ("2026-03-01", True),             # at the grant's ingest time
])
def test_a_backdated_grant_applies_from_its_ingest_time(decided_at: str, active: bool
                                                        ) -> None:
    # The form says effective 1 February; the grant reached the broker on 1 March. An
    # event ingested in between is decided without it, however late it is routed, so a
    # replay or another router reading further along the consent topic agrees.
    view = on_file((grant(effective="2026-02-01"), HOSPITAL), at="2026-03-01")
    assert view.match(SUBJECT, ms(decided_at), [probe()])[0] == int(active)
    assert bool(view.active_for(SUBJECT, ms(decided_at))) is active


def test_revocation_seen_before_its_grant_still_applies() -> None:
    view = ConsentView()
    assert view.apply(revoke("C-1"), ms("2026-03-01"), HOSPITAL).kind == "revoked_unknown"
    view.apply(grant(), ms("2026-03-02"), HOSPITAL)
    assert view.match(SUBJECT, ms("2026-04-01"), [probe()])[0] == 0


def test_a_second_revocation_keeps_the_earliest_time() -> None:
    view = on_file((grant(), HOSPITAL))
    view.apply(revoke("C-1"), ms("2026-03-01"), HOSPITAL)
    view.apply(revoke("C-1"), ms("2026-05-01"), HOSPITAL)
    assert view.consents_for(SUBJECT)[0].revoked_at == ms("2026-03-01")


def test_a_grant_with_a_known_id_replaces_the_recorders_earlier_one() -> None:
    view = ConsentView()
    first = view.apply(grant(purposes=["care_coordination"]), ms("2026-01-01"), HOSPITAL)
    second = view.apply(grant(purposes=["program_evaluation"]), ms("2026-02-01"), HOSPITAL)
    assert (first.kind, second.kind) == ("granted", "replaced")
    assert [sorted(c.purposes) for c in view.consents_for(SUBJECT)] == [["program_evaluation"]]
    assert len(view) == 1


# -- consent integrity: ids are scoped to their recorder and subject ---------------------


@pytest.mark.parametrize(("name", "second", "by"), [
    ("another agency's grant with a colliding id", grant(recipients=["medicaid"]),
     "cw-hotline"),
    ("another person's grant with a colliding id",
     grant(subject="MPI-0051190", recipients=["medicaid"]), HOSPITAL),
])
def test_a_colliding_consent_id_never_replaces_the_first_familys_consent(
        name: str, second: dict[str, Any], by: str) -> None:
    view = on_file((grant(), HOSPITAL))
    change = view.apply(second, ms("2026-02-01"), by)
    assert change.kind == "granted", name
    assert len(view) == 2
    first = view.grant(ConsentKey(HOSPITAL, SUBJECT, "C-1"))
    assert first is not None and first.recipients == frozenset({"hv-nfp"})
    assert view.match(SUBJECT, ms("2026-06-01"), [probe()])[0] == 1


def test_a_stranger_revoking_by_id_revokes_nothing_of_anyone_elses() -> None:
    view = on_file((grant(), HOSPITAL))
    change = view.apply(revoke("C-1"), ms("2026-03-01"), "hv-nfp")
    assert change == view.revoke(ConsentKey("hv-nfp", SUBJECT, "C-1"), ms("2026-03-01"))
    assert change.kind == "revoked_unknown"
    (consent,) = view.consents_for(SUBJECT)
    assert consent.revoked_at is None
    assert view.match(SUBJECT, ms("2026-06-01"), [probe()])[0] == 1


def test_a_self_granted_consent_opens_only_the_recorders_own_data() -> None:
    # The home visiting program records a consent naming itself as recipient. Without a
    # discloser it names its own data; it cannot open the hospital's or a Part 2
    # program's, whose probes name them as discloser.
    view = on_file((grant(recipients=["hv-nfp"]), "hv-nfp"))
    (consent,) = view.consents_for(SUBJECT)
    assert consent.disclosers == frozenset({"hv-nfp"})
    assert view.match(SUBJECT, ms("2026-06-01"), [probe(recorders=None)])[0] == 0
    part2 = probe(kind=None, disclosers=("recovery-clinic",), recorders=("recovery-clinic",))
    assert view.match(SUBJECT, ms("2026-06-01"), [part2])[0] == 0


def test_an_administrator_revokes_through_the_view_on_the_recorders_behalf() -> None:
    view = on_file((grant(), HOSPITAL))
    change = view.revoke(ConsentKey(HOSPITAL, SUBJECT, "C-1"), ms("2026-03-01"))
    assert change.kind == "revoked"
    assert view.grant(ConsentKey(HOSPITAL, SUBJECT, "C-1")).revoked_at == ms("2026-03-01")
    assert view.match(SUBJECT, ms("2026-04-01"), [probe()])[0] == 0


def test_match_reports_each_probe_and_the_consents_relied_on() -> None:
    view = on_file((grant("C-health", categories=["health"]), HOSPITAL),
                   (grant("C-sud", recipients=["hv-nfp"], categories=["sud"]), HOSPITAL))
    probes = [probe(categories=("health",)), probe(kind=None, categories=("sud",)),
              probe(categories=("education",))]
    assert view.match(SUBJECT, ms("2026-06-01"), probes) == (
        0b011, ("county-general/C-health", "county-general/C-sud"))


def test_subjects_without_consents_match_nothing() -> None:
    view = on_file((grant(), HOSPITAL))
    assert view.match("MPI-unknown", ms("2026-06-01"), [probe()]) == (0, ())
    assert view.consents_for("MPI-unknown") == []


def test_snapshot_round_trips_through_json() -> None:
    view = ConsentView()
    view.apply(grant("C-1"), ms("2026-01-01"), HOSPITAL)
    view.apply(grant("C-1", disclosers=[HOSPITAL]), ms("2026-01-01"), "hv-nfp")
    view.apply(grant("C-2", recipients=["kind:school"], expires="2027-01-01"),
               ms("2026-01-02"), HOSPITAL)
    view.apply(revoke("C-1"), ms("2026-03-01"), HOSPITAL)
    restored = ConsentView.from_dict(json.loads(json.dumps(view.to_dict())))
    assert restored.to_dict() == view.to_dict()
    assert restored.consents_for(SUBJECT) == view.consents_for(SUBJECT)
    for at in ("2026-02-01", "2026-04-01"):
        probes = [probe(), probe(recipient="metro-schools", kind="kind:school"),
                  probe(recorders=(HOSPITAL, "hv-nfp"))]
        assert restored.match(SUBJECT, ms(at), probes) == view.match(SUBJECT, ms(at), probes)


@pytest.mark.parametrize("snapshot", [
    {"format": 1, "grants": []},
    {"format": 2, "grants": [{"consent_id": "x"}]},
    {"format": 2, "grants": [], "revocations": [["x", "y", "z", "soon"]]},
])
def test_bad_snapshots_are_refused(snapshot: dict[str, Any]) -> None:
    with pytest.raises(ConsentRecordError):
        ConsentView.from_dict(snapshot)


@pytest.mark.parametrize(("change", "message"), [
    ({"action": "AMEND"}, "GRANT or REVOKE"),
    ({"consent_id": None}, "no 'consent_id'"),
    ({"effective_at": "yesterday"}, "'effective_at' must be a timestamp"),
    ({"recipients": "hv-nfp"}, "'recipients' must be a list of strings"),
    ({"disclosers": "county-general"}, "'disclosers' must be a list of strings"),
])
def test_malformed_consent_records_name_the_field_not_the_value(
        change: dict[str, Any], message: str) -> None:
    record = {**grant(), **change}
    with pytest.raises(ConsentRecordError, match=message) as raised:
        ConsentView().apply(record, ms("2026-01-01"), HOSPITAL)
    assert "Jolene" not in str(raised.value)


def test_a_consent_without_a_recording_agency_is_refused() -> None:
    with pytest.raises(ConsentRecordError, match="recorded it"):
        ConsentView().apply(grant(), ms("2026-01-01"), "")


def test_consent_times_may_be_epoch_millis() -> None:
    record = {**grant(), "effective_at": ms("2026-02-01"), "expires_at": ms("2026-03-01")}
    view = on_file((record, HOSPITAL))
    (consent,) = view.consents_for(SUBJECT)
    assert (consent.effective_at, consent.expires_at) == (ms("2026-02-01"), ms("2026-03-01"))
