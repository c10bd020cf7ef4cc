"""The consent view: every family consent and revocation, materialised for decisions.

Consents are runtime data. The router feeds every `consent` event into `apply` with the
time it was ingested; decisions ask which consents were in force at the decision time
(the ingest time of the event being decided). A grant is in force for events ingested at
or after both its `effective_at` and its own ingest time (a consent backdated on its
form does not reach back to events the broker had before it knew of the consent); a
revocation applies to every event ingested at or after the revocation. Both hold however
late the event is processed, so re-processing an event, or deciding it in another router
that has read further along the consent topic, reaches the same answer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from policy.errors import PolicyError
from policy.vocabulary import ANY_PERSONAL_TAG

_NEVER = 1 << 62
"""Stands in for 'no expiry' and 'not revoked' so the hot path compares ints only."""
SNAPSHOT_FORMAT = 1


class ConsentRecordError(PolicyError):
    """A consent event lacks a field the view needs or has one of the wrong type."""


@dataclass(frozen=True, slots=True)
class Consent:
    """One granted consent as the view holds it. Times are epoch milliseconds."""

    consent_id: str
    subject_id: str
    recipients: frozenset[str]
    """Agency ids, and `kind:<agency kind>` for every agency of a kind."""
    purposes: frozenset[str]
    categories: frozenset[str]
    """Data categories covered; `*` covers every category."""
    effective_at: int
    expires_at: int | None
    ingested_at: int
    revoked_at: int | None = None
    """Ingest time of the revocation, if one was seen."""
    form_reference: str | None = None

    def active_at(self, at_ms: int) -> bool:
        """In force at `at_ms`: effective and known, not expired, not revoked by then."""
        if not max(self.effective_at, self.ingested_at) <= at_ms:
            return False
        if self.expires_at is not None and at_ms >= self.expires_at:
            return False
        return self.revoked_at is None or at_ms < self.revoked_at

    def covers(self, categories: Iterable[str]) -> bool:
        return ANY_PERSONAL_TAG in self.categories or set(categories) <= self.categories

    def to_dict(self) -> dict[str, Any]:
        return {
            "consent_id": self.consent_id, "subject_id": self.subject_id,
            "recipients": sorted(self.recipients), "purposes": sorted(self.purposes),
            "categories": sorted(self.categories), "effective_at": self.effective_at,
            "expires_at": self.expires_at, "ingested_at": self.ingested_at,
            "form_reference": self.form_reference,
        }


class ConsentProbe(NamedTuple):
    """What one consent requirement asks of a consent, compiled for one recipient.

    `kind_token` is `kind:<recipient kind>` when a consent naming the recipient's kind is
    enough, None when the consent must name the recipient itself (42 CFR 2.31).
    """

    recipient: str
    kind_token: str | None
    purpose: str
    categories: frozenset[str]


_Hot = tuple[str, frozenset[str], frozenset[str], frozenset[str], bool, int, int]
"""A grant in the form the hot path unpacks: id, recipients, purposes, categories,
covers-every-category, in force from (the later of effective_at and the ingest time),
expires_at (or _NEVER)."""


def _hot(consent: Consent, shared: dict[frozenset[str], frozenset[str]]) -> _Hot:
    # Most consents name the same few recipient, purpose and category sets; sharing one
    # object per distinct set keeps the hot path's working set small.
    return (consent.consent_id, shared.setdefault(consent.recipients, consent.recipients),
            shared.setdefault(consent.purposes, consent.purposes),
            shared.setdefault(consent.categories, consent.categories),
            ANY_PERSONAL_TAG in consent.categories,
            max(consent.effective_at, consent.ingested_at),
            _NEVER if consent.expires_at is None else consent.expires_at)


class ConsentView:
    """Every consent grant and revocation seen so far, by subject.

    Looking up a subject with no consent (most events) is one dict miss.
    """

    def __init__(self) -> None:
        self._by_subject: dict[str, list[_Hot]] = {}
        self._consents: dict[str, Consent] = {}
        self._revoked_at: dict[str, int] = {}
        self._shared_sets: dict[frozenset[str], frozenset[str]] = {}

    def __len__(self) -> int:
        return len(self._consents)

    def _add(self, consent: Consent) -> None:
        grants = self._by_subject.setdefault(consent.subject_id, [])
        grants[:] = [g for g in grants if g[0] != consent.consent_id]
        grants.append(_hot(consent, self._shared_sets))
        previous = self._consents.get(consent.consent_id)
        if previous is not None and previous.subject_id != consent.subject_id:
            others = self._by_subject.get(previous.subject_id, [])
            others[:] = [g for g in others if g[0] != consent.consent_id]
        self._consents[consent.consent_id] = consent

    def apply(self, record: Mapping[str, Any], ingested_at_ms: int) -> None:
        """Take in one `consent` event (fastavro form or JSON form) ingested at that time.

        A GRANT with an id seen before replaces the earlier grant; a REVOKE ends the
        consent for every event ingested at or after `ingested_at_ms`. Applying the same
        event twice changes nothing.
        """
        action = _required(record, "action")
        consent_id = str(_required(record, "consent_id"))
        if action == "REVOKE":
            previous = self._revoked_at.get(consent_id)
            if previous is None or ingested_at_ms < previous:
                self._revoked_at[consent_id] = ingested_at_ms
            return
        if action != "GRANT":
            raise ConsentRecordError("consent action must be GRANT or REVOKE")
        consent = Consent(
            consent_id=consent_id,
            subject_id=str(_required(record, "subject_id")),
            recipients=_strings(record, "recipients"),
            purposes=_strings(record, "purposes"),
            categories=_strings(record, "categories"),
            effective_at=_millis(_required(record, "effective_at"), "effective_at"),
            expires_at=(None if record.get("expires_at") is None
                        else _millis(record["expires_at"], "expires_at")),
            ingested_at=ingested_at_ms,
            form_reference=record.get("form_reference"),
        )
        self._add(consent)

    def consents_for(self, subject_id: str) -> list[Consent]:
        """Every grant for a subject, with its revocation time if revoked."""
        return [
            replace(self._consents[g[0]], revoked_at=self._revoked_at.get(g[0]))
            for g in self._by_subject.get(subject_id, ())
        ]

    def active_for(self, subject_id: str, at_ms: int) -> list[Consent]:
        """The subject's consents in force at `at_ms`."""
        return [c for c in self.consents_for(subject_id) if c.active_at(at_ms)]

    def match(
        self, subject_id: str, at_ms: int, probes: Sequence[ConsentProbe]
    ) -> tuple[int, tuple[str, ...]]:
        """Which probes one in-force consent satisfies: a bitmask (bit i for probes[i])
        and the ids of the consents relied on, in probe order without repeats."""
        grants = self._by_subject.get(subject_id)
        if not grants:
            return 0, ()
        revoked = self._revoked_at
        if revoked:
            live = [g for g in grants
                    if g[5] <= at_ms < g[6] and revoked.get(g[0], _NEVER) > at_ms]
        else:
            live = [g for g in grants if g[5] <= at_ms < g[6]]
        if not live:
            return 0, ()
        mask = 0
        bit = 1
        used: list[str] = []
        for recipient, kind, purpose, wanted in probes:
            for consent_id, recipients, purposes, categories, every, _, _ in live:
                if (purpose in purposes
                        and (recipient in recipients
                             or (kind is not None and kind in recipients))
                        and (every or wanted <= categories)):
                    mask |= bit
                    if consent_id not in used:
                        used.append(consent_id)
                    break
            bit <<= 1
        return mask, tuple(used)

    # -- persistence -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready snapshot; `from_dict` restores an identical view."""
        return {
            "format": SNAPSHOT_FORMAT,
            "grants": [self._consents[g[0]].to_dict() for grants in self._by_subject.values()
                       for g in grants],
            "revoked_at": dict(sorted(self._revoked_at.items())),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConsentView:
        if data.get("format") != SNAPSHOT_FORMAT:
            raise ConsentRecordError(f"unsupported consent snapshot format "
                                     f"{data.get('format')!r}; expected {SNAPSHOT_FORMAT}")
        view = cls()
        try:
            for item in data.get("grants", []):
                consent = Consent(
                    consent_id=str(item["consent_id"]), subject_id=str(item["subject_id"]),
                    recipients=frozenset(item["recipients"]),
                    purposes=frozenset(item["purposes"]),
                    categories=frozenset(item["categories"]),
                    effective_at=int(item["effective_at"]),
                    expires_at=None if item["expires_at"] is None else int(item["expires_at"]),
                    ingested_at=int(item["ingested_at"]),
                    form_reference=item.get("form_reference"),
                )
                view._add(consent)
            view._revoked_at = {str(k): int(v) for k, v in data.get("revoked_at", {}).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise ConsentRecordError(f"consent snapshot is malformed: {exc!r}") from exc
        return view


def _required(record: Mapping[str, Any], name: str) -> Any:
    value = record.get(name)
    if value is None:
        raise ConsentRecordError(f"consent record has no '{name}'")
    return value


def _strings(record: Mapping[str, Any], name: str) -> frozenset[str]:
    value = record.get(name) or []
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise ConsentRecordError(f"consent '{name}' must be a list of strings")
    return frozenset(value)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)


def _millis(value: Any, name: str) -> int:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return (value - _EPOCH) // _MS
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ConsentRecordError(f"consent '{name}' must be a timestamp")
