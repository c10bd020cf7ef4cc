"""Turns what happens in the broker into audit entries, in one place.

Every entry names a subject only by its pseudonym; field values never reach the audit
log, only field paths and reasons.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from broker.audit import AuditEntry, AuditStore, SubjectPseudonymizer
from broker.auth import Principal
from broker.metrics import Metrics


def now_ms() -> int:
    return int(time.time() * 1000)


class Auditor:
    def __init__(
        self, store: AuditStore, pseudonymizer: SubjectPseudonymizer, metrics: Metrics
    ) -> None:
        self.store = store
        self.pseudonymizer = pseudonymizer
        self._metrics = metrics

    def subject(self, subject_id: str) -> str:
        return self.pseudonymizer.pseudonym(subject_id)

    def write(self, entries: Sequence[AuditEntry]) -> None:
        if not entries:
            return
        self.store.append(entries)
        for entry in entries:
            self._metrics.audit_records.labels(str(entry.kind)).inc()

    def publish_refused(
        self, principal: Principal, event_type: str, reason: str, fields: list[str]
    ) -> None:
        self.write([AuditEntry(
            kind="publish_refused", at_ms=now_ms(), source=principal.agency,
            actor=principal.key_id, outcome="refused",
            detail={"event_type": event_type, "reason": reason, "fields": sorted(set(fields))},
        )])

    def access_refused(
        self, principal: Principal | None, method: str, route: str, status: int, why: str
    ) -> None:
        self.write([AuditEntry(
            kind="access_refused", at_ms=now_ms(),
            source=principal.agency if principal else None,
            actor=principal.key_id if principal else None, outcome="refused",
            detail={"method": method, "route": route, "status": status, "reason": why},
        )])

    def policy_loaded(self, version: str, summary: dict[str, Any], actor: str) -> None:
        self.write([AuditEntry(
            kind="policy_loaded", at_ms=now_ms(), actor=actor, outcome="loaded",
            detail={"bundle_version": version, **summary},
        )])
