"""The consent view: every family consent and revocation, materialised for decisions.

Consents are runtime data. The broker feeds every `consent` event into `apply` with the
time it was ingested and the agency that recorded it (the publishing agency the broker
authenticated, never a field of the event); decisions ask which consents were in force
at the decision time (the ingest time of the event being decided).

A consent is identified by its recording agency, its subject and its `consent_id`
(`ConsentKey`): a grant another agency records, or one for another person, never replaces
it whatever id it carries, and a revocation only ever reaches the recording agency's own
consents. A grant is in force for events ingested at or after both its `effective_at` and
its own ingest time (a consent backdated on its form does not reach back to events the
broker had before it knew of the consent); a revocation applies to every event ingested
at or after the revocation. Both hold however late the event is processed, so
re-processing an event, or deciding it in another router that has read further along the
consent topic, reaches the same answer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, NamedTuple, Protocol

from policy.errors import PolicyError
from policy.vocabulary import ANY_PERSONAL_TAG, TPO_PURPOSE, TPO_PURPOSES

_NEVER = 1 << 62
"""Stands in for 'no expiry' and 'not revoked' so the hot path compares ints only."""
SNAPSHOT_FORMAT = 2


class ConsentRecordError(PolicyError):
    """A consent event lacks a field the view needs or has one of the wrong type."""


class ConsentKey(NamedTuple):
    """What identifies a consent: who recorded it, whose it is, and its id."""

    recorded_by: str
    subject_id: str
    consent_id: str

    def label(self) -> str:
        """`<recording agency>/<consent id>`, as decisions list the consents relied on
        (agency ids never contain `/`, so the label splits unambiguously)."""
        return f"{self.recorded_by}/{self.consent_id}"


@dataclass(frozen=True, slots=True)
class Consent:
    """One granted consent as the view holds it. Times are epoch milliseconds."""

    consent_id: str
    subject_id: str
    recorded_by: str
    """The agency that published the grant (the broker's ingest source)."""
    recipients: frozenset[str]
    """Agency ids, and `kind:<agency kind>` for every agency of a kind."""
    disclosers: frozenset[str]
    """Who may disclose: agency ids, `kind:<kind>`, `*` for any holder. A grant naming
    none names the recording agency."""
    purposes: frozenset[str]
    categories: frozenset[str]
    """Data categories covered; `*` covers every category."""
    effective_at: int
    expires_at: int | None
    ingested_at: int
    revoked_at: int | None = None
    """Ingest time of the revocation, if one was seen."""
    form_reference: str | None = None

    @property
    def key(self) -> ConsentKey:
        return ConsentKey(self.recorded_by, self.subject_id, self.consent_id)

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
            "recorded_by": self.recorded_by, "recipients": sorted(self.recipients),
            "disclosers": sorted(self.disclosers), "purposes": sorted(self.purposes),
            "categories": sorted(self.categories), "effective_at": self.effective_at,
            "expires_at": self.expires_at, "ingested_at": self.ingested_at,
            "form_reference": self.form_reference,
        }


class ConsentMatcher(Protocol):
    """What a decision asks of consents: which probes a consent in force satisfies for
    a subject. `ConsentView` answers for an agency's subject id; the broker answers for
    a linked person (every agency record the person is known by) the same way."""

    def match(self, subject_id: str, at_ms: int, probes: Sequence[ConsentProbe]
              ) -> tuple[int, tuple[str, ...]]: ...


ChangeKind = Literal["granted", "replaced", "revoked", "revoked_unknown"]


@dataclass(frozen=True, slots=True)
class ConsentChange:
    """What applying one consent event did to the view."""

    kind: ChangeKind
    """`revoked_unknown`: a revocation of a consent the view does not hold (yet); it is
    kept, so a grant arriving later is revoked from the revocation's time."""
    key: ConsentKey
    consent: Consent | None = None
    """The grant, for `granted` and `replaced`."""


class ConsentProbe(NamedTuple):
    """What one consent requirement asks of a consent, compiled for one route.

    `kind_token` is `kind:<recipient kind>` when a consent naming the recipient's kind
    (a class of recipients) is enough, None when it must name the recipient itself.
    `purposes`: the purpose tokens that satisfy (the agreement's purpose, and `tpo` for
    treatment, payment and health care operations). `disclosers`: the discloser tokens
    that satisfy (the source, its kind, `*`, as the requirement allows). `recorders`:
    whose recorded consents the source relies on; None for any.
    """

    recipient: str
    kind_token: str | None
    purposes: frozenset[str]
    categories: frozenset[str]
    disclosers: frozenset[str]
    recorders: frozenset[str] | None


def purpose_tokens(purpose: str) -> frozenset[str]:
    """The consent purposes that cover an agreement's purpose."""
    return frozenset({purpose, TPO_PURPOSE}) if purpose in TPO_PURPOSES \
        else frozenset({purpose})


_Hot = tuple[ConsentKey, str, str, frozenset[str], frozenset[str], frozenset[str], bool,
             frozenset[str], int, int]
"""A grant in the form the hot path unpacks: key, label, recorded_by, recipients,
purposes, categories, covers-every-category, disclosers, in force from (the later of
effective_at and the ingest time), expires_at (or _NEVER)."""


def _hot(consent: Consent, shared: dict[frozenset[str], frozenset[str]]) -> _Hot:
    # Most consents name the same few recipient, purpose and category sets; sharing one
    # object per distinct set keeps the hot path's working set small.
    key = consent.key
    return (key, key.label(), consent.recorded_by,
            shared.setdefault(consent.recipients, consent.recipients),
            shared.setdefault(consent.purposes, consent.purposes),
            shared.setdefault(consent.categories, consent.categories),
            ANY_PERSONAL_TAG in consent.categories,
            shared.setdefault(consent.disclosers, consent.disclosers),
            max(consent.effective_at, consent.ingested_at),
            _NEVER if consent.expires_at is None else consent.expires_at)


class ConsentView:
    """Every consent grant and revocation seen so far, by subject.

    Looking up a subject with no consent (most events) is one dict miss.
    """

    def __init__(self) -> None:
        self._by_subject: dict[str, list[_Hot]] = {}
        self._consents: dict[ConsentKey, Consent] = {}
        self._revoked_at: dict[ConsentKey, int] = {}
        self._shared_sets: dict[frozenset[str], frozenset[str]] = {}

    def __len__(self) -> int:
        return len(self._consents)

    def _add(self, consent: Consent) -> bool:
        """Hold a grant; True when it replaced the recorder's earlier grant."""
        key = consent.key
        grants = self._by_subject.setdefault(consent.subject_id, [])
        before = len(grants)
        grants[:] = [g for g in grants if g[0] != key]
        grants.append(_hot(consent, self._shared_sets))
        self._consents[consent.key] = consent
        return len(grants) == before

    def apply(self, record: Mapping[str, Any], ingested_at_ms: int, recorded_by: str
              ) -> ConsentChange:
        """Take in one `consent` event (fastavro form or JSON form) that `recorded_by`
        published, ingested at that time.

        A GRANT with an id the same agency used before for the same subject replaces the
        earlier grant; a REVOKE ends the agency's own consent with that id for every
        event ingested at or after `ingested_at_ms`. Applying the same event twice changes
        nothing.
        """
        if not recorded_by:
            raise ConsentRecordError("a consent needs the agency that recorded it")
        action = _required(record, "action")
        key = ConsentKey(recorded_by, str(_required(record, "subject_id")),
                         str(_required(record, "consent_id")))
        if action == "REVOKE":
            return self.revoke(key, ingested_at_ms)
        if action != "GRANT":
            raise ConsentRecordError("consent action must be GRANT or REVOKE")
        consent = Consent(
            consent_id=key.consent_id,
            subject_id=key.subject_id,
            recorded_by=recorded_by,
            recipients=_strings(record, "recipients"),
            disclosers=_strings(record, "disclosers") or frozenset({recorded_by}),
            purposes=_strings(record, "purposes"),
            categories=_strings(record, "categories"),
            effective_at=_millis(_required(record, "effective_at"), "effective_at"),
            expires_at=(None if record.get("expires_at") is None
                        else _millis(record["expires_at"], "expires_at")),
            ingested_at=ingested_at_ms,
            form_reference=record.get("form_reference"),
        )
        replaced = self._add(consent)
        return ConsentChange("replaced" if replaced else "granted", key, consent)

    def revoke(self, key: ConsentKey, at_ms: int) -> ConsentChange:
        """End one consent for every event ingested at or after `at_ms` (the earliest
        revocation wins). The view operation behind a recorder's REVOKE and, later, an
        administrator's revocation on the recorder's behalf (see `consent_recording`)."""
        previous = self._revoked_at.get(key)
        if previous is None or at_ms < previous:
            self._revoked_at[key] = at_ms
        return ConsentChange("revoked" if key in self._consents else "revoked_unknown", key)

    def grant(self, key: ConsentKey) -> Consent | None:
        """The grant held under a key, with its revocation time if revoked."""
        consent = self._consents.get(key)
        if consent is None:
            return None
        return replace(consent, revoked_at=self._revoked_at.get(key))

    def consents_for(self, subject_id: str) -> list[Consent]:
        """Every grant for a subject, with its revocation time if revoked."""
        return [replace(self._consents[g[0]], revoked_at=self._revoked_at.get(g[0]))
                for g in self._by_subject.get(subject_id, ())]

    def active_for(self, subject_id: str, at_ms: int) -> list[Consent]:
        """The subject's consents in force at `at_ms`."""
        return [c for c in self.consents_for(subject_id) if c.active_at(at_ms)]

    def match(
        self, subject_id: str, at_ms: int, probes: Sequence[ConsentProbe]
    ) -> tuple[int, tuple[str, ...]]:
        """Which probes one in-force consent satisfies: a bitmask (bit i for probes[i])
        and the labels (`recorder/consent_id`) of the consents relied on, in probe order
        without repeats."""
        grants = self._by_subject.get(subject_id)
        if not grants:
            return 0, ()
        return self._match(grants, at_ms, probes)

    def match_recorded(
        self, records: Iterable[tuple[str, str]], at_ms: int, probes: Sequence[ConsentProbe]
    ) -> tuple[int, tuple[str, ...]]:
        """As `match`, over the consents each agency recorded for its own id of one
        person: `records` are (recording agency, that agency's subject id) pairs, the
        agency records a linked person is known by (record linkage)."""
        grants = [g for recorder, subject_id in records
                  for g in self._by_subject.get(subject_id, ()) if g[2] == recorder]
        if not grants:
            return 0, ()
        return self._match(grants, at_ms, probes)

    def _match(
        self, grants: list[_Hot], at_ms: int, probes: Sequence[ConsentProbe]
    ) -> tuple[int, tuple[str, ...]]:
        revoked = self._revoked_at
        if revoked:
            live = [g for g in grants
                    if g[8] <= at_ms < g[9] and revoked.get(g[0], _NEVER) > at_ms]
        else:
            live = [g for g in grants if g[8] <= at_ms < g[9]]
        if not live:
            return 0, ()
        mask = 0
        bit = 1
        used: list[str] = []
        for recipient, kind, wanted_purposes, wanted, disclosers_ok, recorders in probes:
            for _, label, recorder, recipients, purposes, categories, every, disclosers, _, _ \
                    in live:
                if ((recipient in recipients or (kind is not None and kind in recipients))
                        and not wanted_purposes.isdisjoint(purposes)
                        and (every or wanted <= categories)
                        and not disclosers_ok.isdisjoint(disclosers)
                        and (recorders is None or recorder in recorders)):
                    mask |= bit
                    if label not in used:
                        used.append(label)
                    break
            bit <<= 1
        return mask, tuple(used)

    # -- persistence -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready snapshot; `from_dict` restores an identical view."""
        return {
            "format": SNAPSHOT_FORMAT,
            "grants": [c.to_dict() for c in self._consents.values()],
            "revocations": [[*key, at] for key, at in sorted(self._revoked_at.items())],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConsentView:
        if data.get("format") != SNAPSHOT_FORMAT:
            raise ConsentRecordError(f"unsupported consent snapshot format "
                                     f"{data.get('format')!r}; expected {SNAPSHOT_FORMAT}")
        view = cls()
        try:
            for item in data.get("grants", []):
                view._add(Consent(
                    consent_id=str(item["consent_id"]), subject_id=str(item["subject_id"]),
                    recorded_by=str(item["recorded_by"]),
                    recipients=frozenset(item["recipients"]),
                    disclosers=frozenset(item["disclosers"]),
                    purposes=frozenset(item["purposes"]),
                    categories=frozenset(item["categories"]),
                    effective_at=int(item["effective_at"]),
                    expires_at=None if item["expires_at"] is None else int(item["expires_at"]),
                    ingested_at=int(item["ingested_at"]),
                    form_reference=item.get("form_reference"),
                ))
            for recorded_by, subject_id, consent_id, at in data.get("revocations", []):
                key = ConsentKey(str(recorded_by), str(subject_id), str(consent_id))
                view._revoked_at[key] = int(at)
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
