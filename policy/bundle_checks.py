"""Checks across a bundle's entries: references, schemas, overlaps, duplicates.

Each entry has already passed its own model; here we check what only the whole bundle and
the schema catalog can tell: unknown agencies and event types, fields that are not in the
schema, transforms that do not fit a field's type, duplicate ids, agreements that overlap.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel

from policy.errors import Problem
from policy.linkage_terms import BROKER_MADE_EVENT_TYPES
from policy.model import ALL_EVENT_TYPES, Agency, Agreement, RulePack, Subscription
from policy.transforms import applicable, applicable_to
from policy.vocabulary import ANY_HOLDER, KIND_PREFIX
from policy.yamlsource import Loc, YamlDocument
from schemas.catalog import EventSchema, SchemaCatalog

EntryT = TypeVar("EntryT", bound=BaseModel)


@dataclass(frozen=True)
class Located(Generic[EntryT]):
    """An entry and where it was written."""

    entry: EntryT
    doc: YamlDocument
    loc: tuple[str | int, ...]

    def problem(self, sub: Loc, message: str, severity: str = "error") -> Problem:
        return self.doc.problem((*self.loc, *sub), message,
                                entry_depth=len(self.loc), severity=severity)

    def where(self) -> str:
        line, _ = self.doc.locate(self.loc)
        return f"{self.doc.name}:{line}"


class BundleChecker:
    """Runs every cross-check and returns the problems (errors and warnings)."""

    def __init__(
        self,
        catalog: SchemaCatalog,
        agencies: list[Located[Agency]],
        agreements: list[Located[Agreement]],
        packs: dict[str, Located[RulePack]],
        subscriptions: list[Located[Subscription]],
    ) -> None:
        self.catalog = catalog
        self.agencies = agencies
        self.agreements = agreements
        self.packs = packs
        self.subscriptions = subscriptions
        self.agency_ids: dict[str, Agency] = {}
        for item in agencies:  # the first of duplicate ids counts; the rest are reported
            self.agency_ids.setdefault(item.entry.id, item.entry)
        self.problems: list[Problem] = []

    def run(self) -> list[Problem]:
        self._duplicates("agency", self.agencies)
        self._duplicates("agreement", self.agreements)
        self._duplicates("subscription", self.subscriptions)
        self._rule_ids()
        for agency in self.agencies:
            self._agency(agency)
        for agreement in self.agreements:
            self._agreement(agreement)
        self._overlaps()
        for pack in self.packs.values():
            self._pack(pack)
        for subscription in self.subscriptions:
            self._subscription(subscription)
        return self.problems

    # -- helpers -------------------------------------------------------------------------

    def _duplicates(self, what: str, entries: Iterable[Located[EntryT]]) -> None:
        first: dict[str, Located[EntryT]] = {}
        for item in entries:
            entry_id = str(getattr(item.entry, "id"))  # noqa: B009 - every entry model has an id
            if entry_id in first:
                self.problems.append(item.problem(
                    ("id",), f"duplicate {what} id '{entry_id}' (first at "
                             f"{first[entry_id].where()})"))
            else:
                first[entry_id] = item

    def _schema(self, event_type: str) -> EventSchema | None:
        return self.catalog.get(event_type) if event_type in self.catalog else None

    def _unknown_type(self, item: Located[EntryT], loc: Loc, event_type: str) -> None:
        self.problems.append(item.problem(loc, f"unknown event type '{event_type}'; known: "
                                               f"{', '.join(self.catalog.event_types())}"))

    def _agency_ref(self, item: Located[EntryT], loc: Loc, agency_id: str) -> Agency | None:
        agency = self.agency_ids.get(agency_id)
        if agency is None:
            self.problems.append(item.problem(loc, f"unknown agency '{agency_id}'"))
        return agency

    def _field_exists(self, event_type: str, path: str) -> EventSchema | None:
        """The newest version of the event type that has the field, if any."""
        for version in reversed(self.catalog.versions(event_type)):
            schema = self.catalog.get(event_type, version)
            if schema.has_field(path):
                return schema
        return None

    # -- entries -------------------------------------------------------------------------

    def _rule_ids(self) -> None:
        first: dict[str, str] = {}
        for pack in self.packs.values():
            for index, rule in enumerate(pack.entry.rules):
                where = f"{pack.doc.name}:{pack.doc.locate(('rules', index))[0]}"
                if rule.id in first:
                    self.problems.append(pack.doc.problem(
                        ("rules", index, "id"),
                        f"duplicate rule id '{rule.id}' (first at {first[rule.id]})",
                        entry_depth=2))
                else:
                    first[rule.id] = where

    def _agency(self, item: Located[Agency]) -> None:
        agency = item.entry
        for index, regime in enumerate(agency.regimes):
            if regime not in self.packs:
                self.problems.append(item.problem(
                    ("regimes", index), f"unknown regime '{regime}'; rule packs: "
                                        f"{', '.join(sorted(self.packs))}"))
        for index, event_type in enumerate(agency.publishes):
            if event_type not in self.catalog:
                self._unknown_type(item, ("publishes", index), event_type)
        for key in ("records_for", "relies_on"):
            for index, named in enumerate(getattr(agency.consents, key)):
                if named != ANY_HOLDER and not named.startswith(KIND_PREFIX):
                    self._agency_ref(item, ("consents", key, index), named)
        if agency.consents.records_for and "consent" not in agency.publishes:
            self.problems.append(item.problem(
                ("consents", "records_for"), f"'{agency.id}' does not publish consent "
                "events, so it records no consents", severity="warning"))

    def _agreement(self, item: Located[Agreement]) -> None:
        agreement = item.entry
        source = self._agency_ref(item, ("source",), agreement.source)
        self._agency_ref(item, ("recipient",), agreement.recipient)
        known_types: list[str] = []
        for index, event_type in enumerate(agreement.event_types):
            if event_type not in self.catalog:
                self._unknown_type(item, ("event_types", index), event_type)
                continue
            known_types.append(event_type)
            # Broker-made types (a birth match) are released on behalf of the agency
            # whose event made them; policy.linkage_checks checks who that may be.
            if source is not None and event_type not in source.publishes \
                    and event_type not in BROKER_MADE_EVENT_TYPES:
                self.problems.append(item.problem(
                    ("event_types", index),
                    f"source '{source.id}' does not publish '{event_type}'"))
        for key, grants in agreement.fields.items():
            types: list[str]
            base: tuple[str, ...]
            if key == ALL_EVENT_TYPES:
                types, base = known_types, ("fields",)
            elif key not in agreement.event_types:
                self.problems.append(item.problem(
                    ("fields", key), f"'{key}' is not one of this agreement's event_types"))
                continue
            else:
                types, base = ([key] if key in known_types else []), ("fields", key)
            self._grants(item, base, grants, types)

    def _grants(self, item: Located[Agreement], base: Loc, grants: Iterable, types: list[str]
                ) -> None:
        seen: set[str] = set()
        for index, grant in enumerate(grants):
            loc = (*base, index)
            if grant.path in seen:
                self.problems.append(item.problem(loc, f"'{grant.path}' is listed twice"))
            seen.add(grant.path)
            for event_type in types:
                schema = self._field_exists(event_type, grant.path)
                if schema is None:
                    latest = self.catalog.get(event_type)
                    self.problems.append(item.problem(
                        loc, f"'{grant.path}' is not a field of {event_type} v{latest.version}"))
                    continue
                field = schema.field(grant.path)
                if grant.transform is not None and not applicable(grant.transform, field):
                    self.problems.append(item.problem(
                        loc, f"transform {grant.transform.label()} does not apply to "
                             f"'{grant.path}' ({_type_label(field)}); it applies to "
                             f"{applicable_to(grant.transform)}"))

    def _overlaps(self) -> None:
        by_key: dict[tuple[str, str, str, str], list[Located[Agreement]]] = {}
        for item in self.agreements:
            a = item.entry
            for event_type in a.event_types:
                by_key.setdefault((a.source, a.recipient, a.purpose, event_type), []).append(item)
        reported: set[tuple[str, str]] = set()
        for (_, _, _, event_type), items in by_key.items():
            items = sorted(items, key=lambda i: (i.entry.effective, i.entry.id))
            pairs = [(a, b) for n, a in enumerate(items) for b in items[n + 1:]]
            for earlier, later in pairs:
                end = earlier.entry.expires_ms
                if end is None or later.entry.effective_ms < end:
                    pair = (earlier.entry.id, later.entry.id)
                    if pair in reported or earlier.entry.id == later.entry.id:
                        continue
                    reported.add(pair)
                    self.problems.append(later.problem(
                        ("effective",),
                        f"overlaps agreement '{earlier.entry.id}' ({earlier.where()}) for "
                        f"{event_type}: one agreement at a time may be in force for a source, "
                        f"recipient, purpose and event type"))

    def _pack(self, item: Located[RulePack]) -> None:
        for index, rule in enumerate(item.entry.rules):
            for f_index, path in enumerate(rule.when.fields):
                if not any(self._field_exists(t, path) for t in self.catalog.event_types()):
                    self.problems.append(item.doc.problem(
                        ("rules", index, "when", "fields", f_index),
                        f"'{path}' is not a field of any event type", entry_depth=2))

    def _subscription(self, item: Located[Subscription]) -> None:
        sub = item.entry
        self._agency_ref(item, ("agency",), sub.agency)
        for index, source in enumerate(sub.sources or ()):
            self._agency_ref(item, ("sources", index), source)
        types = []
        for index, event_type in enumerate(sub.event_types):
            if event_type not in self.catalog:
                self._unknown_type(item, ("event_types", index), event_type)
            else:
                types.append(event_type)
        for path, wanted in sub.filter.items():
            for event_type in types:
                self._filter(item, event_type, path, wanted)
        if sub.delivery.format == "fhir-task" and set(sub.event_types) != {"referral_status"}:
            self.problems.append(item.problem(
                ("delivery", "format"), "fhir-task delivers referral statuses as FHIR Tasks: "
                                        "the subscription may take only referral_status"))
        served = any(
            a.entry.recipient == sub.agency and a.entry.purpose == sub.purpose
            and set(a.entry.event_types) & set(sub.event_types)
            for a in self.agreements
        )
        if not served:
            self.problems.append(item.problem(
                ("purpose",), f"no agreement lets '{sub.agency}' receive "
                              f"{'/'.join(sub.event_types)} for '{sub.purpose}'; every event "
                              "will be denied", severity="warning"))

    def _filter(self, item: Located[Subscription], event_type: str, path: str,
                wanted: object) -> None:
        schema = self._field_exists(event_type, path)
        if schema is None:
            self.problems.append(item.problem(
                ("filter", path),
                f"'{path}' is not a field of {event_type} v{self.catalog.get(event_type).version}"))
            return
        field = schema.field(path)
        if field.base_type != "enum":
            return
        spec = field.avro_type
        if isinstance(spec, list):
            spec = next(t for t in spec if t != "null")
        symbols = set(spec.get("symbols", ())) if isinstance(spec, dict) else set()
        values = wanted if isinstance(wanted, list) else [wanted]
        for value in values:
            if value is not None and value not in symbols:
                self.problems.append(item.problem(
                    ("filter", path), f"'{value}' is not a symbol of {path} "
                                      f"({', '.join(sorted(symbols))})"))


def _type_label(field: object) -> str:
    logical = getattr(field, "logical_type", None)
    base = getattr(field, "base_type", "?")
    return f"{base} {logical}" if logical else str(base)
