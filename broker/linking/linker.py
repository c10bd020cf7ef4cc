"""The linker: resolves each event's subjects to Handoff person ids before policy runs.

It runs in the router process and is the single writer of the person index (the
`SqlitePersonIndex` in the data directory; on Kafka also the `_linkage` topic, see
`journal`). For every subject `linkage.yaml` names for the event type it builds the
publishing agency's identity record and asks the `PersonResolver`: an agency id seen
before, then exact name and date of birth, then the probabilistic model, and decides
link, review (a provisional person until a steward decides) or new person. A subject
named only by its agency id (a consent) is looked up, never created.

A subject whose identity is unusable (too few fields) and whose agency id is unknown
keeps its record key as its subject: decided, audited and pseudonymised per agency
record, and never merged with anyone until the agency sends enough to link it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter as CounterChild

from broker.audit import AuditEntry
from broker.frozen_init import quick_init
from broker.linking.audit_entries import LinkageAuditor
from broker.linking.consents import PersonConsents
from broker.linking.journal import LinkageJournal
from broker.linking.known import KnownRecords
from broker.linking.terms import consent_id_system, subject_mapping, thresholds_of
from broker.metrics import Metrics, observe_counted
from linkage.errors import IdentityError
from linkage.events import LinkageEvent
from linkage.identity import AgencyId, IdentityRecord
from linkage.index import PersonIndex
from linkage.resolver import PersonResolver
from linkage.subjects import (
    SubjectMapping,
    identity_from_values,
    identity_values,
    value_at,
)
from policy import ConsentView
from policy.linkage_terms import LinkageSubject, LinkageTerms


@quick_init
@dataclass(frozen=True, slots=True)
class LinkedEvent:
    """Who one event is about, as the linker resolved it."""

    subject: str
    """The person id that keys the event (consents, audit subject); the record key when
    the subject could not be linked."""
    subject_record: str | None
    """The record key of the subject that keys the event."""
    linked_ids: Mapping[str, str]
    """Agency id field -> the person id (or record key) it resolved to."""
    audit: tuple[AuditEntry, ...] = ()
    """The linkage decisions this event caused, as audit entries."""
    keyed_identity: IdentityRecord | None = None
    """The keyed subject's identity as the event gave it (for birth match)."""
    outcomes: tuple[str, ...] = field(default=())


def review_person_of(index: PersonIndex) -> Callable[[str], tuple[str, str] | None]:
    """Review id -> (its record key, the record's person now), for audit subjects."""
    def find(review_id: str) -> tuple[str, str] | None:
        item = index.review(review_id)
        if item is None:
            return None
        record = index.record(item.record_key)
        return (item.record_key, record.person_id) if record and record.person_id else None
    return find


class Linker:
    """Resolves events' subjects; the one writer of its person index."""

    def __init__(self, index: PersonIndex, resolver: PersonResolver,
                 auditor: LinkageAuditor, metrics: Metrics,
                 journal: LinkageJournal | None = None) -> None:
        self.index = index
        self.resolver = resolver
        self.auditor = auditor
        self._metrics = metrics
        self._journal = journal
        self._terms: LinkageTerms | None = None
        self._lock = threading.Lock()
        # What depends only on the terms in force, worked out once per bundle rather
        # than once per event: the consents' numbering scheme, each subject's mapping
        # (by the identity of its LinkageSubject, which the terms hold), and the
        # resolution counter per (event type, outcome).
        self._consent_system = consent_id_system(None)
        self._mappings: dict[int, tuple[LinkageSubject, SubjectMapping]] = {}
        self._resolutions: dict[tuple[str, str], CounterChild] = {}
        # Resolutions and linking times since the router last counted them (`count`).
        self._resolved_since: Tally[tuple[str, str]] = Tally()
        self._seconds_since: list[float] = []
        # Records linked by agency id, with the values they were linked from: the same
        # values again need neither an identity built nor a resolution (`known`).
        self._known = KnownRecords(index)

    def use_terms(self, terms: LinkageTerms | None) -> None:
        """Follow the bundle in force (thresholds change with a reload)."""
        if terms is self._terms:
            return
        self._terms = terms
        self._consent_system = consent_id_system(terms)
        self._mappings = {}
        self._known.clear()
        if terms is not None:
            self.resolver.thresholds = thresholds_of(terms)

    def consents(self, view: ConsentView) -> PersonConsents:
        return PersonConsents(view, self.index, self._consent_system)

    def _mapping(self, subject: LinkageSubject) -> SubjectMapping:
        held = self._mappings.get(id(subject))
        if held is None or held[0] is not subject:
            held = self._mappings[id(subject)] = (subject, subject_mapping(subject))
        return held[1]

    def count(self) -> None:
        """Put the resolutions and linking times since the last call into the metrics.
        The router calls it once a batch, from the thread that links: per event, the
        counter and the histogram cost two locked increments and a bucket search."""
        for key, resolved in self._resolved_since.items():
            counter = self._resolutions.get(key)
            if counter is None:
                counter = self._resolutions[key] = \
                    self._metrics.linkage_resolutions.labels(*key)
            counter.inc(resolved)
        self._resolved_since.clear()
        if self._seconds_since:
            observe_counted(self._metrics.linkage_seconds, Tally(self._seconds_since))
            self._seconds_since.clear()

    def review_person(self, review_id: str) -> tuple[str, str] | None:
        return review_person_of(self.index)(review_id)

    # -- the stream -----------------------------------------------------------------------

    def link(self, event_type: str, source: str, event: Mapping[str, Any],
             terms: LinkageTerms | None) -> LinkedEvent | None:
        """Resolve the subjects of one decoded event; None when its type is not linked."""
        self.use_terms(terms)
        subjects = terms.subjects_of(event_type) if terms is not None else ()
        if not subjects:
            return None
        started = time.perf_counter()
        ids: dict[str, str] = {}
        events: list[LinkageEvent] = []
        outcomes: list[str] = []
        keyed: LinkageSubject | None = None
        keyed_identity: IdentityRecord | None = None
        keyed_key = ""
        for subject in subjects:
            value = value_at(event, subject.id_field)
            if value is None or value == "":
                outcomes.append("unresolved")
                continue
            try:
                agency_id = AgencyId(source, subject.id_system, str(value))
            except IdentityError:
                outcomes.append("unresolved")
                continue
            key = agency_id.key
            person, outcome, identity = self._resolve(event, agency_id, subject, key, events)
            ids[subject.id_field] = person or key
            outcomes.append(outcome)
            self._resolved_since[(event_type, outcome)] += 1
            if subject.keys_event:
                keyed, keyed_identity, keyed_key = subject, identity, key
        self._seconds_since.append(time.perf_counter() - started)
        event_id = str(event.get("event_id"))
        audit = tuple(self.auditor.entries(events, review_person=self.review_person,
                                           event_id=event_id, source=source))
        if keyed is None or keyed.id_field not in ids:
            subject_id = str(event.get("subject_id"))
            return LinkedEvent(subject_id, None, ids, audit, None, tuple(outcomes))
        return LinkedEvent(ids[keyed.id_field], keyed_key, ids, audit, keyed_identity,
                           tuple(outcomes))

    def _resolve(self, event: Mapping[str, Any], agency_id: AgencyId,
                 subject: LinkageSubject, key: str, events: list[LinkageEvent]
                 ) -> tuple[str | None, str, IdentityRecord | None]:
        if not subject.lookup_only:
            mapping = self._mapping(subject)
            values = identity_values(event, mapping)
            known = self._known.person(key, mapping, values)
            if known is not None:
                return known[0], "agency_id", known[1]
            try:
                identity = identity_from_values(values, agency_id, mapping)
                resolution = self.resolver.resolve(identity)
            except IdentityError:
                pass
            else:
                events.extend(resolution.events)
                if resolution.method == "agency_id":
                    if not resolution.events:
                        self._known.keep(key, mapping, values, identity)
                    outcome = "agency_id"
                else:
                    outcome = resolution.outcome
                return resolution.person_id, outcome, identity
        record = self.index.record(key)
        if record is not None and record.person_id is not None:
            return record.person_id, "lookup", None
        return None, "unresolved", None

    def flush(self) -> None:
        """Append what the index decided since the last flush to the linkage topic
        (Kafka), before anything that relies on it is audited or delivered."""
        if self._journal is not None:
            with self._lock:
                self._journal.flush(self.index)
