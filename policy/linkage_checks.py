"""Checks across `linkage.yaml`, the agencies, agreements, subscriptions and schemas.

Errors: an event type or field the schemas do not have, a birth date or CLK in a field
of the wrong type, an unknown agency or CLK agreement, a CLK field of an agency that is
not a party to its agreement, and the restricted watch list reaching anyone: an
agreement or subscription naming `watch_list_entry` is refused. `birth_match` events
are the broker's: no agency publishes them, and an agreement carries them only from an
agency whose births are checked to the watch list's owner.

Warnings: birth match configured with no agreement that releases `birth_match` events
to the watch list's owner (matches would be audited and go nowhere), and birth match
configured without a `birth` subject that keys the event.
"""

from __future__ import annotations

from collections.abc import Iterable

from policy.bundle_checks import Located
from policy.errors import Problem
from policy.linkage_terms import (
    BIRTH_EVENT_TYPE,
    BIRTH_MATCH_EVENT_TYPE,
    BROKER_MADE_EVENT_TYPES,
    WATCH_LIST_EVENT_TYPE,
    LinkageTerms,
)
from policy.model import Agency, Agreement, Subscription
from schemas.catalog import SchemaCatalog

_DATE_TYPES = frozenset({"date", "timestamp-millis", "timestamp-micros"})


class LinkageChecker:
    """Runs every linkage cross-check and returns the problems."""

    def __init__(
        self,
        catalog: SchemaCatalog,
        agencies: Iterable[Located[Agency]],
        agreements: Iterable[Located[Agreement]],
        subscriptions: Iterable[Located[Subscription]],
        terms: Located[LinkageTerms] | None,
        terms_unreadable: bool = False,
    ) -> None:
        self.catalog = catalog
        self._agency_items = {a.entry.id: a for a in agencies}
        self.agencies = {name: item.entry for name, item in self._agency_items.items()}
        self.agreements = list(agreements)
        self.subscriptions = list(subscriptions)
        self.terms = terms
        self._unreadable = terms_unreadable
        """linkage.yaml exists but failed its own checks (already reported)."""
        self.problems: list[Problem] = []

    def run(self) -> list[Problem]:
        self._watch_list_goes_nowhere()
        self._broker_made()
        if self.terms is None:
            return self.problems
        terms = self.terms.entry
        for event_type, linked in terms.event_types.items():
            self._event_type(event_type, [s.role for s in linked.subjects])
        for index, agreement in enumerate(terms.clk_agreements):
            for p, party in enumerate(agreement.parties):
                if party not in self.agencies:
                    self._error(("clk_agreements", index, "parties", p),
                                f"unknown agency '{party}'")
        if terms.birth_match is not None:
            self._birth_match()
        return self.problems

    def _error(self, loc: tuple[str | int, ...], message: str,
               severity: str = "error") -> None:
        assert self.terms is not None
        self.problems.append(self.terms.doc.problem(loc, message, entry_depth=0,
                                                    severity=severity))

    def _broker_made(self) -> None:
        match = self.terms.entry.birth_match if self.terms is not None else None
        for name, agency in self.agencies.items():
            for index, event_type in enumerate(agency.publishes):
                if event_type in BROKER_MADE_EVENT_TYPES:
                    self.problems.append(self._agency_items[name].problem(
                        ("publishes", index), f"{event_type} events are made by the "
                        "broker (birth match); no agency publishes them"))
        for item in self.agreements:
            if BIRTH_MATCH_EVENT_TYPE not in item.entry.event_types:
                continue
            if match is None:
                if self._unreadable:
                    continue
                self.problems.append(item.problem(
                    ("event_types",), f"{BIRTH_MATCH_EVENT_TYPE} events are only made "
                    "with birth match configured in linkage.yaml"))
            elif (item.entry.source not in match.births_from
                  or item.entry.recipient != match.watch_list_from):
                self.problems.append(item.problem(
                    ("event_types",), f"{BIRTH_MATCH_EVENT_TYPE} events go from an agency "
                    f"of birth_match.births_from to {match.watch_list_from} only"))

    def _watch_list_goes_nowhere(self) -> None:
        for item in self.agreements:
            if WATCH_LIST_EVENT_TYPE in item.entry.event_types:
                self.problems.append(item.problem(
                    ("event_types",), f"{WATCH_LIST_EVENT_TYPE} is child welfare's "
                    "restricted list for birth match: no agreement may release it"))
        for sub in self.subscriptions:
            if WATCH_LIST_EVENT_TYPE in sub.entry.event_types:
                self.problems.append(sub.problem(
                    ("event_types",), f"{WATCH_LIST_EVENT_TYPE} is child welfare's "
                    "restricted list for birth match: no subscription may receive it"))

    def _event_type(self, event_type: str, roles: list[str]) -> None:
        assert self.terms is not None
        base = ("event_types", event_type)
        if event_type not in self.catalog:
            self._error(base, f"unknown event type '{event_type}'")
            return
        if event_type == WATCH_LIST_EVENT_TYPE:
            self._error(base, f"{WATCH_LIST_EVENT_TYPE} entries are never linked to "
                              "anyone: they stay in the birth match list")
            return
        schema = self.catalog.get(event_type)
        terms = self.terms.entry
        for index, subject in enumerate(terms.event_types[event_type].subjects):
            loc = (*base, "subjects", index)
            if not schema.has_field(subject.id_field):
                self._error((*loc, "id_field"), f"{event_type} has no field "
                                                f"'{subject.id_field}'")
            for name, path in subject.fields.items():
                if not schema.has_field(path):
                    self._error((*loc, "fields", name), f"{event_type} has no field '{path}'")
                elif name == "birth_date":
                    info = schema.field(path)
                    if info.logical_type not in _DATE_TYPES:
                        self._error((*loc, "fields", name),
                                    f"{event_type}.{path} is not a date")
            if subject.clk_field is not None:
                self._clk_field(loc, event_type, subject.clk_field, subject.clk_agreement)

    def _clk_field(self, loc: tuple[str | int, ...], event_type: str, path: str,
                   agreement_id: str | None, key: str = "clk_field") -> None:
        assert self.terms is not None
        schema = self.catalog.get(event_type)
        if not schema.has_field(path):
            self._error((*loc, key), f"{event_type} has no field '{path}'")
        elif schema.field(path).base_type != "string":
            self._error((*loc, key), f"{event_type}.{path} must be a string (a base64 CLK)")
        if agreement_id is not None and self.terms.entry.clk_agreement(agreement_id) is None:
            self._error((*loc, "clk_agreement"), f"unknown CLK agreement '{agreement_id}'")

    def _birth_match(self) -> None:
        assert self.terms is not None
        terms = self.terms.entry
        match = terms.birth_match
        assert match is not None
        owner = match.watch_list_from
        if owner not in self.agencies:
            self._error(("birth_match", "watch_list_from"), f"unknown agency '{owner}'")
        elif WATCH_LIST_EVENT_TYPE not in self.agencies[owner].publishes:
            self._error(("birth_match", "watch_list_from"),
                        f"agency '{owner}' does not publish {WATCH_LIST_EVENT_TYPE}")
        for index, source in enumerate(match.births_from):
            if source not in self.agencies:
                self._error(("birth_match", "births_from", index),
                            f"unknown agency '{source}'")
        if match.clk_agreement is not None:
            agreement = terms.clk_agreement(match.clk_agreement)
            if agreement is None:
                self._error(("birth_match", "clk_agreement"),
                            f"unknown CLK agreement '{match.clk_agreement}'")
            else:
                outside = [a for a in (owner, *match.births_from)
                           if a not in agreement.parties]
                if outside:
                    self._error(("birth_match", "clk_agreement"),
                                f"{', '.join(outside)} not a party to CLK agreement "
                                f"'{agreement.id}'")
            if BIRTH_EVENT_TYPE in self.catalog:
                self._clk_field(("birth_match",), BIRTH_EVENT_TYPE, match.mother_clk_field,
                                None, key="mother_clk_field")
        birth = terms.event_types.get(BIRTH_EVENT_TYPE)
        if birth is None or birth.keyed is None:
            self._error(("birth_match",), "birth match checks the birth's subject that "
                        "keys the event: link `birth` events with a `keys_event` subject")
        released = any(
            BIRTH_MATCH_EVENT_TYPE in a.entry.event_types and a.entry.recipient == owner
            and a.entry.source in match.births_from for a in self.agreements)
        if not released:
            self._error(("birth_match",), f"no agreement releases {BIRTH_MATCH_EVENT_TYPE} "
                        f"events to {owner}: matches will be audited and go nowhere",
                        severity="warning")
