"""The accounting of disclosures for a linked person.

A decision's audit record names the person as its `subject` (the person's pseudonym at
decision time) and, in `detail.subject_record`, the pseudonym of the agency record it
was resolved from, which never changes. The accounting for a person reads the records
linked to the person now, then every permitted decision about any of them: those made
under any person those records have belonged to (their assignment history), kept when
their `subject_record` is one of the person's records. So an unlink, a merge or a
review decision moves disclosures between persons without rewriting the audit log.

Decisions made before the event type was linked (no `subject_record`; the subject is
the pseudonym of the agency's raw `subject_id`) count for a record of the same agency
and id.
"""

from __future__ import annotations

from collections.abc import Callable

from broker.audit.disclosures import Disclosure, disclosure_from_record, is_disclosure
from broker.audit.records import AuditKind, AuditRecord
from broker.audit.store import AuditFilter, AuditReader
from broker.linking.terms import RecordRef
from linkage.index import PersonIndex

SUBJECT_RECORD = "subject_record"


def person_disclosures(
    reader: AuditReader, index: PersonIndex, pseudonym: Callable[[str], str],
    person_id: str, *, since_ms: int | None = None, until_ms: int | None = None,
    recipient: str | None = None,
) -> list[Disclosure]:
    """Every disclosure about the person's records, oldest first."""
    keys = [r.record_key for r in index.records_of(person_id)]
    record_pseudonyms = {pseudonym(k): k for k in keys}
    persons = {person_id}
    for key in keys:
        persons.update(a.person_id for a in index.assignments(key))
    legacy: dict[str, set[str]] = {}
    for key in keys:
        ref = RecordRef.of(key)
        legacy.setdefault(pseudonym(ref.id), set()).add(ref.agency)
    subjects = {pseudonym(p) for p in persons} | set(record_pseudonyms) | set(legacy)

    def wanted(record: AuditRecord) -> bool:
        linked = record.detail.get(SUBJECT_RECORD)
        if linked is not None:
            return linked in record_pseudonyms
        if record.subject in record_pseudonyms:
            return True
        return record.source in legacy.get(record.subject or "", ())

    found: dict[int, AuditRecord] = {}
    for subject in sorted(subjects):
        where = AuditFilter(subject=subject, kind=AuditKind.DECISION.value, outcome="permit",
                            since_ms=since_ms, until_ms=until_ms, recipient=recipient)
        for record in reader.iter_records(where):
            if is_disclosure(record) and wanted(record):
                found[record.seq] = record
    return [disclosure_from_record(found[seq]) for seq in sorted(found)]
