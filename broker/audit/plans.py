"""Decision plans stored once: compact decision records and their expansion.

A decision's explanation (every field's fate and why, the released, transformed and
withheld lists, obligations, legal basis, purpose, bundle version) follows from the
compiled `DecisionPlan` it was decided by. The audit log keeps each plan once, as a
`decision_plan` record in the same hash chain (its detail is the plan's canonical JSON,
`DecisionPlan.canonical_json`), and each `decision` record carries only what varies per
event, with the plan named by the SHA-256 (hex) of that detail:

    {"consent_ids":[…],"decision_id":"…","decision_time_ms":…,"event_id":"…",
     "plan":"<sha256 hex>"[,"subject_record":"sp_…"]}

The plan's detail merged with that (less `plan`) is exactly the detail a decision
record had before plans were stored apart. Readers get it from `DecisionDetail`, which
reads as the full decision while its `text` stays the compact detail the chain hashes;
a decision record written in the full form is read as it is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from broker.audit.records import AuditEntry, CanonicalDetail, StoredRow
from broker.errors import AuditError

PLAN_KIND = "decision_plan"
"""The kind of the record that holds one plan."""
DECISION_KIND = "decision"
PLAN_KEY = "plan"
_PLAN_MARK = ',"plan":"'
_DIGEST_CHARS = 64


def plan_digest(text: str) -> str:
    """A plan's identity: SHA-256 (hex) of its detail's canonical JSON in UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def plan_reference(kind: str, detail_text: str) -> str | None:
    """The digest a decision record's detail names as its plan; None for a decision in
    the full form (or any other kind). Reads the compact layout without parsing it: in
    canonical JSON `,"plan":"` can only be the top-level key (quotes inside strings are
    escaped, and a full decision has no `plan` key)."""
    if kind != DECISION_KIND:
        return None
    at = detail_text.find(_PLAN_MARK)
    if at < 0:
        return None
    start = at + len(_PLAN_MARK)
    digest = detail_text[start:start + _DIGEST_CHARS]
    if len(digest) != _DIGEST_CHARS or detail_text[start + _DIGEST_CHARS:][:1] != '"':
        return ""  # names no well-formed digest: no plan matches it
    return digest


def plan_row(seq: int, entry: AuditEntry, detail: str, prev_hash: bytes) -> StoredRow:
    """The `decision_plan` record written before `entry`, the first decision naming the
    plan, in `COLUMNS` order without its hash: the decision's time, recipient, source,
    agreement and subscription, no subject, outcome, ids or actor; `detail` the plan."""
    return (seq, PLAN_KIND, entry.at_ms, None, entry.recipient, entry.source,
            entry.agreement, entry.subscription, None, None, None, None, detail, prev_hash)


def expand_decision(compact: Mapping[str, Any], plan: Mapping[str, Any]) -> dict[str, Any]:
    """The full decision detail: the plan's detail with the per-event keys of `compact`
    (all but `plan`) added."""
    return {**plan, **{key: value for key, value in compact.items() if key != PLAN_KEY}}


class DecisionDetail(CanonicalDetail):
    """A compact decision's detail: `text` is the compact JSON (what is hashed, stored
    and exported); read as a mapping, it is the full decision (`expand_decision`).

    `plan_text` is the plan's canonical JSON and `plan_digest` its SHA-256 hex, which the
    compact text names. The router hands entries over in this form; the stores write the
    plan record the first time their chain needs it, and give records back in it. A
    record whose plan the store cannot find has no `plan_text`: it still exports (its
    text is what was hashed), and reading it as a mapping raises `AuditError(missing)`.
    """

    __slots__ = ("_missing", "plan_digest", "plan_text")

    def __init__(self, text: str, plan_digest: str, plan_text: str | None,
                 missing: str = "a decision's plan is missing") -> None:
        super().__init__(text)
        self.plan_digest = plan_digest
        self.plan_text = plan_text
        self._missing = missing

    def _value(self) -> dict[str, Any]:
        if self._parsed is None:
            if self.plan_text is None:
                raise AuditError(self._missing)
            self._parsed = expand_decision(json.loads(self.text), json.loads(self.plan_text))
        return self._parsed

    def __repr__(self) -> str:
        return f"DecisionDetail({self.text!r}, plan={self.plan_digest[:12]}…)"


def missing_plan(digest: str) -> str:
    """How verifiers name a compact decision whose plan reference fails."""
    return (f"its decision plan ({digest[:16] or 'malformed'}…) is not a plan record "
            "earlier in the chain (removed, or altered)")


class PlanWitness:
    """For verifiers: which plans each chain holds so far, walking it in order."""

    def __init__(self) -> None:
        self._held: dict[str, set[str]] = {}

    def check(self, chain: str, kind: str, detail: bytes) -> str | None:
        """Take in one sound record (its detail's canonical UTF-8); the problem with its
        plan reference, or None."""
        if kind == PLAN_KIND:
            self._held.setdefault(chain, set()).add(hashlib.sha256(detail).hexdigest())
            return None
        if kind != DECISION_KIND or _PLAN_MARK.encode() not in detail:
            return None
        digest = plan_reference(kind, detail.decode("utf-8", "replace"))
        if digest is None or digest in self._held.get(chain, ()):
            return None
        return missing_plan(digest)
