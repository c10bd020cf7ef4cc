"""Record linkage as a service: what the API, the compliance console and the referral
ledger call.

Reads (any process with a person index or a replica of it): open reviews with their
evidence (field, comparison level, weight; never values), a person's agency records,
`person_of(agency, agency_id)`, and the accounting of disclosures for a person.
Clerical changes (the process that links, the one writer of the index): resolve a
review, unlink a record, merge two persons, undo a change. Each is audited with its
evidence and re-keys what followed: consents, later decisions and the accounting read
the person's records as they are now.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from broker.audit.disclosures import Disclosure
from broker.audit.store import AuditFilter, AuditReader
from broker.auditor import Auditor
from broker.errors import BrokerError
from broker.linking.accounting import person_disclosures
from broker.linking.audit_entries import evidence_json
from broker.linking.linker import Linker
from broker.linking.terms import RecordRef
from linkage.errors import LinkageError, UnknownPersonError, UnknownReviewError
from linkage.events import LinkageEvent, event_kind
from linkage.index import PersonIndex, ReviewItem
from linkage.resolver import ClericalChange, Rekey
from linkage.scoring import FieldEvidence, probability_from_weight
from policy.linkage_terms import DEFAULT_ID_SYSTEM

ClericalReason = Literal["wrong_link", "duplicate", "source_correction", "review_error",
                         "other"]
"""Why a steward changed links: a closed list, so no free text (which could carry
personal data) reaches the audit log."""
CLERICAL_REASONS: tuple[str, ...] = ("wrong_link", "duplicate", "source_correction",
                                     "review_error", "other")


class LinkageReadOnlyError(BrokerError):
    """This process reads a replica of the person index; clerical changes are made by
    the process that links (the one with the router role)."""

    retriable = True


@dataclass(frozen=True, slots=True)
class ReviewView:
    """A review item as a steward sees it: records by agency id, evidence by weight."""

    review_id: str
    status: str
    reason: str
    opened_seq: int
    match_weight: float
    record: RecordRef
    person_id: str | None
    """The record's person now (provisional while the review is open)."""
    candidate_person_id: str
    candidate_records: tuple[RecordRef, ...]
    evidence: tuple[FieldEvidence, ...]
    resolved_by: str | None
    resolved_seq: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "review_id": self.review_id, "status": self.status, "reason": self.reason,
            "opened_seq": self.opened_seq, "match_weight": round(self.match_weight, 4),
            "match_probability": round(probability_from_weight(self.match_weight), 6),
            "record": self.record.to_dict(), "person_id": self.person_id,
            "candidate": {"person_id": self.candidate_person_id,
                          "records": [r.to_dict() for r in self.candidate_records]},
            "evidence": evidence_json(self.evidence), "resolved_by": self.resolved_by,
            "resolved_seq": self.resolved_seq,
        }


@dataclass(frozen=True, slots=True)
class PersonView:
    person_id: str
    records: tuple[RecordRef, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"person_id": self.person_id, "records": [r.to_dict() for r in self.records]}


@dataclass(frozen=True, slots=True)
class ChangeView:
    """What a clerical change did: its linkage events and the records it re-keyed."""

    seqs: tuple[int, ...]
    kinds: tuple[str, ...]
    rekeys: tuple[Rekey, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "seqs": list(self.seqs), "kinds": list(self.kinds),
            "rekeys": [{"record": RecordRef.of(r.record_key).to_dict(),
                        "from_person_id": r.from_person_id, "to_person_id": r.to_person_id,
                        "since_seq": r.since_seq, "at_seq": r.at_seq} for r in self.rekeys],
        }


class LinkageService:
    """One process's view of the person index, and (in the linking process) its clerk."""

    def __init__(self, index: PersonIndex, auditor: Auditor, audit: AuditReader, *,
                 linker: Linker | None = None,
                 refresh: Callable[[], None] | None = None) -> None:
        self._index = index
        self._auditor = auditor
        self._audit = audit
        self._linker = linker
        self._refresh = refresh or (lambda: None)
        self._forward: Callable[[dict[str, object]], ChangeView] | None = None

    @property
    def writable(self) -> bool:
        return self._linker is not None or self._forward is not None

    def forward_clerical_changes(self, forward: Callable[[dict[str, object]], ChangeView]
                                 ) -> None:
        """Without a linker of its own, make clerical changes through `forward` (the
        process that links: `broker.linking.forwarding`)."""
        self._forward = forward

    # -- reads -----------------------------------------------------------------------------

    def current_person(self, person_id: str) -> str:
        """Follow merge redirects to the person id in use now."""
        self._refresh()
        seen = {person_id}
        while (into := self._index.merged_into(person_id)) is not None and into not in seen:
            seen.add(into)
            person_id = into
        return person_id

    def person(self, person_id: str) -> PersonView:
        current = self.current_person(person_id)
        records = self._index.records_of(current)
        if not records:
            raise UnknownPersonError("no person with that id has records")
        return PersonView(current, tuple(RecordRef.of(r.record_key) for r in records))

    def person_of(self, agency: str, agency_id: str,
                  id_system: str = DEFAULT_ID_SYSTEM) -> str | None:
        """The person an agency's record is linked to now, or None if it is not indexed
        (for the referral ledger and the console: look up by the id a clerk has)."""
        self._refresh()
        try:
            key = RecordRef(agency, id_system, agency_id).key
        except LinkageError:
            return None
        record = self._index.record(key)
        return record.person_id if record is not None else None

    def person_for_id(self, subject_id: str, agencies: Iterable[str],
                      id_system: str = DEFAULT_ID_SYSTEM) -> str | None:
        """The person a record with this id is linked to, asking `agencies` in turn (the
        first that has such a record answers); None if none has."""
        for agency in agencies:
            person_id = self.person_of(agency, subject_id, id_system)
            if person_id is not None:
                return person_id
        return None

    def open_reviews(self, limit: int = 100) -> tuple[ReviewView, ...]:
        self._refresh()
        return tuple(self._view(item) for item in self._index.open_reviews(limit))

    def review(self, review_id: str) -> ReviewView:
        self._refresh()
        item = self._index.review(review_id)
        if item is None:
            raise UnknownReviewError("no review item with that id")
        return self._view(item)

    def _view(self, item: ReviewItem) -> ReviewView:
        record = self._index.record(item.record_key)
        candidate = self.current_person(item.candidate_person_id)
        return ReviewView(
            item.review_id, item.status, item.reason, item.opened_seq, item.match_weight,
            RecordRef.of(item.record_key), record.person_id if record else None, candidate,
            tuple(RecordRef.of(r.record_key) for r in self._index.records_of(candidate)),
            item.evidence, item.resolved_by, item.resolved_seq)

    def disclosures(self, person_id: str, *, since_ms: int | None = None,
                    until_ms: int | None = None,
                    recipient: str | None = None) -> list[Disclosure]:
        """The accounting of disclosures for the person (every record linked to it now)."""
        current = self.current_person(person_id)
        if not self._index.records_of(current):
            raise UnknownPersonError("no person with that id has records")
        return person_disclosures(self._audit, self._index, self._auditor.subject, current,
                                  since_ms=since_ms, until_ms=until_ms, recipient=recipient)

    def accounting_for_id(self, subject_id: str, agencies: Iterable[str],
                          id_system: str = DEFAULT_ID_SYSTEM, *,
                          since_ms: int | None = None, until_ms: int | None = None
                          ) -> tuple[tuple[str, ...], list[Disclosure]]:
        """The accounting for whoever the agencies know by `subject_id`: every person one
        of their records with that id is linked to, plus decisions filed under the raw
        id (event types that are not linked, and records from before linkage)."""
        persons: list[str] = []
        for agency in agencies:
            person_id = self.person_of(agency, subject_id, id_system)
            if person_id is not None and person_id not in persons:
                persons.append(person_id)
        found: dict[int, Disclosure] = {}
        for person_id in persons:
            for item in self.disclosures(person_id, since_ms=since_ms, until_ms=until_ms):
                found[item.seq] = item
        raw = AuditFilter(subject=self._auditor.subject(subject_id), since_ms=since_ms,
                          until_ms=until_ms)
        for item in self._audit.disclosures(raw):
            found.setdefault(item.seq, item)
        return tuple(persons), [found[seq] for seq in sorted(found)]

    def pseudonym(self, person_id: str) -> str:
        """The audit subject pseudonym of a person (what its decisions are filed under)."""
        return self._auditor.subject(person_id)

    # -- clerical changes ---------------------------------------------------------------

    def _writer(self) -> Linker:
        if self._linker is None:
            raise LinkageReadOnlyError("clerical changes are made by the process with the "
                                       "router role (it links persons)")
        return self._linker

    def _record(self, change: ClericalChange, by: str) -> ChangeView:
        linker = self._writer()
        entries = linker.auditor.entries(change.events, review_person=linker.review_person,
                                         actor=by, rekeys=change.rekeys)
        linker.flush()
        self._auditor.write(entries)
        return _change_view(change.events, change.rekeys)

    def resolve_review(self, review_id: str, decision: Literal["same", "different"],
                       by: str) -> ChangeView:
        if self._linker is None and self._forward is not None:
            return self._forward({"change": "resolve_review", "review_id": review_id,
                                  "decision": decision, "by": by})
        linker = self._writer()
        if self._index.review(review_id) is None:
            raise UnknownReviewError("no review item with that id")
        return self._record(linker.resolver.resolve_review(review_id, decision, by), by)

    def unlink(self, record: RecordRef, by: str, reason: ClericalReason) -> ChangeView:
        if self._linker is None and self._forward is not None:
            return self._forward({"change": "unlink", "record_key": record.key, "by": by,
                                  "reason": reason})
        return self._record(self._writer().resolver.unlink(record.key, by, reason), by)

    def merge(self, from_person_id: str, into_person_id: str, by: str,
              reason: ClericalReason) -> ChangeView:
        if self._linker is None and self._forward is not None:
            return self._forward({"change": "merge", "from_person_id": from_person_id,
                                  "into_person_id": into_person_id, "by": by,
                                  "reason": reason})
        linker = self._writer()
        return self._record(linker.resolver.merge(from_person_id, into_person_id, by, reason),
                            by)

    def undo(self, seq: int, by: str, reason: ClericalReason) -> ChangeView:
        if self._linker is None and self._forward is not None:
            return self._forward({"change": "undo", "seq": seq, "by": by, "reason": reason})
        return self._record(self._writer().resolver.undo(seq, by, reason), by)


def _change_view(events: tuple[LinkageEvent, ...], rekeys: tuple[Rekey, ...]) -> ChangeView:
    return ChangeView(tuple(e.seq for e in events), tuple(event_kind(e) for e in events),
                      rekeys)
