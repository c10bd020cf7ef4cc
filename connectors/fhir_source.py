"""FHIR R4 source: a hospital's system POSTs FHIR `Bundle`s; they become Handoff events.

Configure it in the connectors file, as the agency whose events it publishes::

    connectors:
      - name: cgh-fhir
        type: fhir_r4
        agency: county-general
        hospital_id: "1467533928"     # when the bundle names no birthing facility
        county_fips: "55025"          # for mothers in this county's state whose
                                      # address names no county

and the hospital sends `POST /v1/connectors/fhir/cgh-fhir/Bundle` with a key of that
agency (publish role) and `Content-Type: application/fhir+json` (or application/json).
The answer is synchronous: 202 with the events published, or a problem+json naming the
resource and element that is wrong (invalid FHIR, or FHIR that lacks what an event needs);
nothing of a refused bundle is published. The broker's publisher decides whether the
agency may publish the event types a bundle maps to, as for every other channel.
`connectors.fhir_mapping` lists which element feeds which field.

Validation uses the `fhir.resources` package's R4B models (`fhir.resources.R4B`, FHIR
4.3.0). R4B is R4 (4.0.1) plus a few changes to medication and evidence resources; the
resources this source reads (Bundle, Patient, RelatedPerson, Encounter, Observation,
ServiceRequest) are the same, so R4 bundles validate unchanged. (The package's R4-only
releases, 6.x and older, need pydantic 1, which Handoff does not use.)

This is a push source: there is nothing to poll. The connector runs for its status and
configuration; the endpoint does the work in the request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, ValidationError

from connectors.base import Rejected, SourceConfig, SourceConnector, SourceRecord
from connectors.fhir_mapping import (
    BundleTooLarge,
    FhirMappingError,
    MappedEvent,
    MappingDefaults,
    Problem,
    check_entry_count,
    map_bundle,
)
from connectors.ports import Accepted, Ingest
from schemas.errors import HandoffError

__all__ = ["FHIR_JSON", "MAX_ENTRIES", "BundleTooLarge", "FhirSource", "FhirSourceConfig",
           "InvalidBundle", "receive_bundle", "validate_bundle"]

FHIR_JSON = "application/fhir+json"
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


class FhirSourceConfig(SourceConfig):
    """Settings of a FHIR R4 source."""

    type: Literal["fhir_r4"] = "fhir_r4"
    hospital_id: str | None = Field(default=None, max_length=64)
    """NPI (or other id) for births whose Encounter names no serviceProvider identifier."""
    county_fips: str | None = Field(default=None, pattern=r"^\d{5}$")
    """County for births whose mother's address, in this county's state, names no county
    (a mother from another state, or of no known state, gets none: null)."""
    agencies: dict[str, str] = Field(default_factory=dict)
    """SDOHCC referral Tasks: which Handoff agency a Task's `owner` or `requester` is,
    by Organization reference (`Organization/abc`) or identifier value, where it does not
    carry a Handoff agency identifier."""
    receiver: str | None = Field(default=None, max_length=64)
    """SDOHCC referrals: the receiving agency when a Task's owner names none we know."""


class FhirSource(SourceConnector[FhirSourceConfig]):
    """Push source: bundles arrive at the HTTP endpoint, not through `poll`."""

    config_model = FhirSourceConfig

    def poll(self) -> Sequence[SourceRecord | Rejected]:
        return ()


class InvalidBundle(HandoffError, ValueError):
    """A bundle is not valid FHIR R4, or lacks what a Handoff event needs."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{r} {e}: {m}" for r, e, m in problems))


def validate_bundle(doc: Any) -> dict[str, Any]:
    """Validate a Bundle with fhir.resources (R4B); raise `InvalidBundle` naming each
    resource and element, never the values."""
    from fhir.resources.R4B.bundle import Bundle

    if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
        raise InvalidBundle([("Bundle", "resourceType", "the body must be a FHIR Bundle")])
    try:
        Bundle.model_validate(doc)
    except ValidationError as exc:
        raise InvalidBundle([_problem(doc, err) for err in exc.errors(include_input=False)]
                            ) from exc
    return doc


def _problem(doc: dict[str, Any], err: Any) -> Problem:
    loc = list(err["loc"])
    resource = "Bundle"
    if len(loc) >= 3 and loc[0] == "entry" and isinstance(loc[1], int) and loc[2] == "resource":
        entries = doc.get("entry") or []
        raw = entries[loc[1]].get("resource") if loc[1] < len(entries) else None
        if isinstance(raw, dict):
            resource = f"{raw.get('resourceType', '?')}/{raw.get('id', f'entry-{loc[1]}')}"
        loc = loc[3:]
    element = ".".join(str(p) for p in loc if not str(p).startswith("function-")) or "<resource>"
    # Messages can quote what was sent; keep the message, drop the quotes' content.
    return resource, element, _QUOTED.sub("'…'", str(err["msg"]))


MAX_ENTRIES = 1000
"""Default of `fhir.max_bundle_entries`."""


def receive_bundle(ingest: Ingest, config: FhirSourceConfig, body: bytes,
                   max_entries: int = MAX_ENTRIES) -> list[tuple[MappedEvent, Accepted]]:
    """Validate, map and publish one bundle through `ingest` (bound to a caller of the
    connector's agency).

    All or none: a mapping or schema problem anywhere refuses the whole bundle, and so
    does an event type the agency may not publish (the error is the ingest's). A bundle
    of more than `max_entries` entries raises `BundleTooLarge` before they are validated.
    """
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidBundle([("Bundle", "<body>", "not JSON")]) from exc
    check_entry_count(doc, max_entries)
    bundle = validate_bundle(doc)
    defaults = MappingDefaults(config.name, config.hospital_id, config.county_fips,
                               config.agency, config.agencies, config.receiver)
    try:
        mapped = map_bundle(bundle, defaults)
    except FhirMappingError as exc:
        raise InvalidBundle(exc.problems) from exc
    by_type: dict[str, list[MappedEvent]] = {}
    for item in mapped:
        by_type.setdefault(item.event_type, []).append(item)
    groups = list(by_type.items())
    placed = ingest.publish_all([(t, [i.event for i in items]) for t, items in groups])
    out: list[tuple[MappedEvent, Accepted]] = []
    for (_, items), where in zip(groups, placed, strict=True):
        out.extend(zip(items, where, strict=True))
    return out
