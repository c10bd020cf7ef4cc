"""Turns what happens in the broker into audit entries, in one place.

Every entry names a subject only by its pseudonym; field values never reach the audit
log, only field paths and reasons.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from broker.audit import AuditAppender, AuditEntry, SubjectPseudonymizer
from broker.auth import Principal
from broker.clock import Clock, now_ms
from broker.metrics import Metrics

PSEUDONYMS_KEPT = 16_384
"""Subject pseudonyms an `Auditor` keeps; emptied when full, then filled again."""


class Auditor:
    def __init__(
        self, store: AuditAppender, pseudonymizer: SubjectPseudonymizer, metrics: Metrics,
        clock: Clock = now_ms,
    ) -> None:
        self.store = store
        self.pseudonymizer = pseudonymizer
        self._metrics = metrics
        self._clock = clock
        self._pseudonyms: dict[str, str] = {}

    def now(self) -> int:
        """The auditor's clock: milliseconds since the epoch."""
        return self._clock()

    def subject(self, subject_id: str) -> str:
        """The audit pseudonym of a subject. The router asks it for the same persons over
        and over (every event of one person, a keyed HMAC each time), so the most recent
        answers are kept in this process's memory, never anywhere else."""
        found = self._pseudonyms.get(subject_id)
        if found is None:
            found = self.pseudonymizer.pseudonym(subject_id)
            if len(self._pseudonyms) >= PSEUDONYMS_KEPT:
                self._pseudonyms.clear()
            self._pseudonyms[subject_id] = found
        return found

    def write(self, entries: Sequence[AuditEntry]) -> None:
        if not entries:
            return
        self.store.record(entries)
        # One labelled increment per kind, not per entry: a label lookup costs more than
        # the rest of a compact decision's audit row.
        for kind, count in Counter(entry.kind for entry in entries).items():
            self._metrics.audit_records.labels(str(kind)).inc(count)

    def publish_refused(
        self, principal: Principal, event_type: str, reason: str, fields: list[str]
    ) -> None:
        self.write([AuditEntry(
            kind="publish_refused", at_ms=self._clock(), source=principal.agency,
            actor=principal.key_id, outcome="refused",
            detail={"event_type": event_type, "reason": reason, "fields": sorted(set(fields))},
        )])

    def access_refused(
        self, principal: Principal | None, method: str, route: str, status: int, why: str
    ) -> None:
        self.write([AuditEntry(
            kind="access_refused", at_ms=self._clock(),
            source=principal.agency if principal else None,
            actor=principal.key_id if principal else None, outcome="refused",
            detail={"method": method, "route": route, "status": status, "reason": why},
        )])

    def explained(self, principal: Principal, subscription: str, event_type: str,
                  source: str, outcome: str) -> None:
        """A `POST /v1/explain` call: who asked about which subscription and event type,
        and what came of it; never the event, its subject or the view."""
        self.write([AuditEntry(
            kind="explain", at_ms=self._clock(), subscription=subscription,
            actor=principal.key_id, outcome=outcome,
            detail={"requested_by": principal.agency, "event_type": event_type,
                    "source": source},
        )])

    def console_action(self, principal: Principal, method: str, page: str, action: str,
                       status: int, subject: str | None = None) -> None:
        """A page opened or an action taken in the compliance console, like an API call:
        the key, the page and action, the person only by pseudonym."""
        self.write([AuditEntry(
            kind="console_action", at_ms=self._clock(), source=principal.agency,
            actor=principal.key_id, subject=subject,
            outcome="ok" if status < 400 else "refused",
            detail={"method": method, "page": page, "action": action, "status": status},
        )])

    def policy_loaded(self, version: str, summary: dict[str, Any], actor: str) -> None:
        self.write([AuditEntry(
            kind="policy_loaded", at_ms=self._clock(), actor=actor, outcome="loaded",
            detail={"bundle_version": version, **summary},
        )])

    def delivery_dead_lettered(
        self, subscription: str, recipient: str | None, subject: str | None,
        source: str | None, event_id: str, decision_id: str, dead_letter_id: int,
        attempts: int, reason: str,
        last_status: int | None,
    ) -> None:
        """A webhook delivery was given up on and moved to the dead-letter queue."""
        self.write([AuditEntry(
            kind="delivery_dead_lettered", at_ms=self._clock(), subject=subject,
            recipient=recipient, source=source, subscription=subscription,
            outcome="dead_lettered",
            event_id=event_id, decision_id=decision_id, actor="webhook-dispatcher",
            detail={"dead_letter_id": dead_letter_id, "attempts": attempts,
                    "reason": reason, "last_status": last_status},
        )])

    def deliveries_replayed(
        self, principal: Principal, subscription: str, recipient: str | None,
        replayed: Sequence[tuple[str | None, str, str, str, int]],
    ) -> None:
        """Dead letters put back for delivery: one entry per (subject, source, event_id,
        decision_id, dead_letter_id), so each shows in its subject's history."""
        at = self._clock()
        self.write([AuditEntry(
            kind="delivery_replayed", at_ms=at, subject=subject, recipient=recipient,
            source=source, subscription=subscription, outcome="replayed",
            event_id=event_id, decision_id=decision_id, actor=principal.key_id,
            detail={"dead_letter_id": dead_letter_id, "requested_by": principal.agency},
        ) for subject, source, event_id, decision_id, dead_letter_id in replayed])

    def webhook_enabled(self, principal: Principal, subscription: str, previous: str,
                        url: str | None) -> None:
        """An operator or the subscriber turned a failing or disabled webhook back on."""
        self.write([AuditEntry(
            kind="webhook_enabled", at_ms=self._clock(), source=principal.agency,
            subscription=subscription, outcome="enabled", actor=principal.key_id,
            detail={"previous_status": previous, "url": url},
        )])
