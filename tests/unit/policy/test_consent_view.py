"""The consent view: grants, revocations by ingest time, matching, snapshots."""

from __future__ import annotations

import json
from typing import Any

import pytest
from policy_cases import grant, ms, revoke

from policy import ConsentRecordError, ConsentView
from policy.consent import ConsentProbe

SUBJECT = "MPI-0048213"


def probe(recipient: str = "hv-nfp", kind: str | None = "kind:home_visiting",
          purpose: str = "care_coordination", categories: tuple[str, ...] = ("health",)
          ) -> ConsentProbe:
    return ConsentProbe(recipient, kind, purpose, frozenset(categories))


@pytest.mark.parametrize(("consent", "wanted", "matches"), [
    (grant(), probe(), True),
    (grant(recipients=["kind:home_visiting"]), probe(), True),
    (grant(recipients=["kind:home_visiting"]), probe(kind=None), False),
    (grant(recipients=["hv-nfp"]), probe(kind=None), True),
    (grant(recipients=["medicaid"]), probe(), False),
    (grant(purposes=["program_evaluation"]), probe(), False),
    (grant(categories=["health"]), probe(categories=("health", "benefits")), False),
    (grant(categories=["health", "benefits"]), probe(categories=("health", "benefits")), True),
    (grant(categories=["*"]), probe(categories=("sud", "education")), True),
    (grant(categories=[]), probe(categories=()), True),
])
def test_what_a_consent_satisfies(consent: dict[str, Any], wanted: ConsentProbe,
                                  matches: bool) -> None:
    view = ConsentView()
    view.apply(consent, ms("2026-01-01"))
    mask, ids = view.match(SUBJECT, ms("2026-06-01"), [wanted])
    assert (mask == 1) is matches
    assert ids == (("C-1",) if matches else ())


@pytest.mark.parametrize(("at", "active"), [
    ("2026-01-31T23:59:59", False),   # before effective_at
    ("2026-02-01", True),             # effective_at itself
    ("2026-02-27T23:59:59", True),
    ("2026-02-28", False),            # expires_at is exclusive
])
def test_consent_window(at: str, active: bool) -> None:
    view = ConsentView()
    view.apply(grant(effective="2026-02-01", expires="2026-02-28"), ms("2026-01-01"))
    assert view.match(SUBJECT, ms(at), [probe()])[0] == int(active)
    assert bool(view.active_for(SUBJECT, ms(at))) is active


@pytest.mark.parametrize(("revoked_at", "decided_at", "active"), [
    ("2026-03-01", "2026-02-28T23:59:59", True),   # event ingested before the revocation
    ("2026-03-01", "2026-03-01", False),           # at the revocation's ingest time
    ("2026-03-01", "2026-04-01", False),
])
def test_revocation_applies_from_its_ingest_time(revoked_at: str, decided_at: str,
                                                 active: bool) -> None:
    view = ConsentView()
    view.apply(grant(), ms("2026-01-01"))
    view.apply(revoke("C-1"), ms(revoked_at))
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
    view = ConsentView()
    view.apply(grant(effective="2026-02-01"), ms("2026-03-01"))
    assert view.match(SUBJECT, ms(decided_at), [probe()])[0] == int(active)
    assert bool(view.active_for(SUBJECT, ms(decided_at))) is active


def test_revocation_seen_before_its_grant_still_applies() -> None:
    view = ConsentView()
    view.apply(revoke("C-1"), ms("2026-03-01"))
    view.apply(grant(), ms("2026-03-02"))
    assert view.match(SUBJECT, ms("2026-04-01"), [probe()])[0] == 0


def test_a_second_revocation_keeps_the_earliest_time() -> None:
    view = ConsentView()
    view.apply(grant(), ms("2026-01-01"))
    view.apply(revoke("C-1"), ms("2026-03-01"))
    view.apply(revoke("C-1"), ms("2026-05-01"))
    assert view.consents_for(SUBJECT)[0].revoked_at == ms("2026-03-01")


def test_a_grant_with_a_known_id_replaces_the_earlier_one() -> None:
    view = ConsentView()
    view.apply(grant(purposes=["care_coordination"]), ms("2026-01-01"))
    view.apply(grant(purposes=["program_evaluation"]), ms("2026-02-01"))
    assert [sorted(c.purposes) for c in view.consents_for(SUBJECT)] == [["program_evaluation"]]
    assert len(view) == 1


def test_match_reports_each_probe_and_the_consents_relied_on() -> None:
    view = ConsentView()
    view.apply(grant("C-health", categories=["health"]), ms("2026-01-01"))
    view.apply(grant("C-sud", recipients=["hv-nfp"], categories=["sud"]), ms("2026-01-01"))
    probes = [probe(categories=("health",)), probe(kind=None, categories=("sud",)),
              probe(categories=("education",))]
    assert view.match(SUBJECT, ms("2026-06-01"), probes) == (0b011, ("C-health", "C-sud"))


def test_subjects_without_consents_match_nothing() -> None:
    view = ConsentView()
    view.apply(grant(), ms("2026-01-01"))
    assert view.match("MPI-unknown", ms("2026-06-01"), [probe()]) == (0, ())
    assert view.consents_for("MPI-unknown") == []


def test_snapshot_round_trips_through_json() -> None:
    view = ConsentView()
    view.apply(grant("C-1"), ms("2026-01-01"))
    view.apply(grant("C-2", recipients=["kind:school"], expires="2027-01-01"), ms("2026-01-02"))
    view.apply(revoke("C-1"), ms("2026-03-01"))
    restored = ConsentView.from_dict(json.loads(json.dumps(view.to_dict())))
    assert restored.to_dict() == view.to_dict()
    assert restored.consents_for(SUBJECT) == view.consents_for(SUBJECT)
    for at in ("2026-02-01", "2026-04-01"):
        probes = [probe(), probe(recipient="metro-schools", kind="kind:school")]
        assert restored.match(SUBJECT, ms(at), probes) == view.match(SUBJECT, ms(at), probes)


@pytest.mark.parametrize("snapshot", [
    {"format": 99, "grants": []},
    {"format": 1, "grants": [{"consent_id": "x"}]},
    {"format": 1, "grants": [], "revoked_at": {"x": "soon"}},
])
def test_bad_snapshots_are_refused(snapshot: dict[str, Any]) -> None:
    with pytest.raises(ConsentRecordError):
        ConsentView.from_dict(snapshot)


@pytest.mark.parametrize(("change", "message"), [
    ({"action": "AMEND"}, "GRANT or REVOKE"),
    ({"consent_id": None}, "no 'consent_id'"),
    ({"effective_at": "yesterday"}, "'effective_at' must be a timestamp"),
    ({"recipients": "hv-nfp"}, "'recipients' must be a list of strings"),
])
def test_malformed_consent_records_name_the_field_not_the_value(
        change: dict[str, Any], message: str) -> None:
    record = {**grant(), **change}
    with pytest.raises(ConsentRecordError, match=message) as raised:
        ConsentView().apply(record, ms("2026-01-01"))
    assert "Jolene" not in str(raised.value)


def test_consent_times_may_be_epoch_millis() -> None:
    record = {**grant(), "effective_at": ms("2026-02-01"), "expires_at": ms("2026-03-01")}
    view = ConsentView()
    view.apply(record, ms("2026-01-01"))
    (consent,) = view.consents_for(SUBJECT)
    assert (consent.effective_at, consent.expires_at) == (ms("2026-02-01"), ms("2026-03-01"))
