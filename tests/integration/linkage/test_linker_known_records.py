"""A record sent again with the same values is linked to its person without being
resolved again; whatever changed since (the values, the record's person, its identity
in the index, the mapping that read it) is resolved as before."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.audit import SubjectPseudonymizer
from broker.auditor import Auditor
from broker.linking.audit_entries import LinkageAuditor
from broker.linking.known import KnownRecords
from broker.linking.linker import LinkedEvent, Linker
from broker.linking.terms import thresholds_of
from broker.metrics import Metrics
from linkage.default_model import default_model
from linkage.identity import AgencyId
from linkage.memory_index import MemoryPersonIndex
from linkage.resolver import PersonResolver
from linkage.sqlite_index import SqlitePersonIndex
from linkage.subjects import SubjectMapping, identity_from_values, identity_values
from policy import load_bundle
from policy.linkage_terms import LinkageTerms
from schemas.catalog import SchemaCatalog
from schemas.jsonform import record_from_json
from tests.unit.broker.fakes import MemoryAuditStore

REPO = Path(__file__).resolve().parents[3]
CATALOG = SchemaCatalog.load()
TERMS = load_bundle(REPO / "examples" / "demo" / "policy", CATALOG).linkage
BIRTH = json.loads((REPO / "schemas" / "events" / "birth.example.json").read_text())
HOSPITAL = "st-marys-hospital"


@pytest.fixture
def index(tmp_path: Path) -> Iterator[SqlitePersonIndex]:
    """A person index in a file of its own, closed after the test."""
    opened = SqlitePersonIndex(tmp_path / "persons.db")
    yield opened
    opened.close()


def linker_over(index: SqlitePersonIndex | MemoryPersonIndex) -> Linker:
    assert TERMS is not None
    metrics = Metrics()
    auditor = Auditor(MemoryAuditStore(), SubjectPseudonymizer(b"k" * 32), metrics)
    return Linker(index, PersonResolver(index, default_model(), thresholds_of(TERMS)),
                  LinkageAuditor(auditor), metrics)  # type: ignore[arg-type]


def birth(n: int, **mother: Any) -> dict[str, Any]:
    event = copy.deepcopy(BIRTH)
    event["event_id"] = f"00000000-0000-4000-8000-{n:012d}"
    event["mother"].update(mother)
    decoded: dict[str, Any] = record_from_json(CATALOG.get("birth").schema, event)
    return decoded


def link(linker: Linker, event: dict[str, Any], terms: LinkageTerms | None = TERMS
         ) -> LinkedEvent:
    linked = linker.link("birth", HOSPITAL, event, terms)
    assert linked is not None
    return linked


def test_a_mother_sent_again_alike_is_her_person_with_nothing_changed(
        index: SqlitePersonIndex) -> None:
    linker = linker_over(index)
    first = link(linker, birth(1))
    seq = index.last_seq()
    for n in (2, 3):
        again = link(linker, birth(n))
        assert again.subject == first.subject
        assert again.linked_ids == first.linked_ids
        assert again.outcomes == ("agency_id", "agency_id")
        assert again.audit == ()
        assert again.keyed_identity == first.keyed_identity
    assert index.last_seq() == seq


def test_a_new_phone_for_a_known_mother_updates_her_record(index: SqlitePersonIndex) -> None:
    linker = linker_over(index)
    first = link(linker, birth(1))
    link(linker, birth(2))
    seq = index.last_seq()
    moved = link(linker, birth(3, phone="608-555-0199"))
    assert moved.subject == first.subject
    assert moved.keyed_identity is not None and moved.keyed_identity.phone == "608-555-0199"
    assert index.last_seq() == seq + 1         # her record's new identity
    record = index.record(first.subject_record or "")
    assert record is not None and record.identity.phone == "6085550199"
    # And back: the old phone is a change again, not the values kept from before.
    back = link(linker, birth(4))
    assert back.subject == first.subject
    assert index.last_seq() == seq + 2
    record = index.record(first.subject_record or "")
    assert record is not None and record.identity.phone == "6085550142"


def test_a_mother_unlinked_by_a_steward_is_her_new_person_next_time(tmp_path: Path) -> None:
    path = tmp_path / "persons.db"
    index, steward = SqlitePersonIndex(path), SqlitePersonIndex(path)
    linker = linker_over(index)
    first = link(linker, birth(1))
    link(linker, birth(2))
    key = first.subject_record or ""
    change = PersonResolver(steward, default_model(), thresholds_of(TERMS)).unlink(
        key, by="steward", reason="not her")   # type: ignore[arg-type]
    after = link(linker, birth(3))
    assert after.subject == change.rekeys[0].to_person_id != first.subject
    index.close()
    steward.close()


def test_a_person_merged_into_another_keys_the_mothers_next_birth(index: SqlitePersonIndex) -> None:
    linker = linker_over(index)
    first = link(linker, birth(1))
    link(linker, birth(2))
    other = link(linker, {**birth(3), "subject_id": "OTHER-1",
                          "mother": {**birth(3)["mother"], "first_name": "Ngoc",
                                     "last_name": "Vang", "phone": "608-555-0001",
                                     "street_address": "1 Elm St"}})
    assert other.subject != first.subject
    linker.resolver.merge(first.subject, other.subject, by="steward", reason="same woman")
    assert link(linker, birth(4)).subject == other.subject


def test_the_memory_index_links_a_mother_sent_again_alike() -> None:
    linker = linker_over(MemoryPersonIndex())
    first = link(linker, birth(1))
    assert link(linker, birth(2)).subject == first.subject
    assert link(linker, birth(3)).audit == ()


MAPPING = SubjectMapping("mother", "mrn", "subject_id",
                         (("given_name", "m.first"), ("family_name", "m.last"),
                          ("birth_date", "m.born"), ("zip", "m.zip")))
SWAPPED = SubjectMapping("mother", "mrn", "subject_id",
                         (("family_name", "m.first"), ("given_name", "m.last"),
                          ("birth_date", "m.born"), ("zip", "m.zip")))


def test_kept_values_answer_only_for_their_mapping_and_their_types(
        index: SqlitePersonIndex) -> None:
    event = {"subject_id": "M-1", "m": {"first": "Jolene", "last": "Lindqvist",
                                        "born": dt.date(1995, 5, 16), "zip": 53703}}
    agency_id = AgencyId(HOSPITAL, "mrn", "M-1")
    values = identity_values(event, MAPPING)
    identity = identity_from_values(values, agency_id, MAPPING)
    person = PersonResolver(index, default_model(), thresholds_of(TERMS)).resolve(identity)
    known = KnownRecords(index)
    known.keep(agency_id.key, MAPPING, values, identity)
    assert known.person(agency_id.key, MAPPING, values) == (person.person_id, identity)
    assert known.person(agency_id.key, SWAPPED, values) is None
    # Equal values of another type make another identity (zip "53703.0").
    as_float = (*values[:3], 53703.0)
    assert as_float == values
    assert identity_from_values(as_float, agency_id, MAPPING) != identity
    assert known.person(agency_id.key, MAPPING, as_float) is None
