"""Linkage decisions as audit entries: every link, review, unlink and merge, with the
evidence (field, comparison level, weight) and never a value.

Persons and records are named by their subject pseudonyms: the audit `subject` is the
person the change is about, `detail.record` the pseudonym of the agency record key.
`record_added` events carry normalised identifying values and are never audited.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from broker.audit import AuditEntry
from broker.auditor import Auditor
from linkage.events import (
    LinkageEvent,
    Linked,
    Merged,
    RecordAdded,
    ReviewOpened,
    ReviewResolved,
    Unlinked,
)
from linkage.resolver import Rekey
from linkage.scoring import FieldEvidence, probability_from_weight

LINKED = "linkage_linked"
REVIEW_OPENED = "linkage_review_opened"
REVIEW_RESOLVED = "linkage_review_resolved"
UNLINKED = "linkage_unlinked"
MERGED = "linkage_merged"
BIRTH_MATCH = "birth_match"
LINKAGE_KINDS = (LINKED, REVIEW_OPENED, REVIEW_RESOLVED, UNLINKED, MERGED)
STREAM_ACTOR = "linker"
"""The actor of what the linker decides on its own (clerical changes name the key)."""

ReviewPerson = Callable[[str], "tuple[str, str] | None"]
"""Review id -> (record key, its person id now), for naming a review decision's subject."""


def _ms(at: dt.datetime) -> int:
    return int(at.timestamp() * 1000)


def evidence_json(evidence: Iterable[FieldEvidence]) -> list[dict[str, Any]]:
    return [{"field": e.field, "level": e.level, "weight": round(e.weight, 4)}
            for e in evidence]


def _weight(weight: float | None) -> dict[str, Any]:
    if weight is None:
        return {"match_weight": None, "match_probability": None}
    return {"match_weight": round(weight, 4),
            "match_probability": round(probability_from_weight(weight), 6)}


class LinkageAuditor:
    """Builds the audit entries of linkage events (the caller writes them)."""

    def __init__(self, auditor: Auditor) -> None:
        self._auditor = auditor

    def pseudonym(self, key_or_person: str) -> str:
        return self._auditor.subject(key_or_person)

    def entries(self, events: Sequence[LinkageEvent], *, review_person: ReviewPerson,
                actor: str = STREAM_ACTOR, event_id: str | None = None,
                source: str | None = None, rekeys: Sequence[Rekey] = ()
                ) -> list[AuditEntry]:
        out: list[AuditEntry] = []
        moved = {r.record_key: r for r in rekeys}
        for event in events:
            entry = self._entry(event, review_person, actor, event_id, source, moved)
            if entry is not None:
                out.append(entry)
        return out

    def _entry(self, event: LinkageEvent, review_person: ReviewPerson, actor: str,
               event_id: str | None, source: str | None, moved: dict[str, Rekey]
               ) -> AuditEntry | None:
        p = self.pseudonym
        base: dict[str, Any] = {"seq": event.seq}
        if isinstance(event, RecordAdded):
            return None
        if isinstance(event, Linked):
            detail = {**base, "record": p(event.record_key), "method": event.method,
                      **_weight(event.match_weight),
                      "evidence": evidence_json(event.evidence), "by": event.by,
                      **self._rekeyed((event.record_key,), moved)}
            return AuditEntry(kind=LINKED, at_ms=_ms(event.at), subject=p(event.person_id),
                              source=source, outcome=event.method, event_id=event_id,
                              actor=event.by or actor, detail=detail)
        if isinstance(event, ReviewOpened):
            found = review_person(event.review_id)
            detail = {**base, "review_id": event.review_id, "record": p(event.record_key),
                      "candidate": p(event.candidate_person_id), **_weight(event.match_weight),
                      "evidence": evidence_json(event.evidence), "reason": event.reason}
            return AuditEntry(kind=REVIEW_OPENED, at_ms=_ms(event.at),
                              subject=p(found[1]) if found else None, source=source,
                              outcome="open", event_id=event_id, actor=actor, detail=detail)
        if isinstance(event, ReviewResolved):
            found = review_person(event.review_id)
            detail = {**base, "review_id": event.review_id, "decision": event.decision,
                      "record": p(found[0]) if found else None}
            return AuditEntry(kind=REVIEW_RESOLVED, at_ms=_ms(event.at),
                              subject=p(found[1]) if found else None,
                              outcome=event.decision, actor=event.by, detail=detail)
        if isinstance(event, Unlinked):
            detail = {**base, "record": p(event.record_key), "from": p(event.from_person_id),
                      "to": p(event.to_person_id), "reason": event.reason,
                      **self._rekeyed((event.record_key,), moved)}
            return AuditEntry(kind=UNLINKED, at_ms=_ms(event.at),
                              subject=p(event.from_person_id), outcome="unlinked",
                              actor=event.by, detail=detail)
        if isinstance(event, Merged):
            detail = {**base, "from": p(event.from_person_id), "into": p(event.into_person_id),
                      "records": [p(k) for k in event.record_keys], "reason": event.reason,
                      **self._rekeyed(event.record_keys, moved)}
            return AuditEntry(kind=MERGED, at_ms=_ms(event.at),
                              subject=p(event.into_person_id), outcome="merged",
                              actor=event.by, detail=detail)
        return None

    def _rekeyed(self, keys: Iterable[str], moved: dict[str, Rekey]) -> dict[str, Any]:
        """What a clerical change re-keyed: from which seq on the record's events belong
        to another person (consents, later decisions and the accounting follow)."""
        found = [moved[k] for k in keys if k in moved]
        if not found:
            return {}
        p = self.pseudonym
        return {"rekeys": [{"record": p(r.record_key), "from": p(r.from_person_id),
                            "to": p(r.to_person_id), "since_seq": r.since_seq,
                            "at_seq": r.at_seq} for r in found]}
