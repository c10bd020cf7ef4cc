"""The publish-time check on consent events, and their `consent_change` audit records.

The publisher calls `check` for every `consent` event before anything is appended: the
recording agency is the authenticated publisher (`Principal.agency`), never a field of
the event. A grant may name as discloser only the recorder itself or agencies its
`consents.records_for` covers; a revocation must name a consent the same agency recorded
for the same subject (an administrator's revocation on a recorder's behalf goes through
`policy.consent_recording.check_revoke` with `requester_is_admin`, and is then recorded
under the recorder, with the administrator as actor). Anything else refuses the whole
request with 403 and writes a `consent_change` record with outcome `refused`; an
accepted grant or revocation writes one with outcome `granted` or `revoked` once it is
durable (`accepted`).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from broker.audit import AuditEntry
from broker.auditor import Auditor
from broker.auth import Principal
from broker.consent_feed import ConsentFeed
from broker.errors import HandoffError
from policy.consent import ConsentKey
from policy.consent_recording import (
    ConsentChangeCode,
    RecordingVerdict,
    check_grant,
    check_revoke,
)
from policy.model import Agency
from schemas.errors import RecordValidationError

log = logging.getLogger("handoff.consent")
_PENDING_LIMIT = 10_000


class ConsentRefusedError(RecordValidationError):
    """The publishing agency may not record (or revoke) this consent. Answered with 403,
    naming the fields at fault."""


@dataclass(frozen=True, slots=True)
class ConsentChangeRecord:
    """One checked consent event, ready to audit. Holds the subject id only to
    pseudonymise it; nothing here is logged."""

    event_id: str
    subject_id: str
    consent_id: str
    action: str
    verdict: RecordingVerdict
    terms: Mapping[str, Any]
    """recipients, disclosers, purposes, categories, effective_at, expires_at (grants)."""


class ConsentRecording:
    """Checks who records and revokes consents, at publish time, and audits it."""

    def __init__(self, consents: ConsentFeed, auditor: Auditor) -> None:
        self._consents = consents
        self._auditor = auditor
        self._pending_lock = threading.Lock()
        self._pending: dict[ConsentKey, None] = {}
        """Grants checked lately, perhaps not yet durable (a connector publishes a grant
        and its revocation in one batch, one event at a time). Only the recorder's own
        keys: a revocation found here can only end its own grant."""

    def check(self, principal: Principal, records: Sequence[Mapping[str, Any]],
              batch: bool, agencies: Mapping[str, Agency]
              ) -> tuple[ConsentChangeRecord, ...]:
        """Verdicts for every consent event of one request, under `agencies` (those of
        the policy the publisher decides the request with); raises `ConsentRefusedError`
        (after auditing each refusal) unless every one may be recorded."""
        recorder = agencies.get(principal.agency)
        granted_here: set[ConsentKey] = set()
        caught_up = False
        changes: list[ConsentChangeRecord] = []
        for record in records:
            key = ConsentKey(principal.agency, str(record["subject_id"]),
                             str(record["consent_id"]))
            if record.get("action") == "REVOKE":
                with self._pending_lock:
                    known = key in granted_here or key in self._pending
                if not known:
                    if not caught_up:
                        # A grant accepted before this request is durable, so reading the
                        # consent topic to its end finds it.
                        self._consents.catch_up()
                        caught_up = True
                    known = self._consents.view.grant(key) is not None
                verdict = check_revoke(key, known, principal.agency)
            else:
                verdict = check_grant(recorder, record, agencies)
                if verdict.allowed:
                    granted_here.add(key)
            changes.append(ConsentChangeRecord(
                str(record["event_id"]), key.subject_id, key.consent_id,
                str(record.get("action")), verdict,
                {} if verdict.code == ConsentChangeCode.INVALID else _terms(record)))
        refused = [(i, c) for i, c in enumerate(changes) if not c.verdict.allowed]
        if not refused:
            with self._pending_lock:
                for key in granted_here:
                    self._pending[key] = None
                while len(self._pending) > _PENDING_LIMIT:
                    del self._pending[next(iter(self._pending))]
        if refused:
            self._write(principal, [c for _, c in refused])
            raise ConsentRefusedError([
                (f"events[{i}].{f}" if batch else f, c.verdict.reason)
                for i, c in refused for f in (c.verdict.fields or ("",))])
        return tuple(changes)

    def accepted(self, principal: Principal, changes: Sequence[ConsentChangeRecord],
                 new_ids: Collection[str]) -> None:
        """Audit the grants and revocations of a request now durable. `new_ids`: the
        event ids the log did not already hold (resubmitting one records nothing new)."""
        try:
            self._write(principal, [c for c in changes if c.event_id in new_ids])
        except HandoffError:
            # The consent is durable and in force; only its audit record is missing.
            log.exception("could not audit %d accepted consent change(s)", len(changes))

    def _write(self, principal: Principal, changes: Sequence[ConsentChangeRecord]) -> None:
        at = self._auditor.now()
        self._auditor.write([AuditEntry(
            kind="consent_change", at_ms=at, subject=self._auditor.subject(c.subject_id),
            source=principal.agency, outcome=_outcome(c), event_id=c.event_id,
            actor=principal.key_id,
            detail={"consent_id": c.consent_id, "action": c.action,
                    "recorded_by": principal.agency, "code": str(c.verdict.code),
                    "reason": c.verdict.reason, "fields": list(c.verdict.fields),
                    **c.terms},
        ) for c in changes])


def _outcome(change: ConsentChangeRecord) -> str:
    if not change.verdict.allowed:
        return "refused"
    return "revoked" if change.action == "REVOKE" else "granted"


def _terms(record: Mapping[str, Any]) -> dict[str, Any]:
    """What a grant says, for its audit record. Only vocabulary and agency ids: the
    recipients, disclosers and purposes are well-formed tokens (a grant with a malformed
    one is refused without its terms), the categories tags."""
    if record.get("action") != "GRANT":
        return {}
    return {
        "recipients": sorted(map(str, record.get("recipients") or ())),
        "disclosers": sorted(map(str, record.get("disclosers") or ())),
        "purposes": sorted(map(str, record.get("purposes") or ())),
        "categories": sorted(map(str, record.get("categories") or ())),
        "effective_at": _millis(record.get("effective_at")),
        "expires_at": _millis(record.get("expires_at")),
    }


def _millis(value: Any) -> int | None:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return int(value.timestamp() * 1000)
    return value if isinstance(value, int) else None
