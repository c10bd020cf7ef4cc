"""The accounting of disclosures for a linked person, on the command line.

With record linkage, decisions are filed under the person's pseudonym, not the agency's
id. `handoff audit disclosures --data DIR --subject ID [--agency A]` finds the persons
agency A's record ID (or any agency's record with that id) is linked to now in the
router's person index in DIR, and lists every permitted decision about any of their
records (`broker.linking.accounting`), with the decisions filed under the raw id itself
(event types that are not linked, and records from before linkage).
"""

from __future__ import annotations

from pathlib import Path

from broker.audit.disclosures import Disclosure
from broker.audit.pseudonym import SubjectPseudonymizer
from broker.audit.sqlite_store import SqliteAuditStore
from broker.audit.store import AuditFilter
from broker.bootstrap import PERSON_INDEX_FILE
from broker.cli.audit_common import usage_error
from broker.linking.accounting import person_disclosures
from broker.linking.terms import RecordRef
from linkage.errors import LinkageError
from linkage.sqlite_index import SqlitePersonIndex
from policy.linkage_terms import DEFAULT_ID_SYSTEM


def has_person_index(data: Path) -> bool:
    return (data / PERSON_INDEX_FILE).exists()


def linked_disclosures(data: Path, store: SqliteAuditStore, agency: str | None,
                       agency_id: str, pseudonyms: SubjectPseudonymizer, where: AuditFilter
                       ) -> list[Disclosure]:
    """The accounting for whoever the agency (or any agency) knows by `agency_id`."""
    if not has_person_index(data):
        usage_error(f"no person index at {data / PERSON_INDEX_FILE}: record linkage has "
                    "not run here")
    index = SqlitePersonIndex(data / PERSON_INDEX_FILE)
    try:
        try:
            keys = ([RecordRef(agency, DEFAULT_ID_SYSTEM, agency_id).key] if agency
                    else list(index.keys_with_id(DEFAULT_ID_SYSTEM, agency_id)))
        except LinkageError as exc:
            usage_error(str(exc))
        persons = {r.person_id for k in keys if (r := index.record(k)) is not None
                   and r.person_id is not None}
        if agency is not None and not persons:
            usage_error(f"no record of {agency} with that id is in the person index")
        found = {d.seq: d for d in store.disclosures(
            AuditFilter(subject=pseudonyms.pseudonym(agency_id), since_ms=where.since_ms,
                        until_ms=where.until_ms))}
        for person in sorted(persons):
            for item in person_disclosures(store, index, pseudonyms.pseudonym, person,
                                           since_ms=where.since_ms,
                                           until_ms=where.until_ms):
                found[item.seq] = item
        return [found[seq] for seq in sorted(found)]
    finally:
        index.close()
