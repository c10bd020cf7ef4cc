"""Who may record a consent, who may revoke one, and whose recorded consents a discloser
relies on: pure decisions over the bundle's agencies.

A consent is recorded by the agency that publishes it (the broker's ingest source, never
a field of the event). That agency may always record consents naming itself as discloser;
naming another discloser takes a `consents.records_for` entry in `agencies.yaml` (a
recipient recording an authorization that names the discloser, as 45 CFR
164.508(c)(1)(ii) allows). Whether such a consent then opens the discloser's data is the
discloser's own decision, its `consents.relies_on` entry, applied when events are decided
(`relied_on_recorders`). A revocation comes from the agency that recorded the grant, or
from an administrator acting for it.

The broker calls `check_grant` and `check_revoke` when a consent is published, and
audits each verdict as a `consent_change` record.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from policy.consent import ConsentKey
from policy.model import NAME_PATTERN, Agency, check_agency_token
from policy.vocabulary import ANY_HOLDER, KIND_PREFIX


class ConsentChangeCode(StrEnum):
    """Why a consent event was accepted or refused; the `code` of a `consent_change`
    audit record."""

    GRANTED = "granted"
    NOT_A_RECORDER = "not_a_recorder"
    """The agency does not publish consent events (agencies.yaml `publishes`)."""
    INVALID = "invalid"
    """A recipient, discloser or purpose that is not a well-formed token."""
    REVOKED = "revoked"
    REVOKED_BY_ADMIN = "revoked_by_admin"
    DISCLOSER_NOT_PERMITTED = "discloser_not_permitted"
    """The recorder named a discloser its `consents.records_for` does not list."""
    NOT_THE_RECORDER = "not_the_recorder"
    """A revocation from someone other than the recording agency or an administrator."""
    NO_SUCH_CONSENT = "no_such_consent"
    """A revocation naming a consent the agency never recorded for that subject."""


@dataclass(frozen=True, slots=True)
class RecordingVerdict:
    """Whether a consent event may be recorded, and why, naming the fields at fault."""

    allowed: bool
    code: ConsentChangeCode
    reason: str
    fields: tuple[str, ...] = ()

    @classmethod
    def refuse(cls, code: ConsentChangeCode, reason: str, *fields: str) -> RecordingVerdict:
        return cls(False, code, reason, fields)


def _covers(token: str, discloser: str, agencies: Mapping[str, Agency]) -> bool:
    """Whether an authority token (`records_for` / `relies_on` entry) covers an agency id
    or a discloser token."""
    if token in (ANY_HOLDER, discloser):
        return True
    if token.startswith(KIND_PREFIX):
        agency = agencies.get(discloser)
        return agency is not None and token == f"{KIND_PREFIX}{agency.kind}"
    return False


def _malformed(record: Mapping[str, Any]) -> RecordingVerdict | None:
    for name, check in (("recipients", check_agency_token), ("disclosers", check_agency_token),
                        ("purposes", _check_purpose)):
        for index, token in enumerate(record.get(name) or ()):
            try:
                check(str(token))
            except ValueError:
                # The message names the position, never the value (which could be anything).
                return RecordingVerdict.refuse(
                    ConsentChangeCode.INVALID,
                    f"{name}[{index}] is not " + ("a purpose name" if name == "purposes"
                                                   else "an agency id, kind:<kind> or '*'"),
                    f"{name}[{index}]")
    return None


def _check_purpose(token: str) -> str:
    if not re.fullmatch(NAME_PATTERN, token):
        raise ValueError(token)
    return token


def check_grant(recorder: Agency | None, record: Mapping[str, Any],
                agencies: Mapping[str, Agency]) -> RecordingVerdict:
    """May `recorder` record this grant? It must publish consent events; the grant's
    recipients, disclosers and purposes must be well formed; and every discloser it names
    must be itself or one its `consents.records_for` covers (a grant naming no discloser
    names its recorder)."""
    if recorder is None or "consent" not in recorder.publishes:
        return RecordingVerdict.refuse(
            ConsentChangeCode.NOT_A_RECORDER,
            "the publishing agency does not record consents (agencies.yaml publishes)")
    malformed = _malformed(record)
    if malformed is not None:
        return malformed
    for token in record.get("disclosers") or ():
        if token == recorder.id:
            continue
        if not any(_covers(allowed, token, agencies)
                   for allowed in recorder.consents.records_for):
            return RecordingVerdict.refuse(
                ConsentChangeCode.DISCLOSER_NOT_PERMITTED,
                f"agency '{recorder.id}' may record consents only for its own data"
                + (f" and for {', '.join(recorder.consents.records_for)}"
                   if recorder.consents.records_for else "")
                + f" (agencies.yaml consents.records_for); not for '{token}'",
                "disclosers")
    return RecordingVerdict(True, ConsentChangeCode.GRANTED, "granted")


def check_revoke(key: ConsentKey, grant_known: bool, requester: str,
                 requester_is_admin: bool = False) -> RecordingVerdict:
    """May `requester` revoke the consent `key` (recorded by `key.recorded_by`)?

    A publishing agency can only name its own consents (the broker keys a revocation by
    its publisher), so for it this reduces to whether it recorded that grant. An
    administrator revokes on the recorder's behalf: the broker then records the
    revocation under the recorder, with the administrator as the actor.
    """
    if requester != key.recorded_by and not requester_is_admin:
        return RecordingVerdict.refuse(
            ConsentChangeCode.NOT_THE_RECORDER,
            f"only '{key.recorded_by}', which recorded consent '{key.consent_id}', or an "
            "administrator may revoke it", "consent_id")
    if not grant_known:
        return RecordingVerdict.refuse(
            ConsentChangeCode.NO_SUCH_CONSENT,
            f"agency '{key.recorded_by}' recorded no consent '{key.consent_id}' for this "
            "subject; a revocation names a consent its own agency granted", "consent_id")
    code = ConsentChangeCode.REVOKED if requester == key.recorded_by \
        else ConsentChangeCode.REVOKED_BY_ADMIN
    return RecordingVerdict(True, code, "revoked")


def relied_on_recorders(source: Agency, agencies: Mapping[str, Agency]
                        ) -> frozenset[str] | None:
    """The agencies whose recorded consents open `source`'s data: itself, and whoever
    its `consents.relies_on` names (None: any agency)."""
    tokens = source.consents.relies_on
    if ANY_HOLDER in tokens:
        return None
    return frozenset({source.id} | {a for a in agencies
                                     if any(_covers(t, a, agencies) for t in tokens)})


def discloser_tokens(source: Agency, mode: str) -> frozenset[str]:
    """The consent disclosers that name `source` under a requirement's `disclosers`
    mode: `source`, `source_or_kind` (a class of disclosers), `any_holder`."""
    tokens = {source.id}
    if mode in ("source_or_kind", "any_holder"):
        tokens.add(f"{KIND_PREFIX}{source.kind}")
    if mode == "any_holder":
        tokens.add(ANY_HOLDER)
    return frozenset(tokens)
