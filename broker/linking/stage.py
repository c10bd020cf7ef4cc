"""What the router asks of record linkage, per batch and per event.

`begin` follows the bundle in force, catches the birth match list up and holds the
person index's reads for the batch (`PersonIndex.hold_reads`: one look for other
writers, not one per read); `link` resolves an event's subjects; `consents` answers
consent questions for a person; `birth_matches` turns a birth into the `birth_match`
records to decide (and audits each match); `flush` counts the batch's resolutions in the
metrics, puts its linkage decisions on the linkage topic before the router writes
anything that relies on them, and releases the hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from broker.audit import AuditEntry
from broker.linking.audit_entries import BIRTH_MATCH, STREAM_ACTOR, evidence_json
from broker.linking.births import WatchListFeed, birth_match_record
from broker.linking.linker import LinkedEvent, Linker
from broker.metrics import Metrics
from linkage.identity import AgencyId
from policy import ConsentView
from policy.consent import ConsentMatcher
from policy.linkage_terms import BIRTH_EVENT_TYPE, BIRTH_MATCH_EVENT_TYPE, LinkageTerms


class LinkageStage:
    def __init__(self, linker: Linker, watch_list: WatchListFeed | None,
                 metrics: Metrics) -> None:
        self.linker = linker
        self.watch_list = watch_list
        self._metrics = metrics
        self._terms: LinkageTerms | None = None

    def begin(self, terms: LinkageTerms | None) -> None:
        self.linker.index.hold_reads()
        self._terms = terms
        self.linker.use_terms(terms)
        if terms is not None and terms.birth_match is not None \
                and self.watch_list is not None:
            self.watch_list.catch_up(terms.birth_match)

    def link(self, event_type: str, source: str, event: Mapping[str, Any]
             ) -> LinkedEvent | None:
        return self.linker.link(event_type, source, event, self._terms)

    def consents(self, view: ConsentView) -> ConsentMatcher:
        return self.linker.consents(view)

    def pseudonym(self, key_or_person: str) -> str:
        return self.linker.auditor.pseudonym(key_or_person)

    def birth_matches(self, event_type: str, source: str, birth: Mapping[str, Any],
                      linked: LinkedEvent, at_ms: int, audit: list[AuditEntry]
                      ) -> list[dict[str, Any]]:
        """The `birth_match` records one birth makes (none when it matches nothing);
        each match is audited into `audit`."""
        terms = self._terms.birth_match if self._terms is not None else None
        if (terms is None or self.watch_list is None or event_type != BIRTH_EVENT_TYPE
                or source not in terms.births_from):
            return []
        made = []
        for match, entry_subject in self.watch_list.match(terms, birth,
                                                          linked.keyed_identity):
            record = birth_match_record(match, entry_subject, birth, at_ms)
            self._metrics.birth_matches.labels(match.method).inc()
            entry_key = AgencyId(terms.watch_list_from, "watch", match.entry.entry_id).key
            audit.append(AuditEntry(
                kind=BIRTH_MATCH, at_ms=at_ms, subject=self.pseudonym(linked.subject),
                recipient=terms.watch_list_from, source=source, outcome="matched",
                event_id=record["event_id"], actor=STREAM_ACTOR,
                detail={"birth_event_id": record["birth_event_id"],
                        "event_type": BIRTH_MATCH_EVENT_TYPE,
                        "entry": self.pseudonym(entry_key), "reason": match.entry.reason,
                        "parent_role": match.role, "method": match.method,
                        "score": round(match.score, 4),
                        "evidence": evidence_json(match.evidence),
                        "record": (self.pseudonym(linked.subject_record)
                                   if linked.subject_record else None)}))
            made.append(record)
        return made

    def flush(self) -> None:
        try:
            self.linker.count()
            self.linker.flush()
        finally:
            self.linker.index.release_reads()
