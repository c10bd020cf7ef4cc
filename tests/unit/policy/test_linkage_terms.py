"""linkage.yaml: who each event type is about, birth match and CLK agreements, checked
with file, line and field like the rest of the bundle; consents matched for a person
across agencies; pseudonyms of person ids."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from policy_cases import AT, CATALOG, DEMO, DEMO_DIR, KEY, example, grant, ms

from linkage.subjects import IDENTITY_INPUTS as LIBRARY_INPUTS
from policy import BundleError, ConsentView, PolicyEngine, load_bundle
from policy.linkage_terms import IDENTITY_INPUTS, LinkageTerms

BROKEN_LINKAGE = """\
thresholds: {link_probability: 1.5, review_probability: 0.5}
event_types:
  births:
    subjects:
      - role: mother
        keys_event: true
  birth:
    subjects:
      - role: mother
        keys_event: true
        fields: {given_name: mother.first_nam, birth_date: mother.zip}
      - role: child
        id_field: child.child_idd
  referral:
    subjects:
      - role: caregiver
        keys_event: true
        id_field: caregiver.first_name
birth_match:
  watch_list_from: nobody
  births_from: [vital-records]
  clk_agreement: no-such-agreement
clk_agreements:
  - id: cw-vr
    parties: [cw-hotline, vital-records]
    secret: s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t
"""

EXPECTED = [
    ("linkage.yaml", 1, "thresholds", "link_probability must be a probability"),
    ("linkage.yaml", 16, "event_types.referral.subjects[0]",
     "the subject that keys the event is the one in subject_id"),
    ("linkage.yaml", 24, "clk_agreements[0]", "the encoding secret is held by the parties"),
]


@pytest.fixture
def demo_copy(tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(DEMO_DIR, target)
    return target


def problems_of(folder: Path) -> list[str]:
    with pytest.raises(BundleError) as raised:
        load_bundle(folder, CATALOG)
    return [str(p) for p in raised.value.problems]


def test_the_policy_and_the_library_name_the_same_identity_inputs():
    assert IDENTITY_INPUTS == LIBRARY_INPUTS


def test_the_demo_links_births_referrals_enrollments_and_consents():
    terms = DEMO.linkage
    assert isinstance(terms, LinkageTerms)
    assert set(terms.event_types) == {"birth", "referral", "enrollment", "consent"}
    assert terms.linked_paths("birth") == {"subject_id", "child.child_id"}
    assert terms.event_types["consent"].keyed.lookup_only
    assert terms.birth_match is not None and terms.birth_match.births_from == (
        "vital-records",)


def test_each_mistake_in_the_model_is_reported_with_line_and_field(demo_copy: Path):
    (demo_copy / "linkage.yaml").write_text(BROKEN_LINKAGE, encoding="utf-8")
    found = problems_of(demo_copy)
    for file, line, location, message in EXPECTED:
        assert any(p.startswith(f"{file}:{line}: {location}: ") and message in p
                   for p in found), (line, location, found)
    assert len(found) == len(EXPECTED), found


def test_references_to_schemas_and_agencies_are_checked(demo_copy: Path):
    text = BROKEN_LINKAGE.replace("1.5", "0.99").replace(
        "        id_field: caregiver.first_name\n", "").replace(
        "    secret: s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t\n", "")
    (demo_copy / "linkage.yaml").write_text(text, encoding="utf-8")
    assert problems_of(demo_copy) == [
        "agreements/vital-records.yaml:13: event_types: birth_match events go from an "
        "agency of birth_match.births_from to nobody only",
        "linkage.yaml:3: event_types.births: unknown event type 'births'",
        "linkage.yaml:11: event_types.birth.subjects[0].fields.birth_date: birth.mother.zip "
        "is not a date",
        "linkage.yaml:11: event_types.birth.subjects[0].fields.given_name: birth has no "
        "field 'mother.first_nam'",
        "linkage.yaml:13: event_types.birth.subjects[1].id_field: birth has no field "
        "'child.child_idd'",
        "linkage.yaml:19: birth_match.watch_list_from: unknown agency 'nobody'",
        "linkage.yaml:21: birth_match.clk_agreement: unknown CLK agreement "
        "'no-such-agreement'",
    ]


def test_the_watch_list_goes_to_no_one_and_no_agency_publishes_birth_matches(
        demo_copy: Path):
    subs = demo_copy / "subscriptions.yaml"
    subs.write_text(subs.read_text(encoding="utf-8").replace(
        "event_types: [birth_match]", "event_types: [birth_match, watch_list_entry]"),
        encoding="utf-8")
    agencies = demo_copy / "agencies.yaml"
    agencies.write_text(agencies.read_text(encoding="utf-8").replace(
        "publishes: [birth]\n", "publishes: [birth, birth_match]\n"), encoding="utf-8")
    found = problems_of(demo_copy)
    assert any("subscriptions.yaml" in p and "no subscription may receive it" in p
               for p in found), found
    assert any("agencies.yaml" in p and "birth_match events are made by the broker" in p
               for p in found), found


def test_birth_matches_go_only_to_the_watch_list_owner(demo_copy: Path):
    agreement = demo_copy / "agreements" / "vital-records.yaml"
    agreement.write_text(agreement.read_text(encoding="utf-8").replace(
        "recipient: cw-hotline", "recipient: hv-nfp"), encoding="utf-8")
    found = problems_of(demo_copy)
    assert any("birth_match events go from an agency of birth_match.births_from to "
               "cw-hotline only" in p for p in found), found


def test_without_linkage_yaml_the_bundle_keeps_its_version(demo_copy: Path):
    (demo_copy / "linkage.yaml").unlink()
    (demo_copy / "agreements" / "vital-records.yaml").unlink()
    subs = demo_copy / "subscriptions.yaml"
    text = subs.read_text(encoding="utf-8")
    start = text.index("  - id: cw-birth-matches")
    end = text.index("  - id: eval-births")
    subs.write_text(text[:start] + text[end:], encoding="utf-8")
    bundle = load_bundle(demo_copy, CATALOG)
    assert bundle.linkage is None
    assert "linkage" not in bundle.canonical_content()


def test_a_consent_recorded_under_one_agency_id_counts_for_the_person():
    """The hotline records a consent under its intake id naming the hospital as
    discloser; a decision about the person (linked to both records) relies on it, and a
    consent another agency recorded under the same id does not count."""
    view = ConsentView()
    view.apply(grant("CONSENT-1", subject="HL-I-1", categories=["health", "benefits", "sud"],
                     disclosers=["county-general"]), ms("2026-01-01"), "cw-hotline")
    engine = PolicyEngine(DEMO, CATALOG, KEY)
    birth = example("birth")

    class Person:
        def match(self, subject_id, at_ms, probes):
            assert subject_id == "hp_person"
            return view.match_recorded([("county-general", "MRN-9"),
                                        ("cw-hotline", "HL-I-1")], at_ms, probes)

    class WrongRecorder:
        def match(self, subject_id, at_ms, probes):
            return view.match_recorded([("county-general", "HL-I-1")], at_ms, probes)

    linked = engine.decide("birth", 1, birth, "county-general", "hv-births", Person(), AT,
                           subject="hp_person", linked_ids={"subject_id": "hp_person"})
    assert "child.birth_weight_grams" in linked.released
    assert linked.consent_ids == ("cw-hotline/CONSENT-1",)
    other = engine.decide("birth", 1, birth, "county-general", "hv-births", WrongRecorder(),
                          AT, subject="hp_person")
    assert "child.birth_weight_grams" in other.withheld


def test_a_pseudonymised_subject_id_is_a_pseudonym_of_the_person():
    engine = PolicyEngine(DEMO, CATALOG, KEY)
    first, second = example("birth"), example("birth")
    second["subject_id"] = "ANOTHER-MRN"
    views = [engine.decide("birth", 1, event, "county-general", "eval-births", ConsentView(),
                           AT, subject="hp_same",
                           linked_ids={"subject_id": "hp_same", "child.child_id": "hp_kid"}
                           ).view for event in (first, second)]
    assert views[0]["subject_id"] == views[1]["subject_id"]
    assert views[0]["subject_id"].startswith("p_")
    assert views[0]["child"]["child_id"] == views[1]["child"]["child_id"]
    unlinked = engine.decide("birth", 1, first, "county-general", "eval-births",
                             ConsentView(), AT).view
    assert unlinked["subject_id"] != views[0]["subject_id"]
    # Released as it is, an agency id stays the agency's own.
    clear = engine.decide("birth", 1, second, "county-general", "hv-births", ConsentView(),
                          AT, subject="hp_same", linked_ids={"subject_id": "hp_same"}).view
    assert clear["subject_id"] == "ANOTHER-MRN"


def test_a_decision_names_the_agency_record_in_canonical_order():
    import json

    engine = PolicyEngine(DEMO, CATALOG, KEY)
    decision = engine.decide("birth", 1, example("birth"), "county-general", "hv-births",
                             ConsentView(), AT)
    text = decision.canonical_json("sp_" + "a" * 32)
    assert text == json.dumps(decision.to_dict("sp_" + "a" * 32), sort_keys=True,
                              separators=(",", ":"))
    assert decision.canonical_json() == json.dumps(decision.to_dict(), sort_keys=True,
                                                   separators=(",", ":"))
