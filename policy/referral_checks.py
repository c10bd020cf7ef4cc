"""Checks across referral terms, calendars, agreements, agencies and the event schemas.

Errors: a term naming an unknown agreement or calendar, an agreement that carries no
referrals, business days without a calendar, a feedback agreement that does not run from
the receiver back to the referrer, statuses that are not symbols of `referral_status`,
two terms covering the same service of one agreement, two terms sharing a feedback
agreement but sending different statuses back (the broker decides a status by its
agreement: it cannot tell which terms a status falls under), an agency other than the
broker (`handoff`, kind `broker`) publishing `handoff_overdue`.

Warnings (the bundle still loads; `handoff policy check` prints them):

- a referral agreement with no return path: no terms, or terms without `feedback`, so
  the referrer never learns what became of its referrals;
- the receiver is a substance-use program and the feedback agreement releases `reason`;
- an agreement that withholds or transforms `referral_id`, so statuses cannot be matched
  to the referral they answer;
- terms with service levels whose referrer, or receiver, no agreement lets hear of the
  broker's `handoff_overdue` alerts.
"""

from __future__ import annotations

from collections.abc import Iterable

from policy.bundle_checks import Located
from policy.errors import Problem
from policy.model import Agency, Agreement
from policy.referral_terms import BusinessCalendar, ReferralTerms
from policy.vocabulary import BROKER_AGENCY, BROKER_EVENT_TYPES
from schemas.catalog import SchemaCatalog

REFERRAL = "referral"
STATUS = "referral_status"
OVERDUE = "handoff_overdue"
BROKER_KIND = "broker"
PART2_REGIME = "cfr42_part2"
SUD_KIND = "sud_treatment"


class ReferralChecker:
    """Runs every referral cross-check and returns the problems (errors and warnings)."""

    def __init__(
        self,
        catalog: SchemaCatalog,
        agencies: Iterable[Located[Agency]],
        agreements: Iterable[Located[Agreement]],
        calendars: list[Located[BusinessCalendar]],
        terms: list[Located[ReferralTerms]],
    ) -> None:
        self.catalog = catalog
        self.agency_items = list(agencies)
        self.agencies: dict[str, Agency] = {}
        for item in self.agency_items:
            self.agencies.setdefault(item.entry.id, item.entry)
        self.agreement_items = list(agreements)
        self.agreements: dict[str, Agreement] = {}
        for agreement in self.agreement_items:
            self.agreements.setdefault(agreement.entry.id, agreement.entry)
        self.calendars = calendars
        self.terms = terms
        self.problems: list[Problem] = []

    def run(self) -> list[Problem]:
        self._duplicates(self.calendars, "calendar")
        self._duplicates(self.terms, "referral terms")
        calendar_ids = {c.entry.id for c in self.calendars}
        for item in self.terms:
            self._terms(item, calendar_ids)
        self._overlaps()
        self._uncovered_agreements()
        self._shared_feedback()
        self._broker_agency()
        return self.problems

    # -- helpers -------------------------------------------------------------------------

    def _duplicates(self, items: list[Located[BusinessCalendar]] | list[Located[ReferralTerms]],
                    what: str) -> None:
        first: dict[str, str] = {}
        for item in items:
            if item.entry.id in first:
                self.problems.append(item.problem(
                    ("id",), f"duplicate {what} id '{item.entry.id}' (first at "
                             f"{first[item.entry.id]})"))
            else:
                first[item.entry.id] = item.where()

    def _symbols(self, event_type: str, path: str) -> frozenset[str]:
        if event_type not in self.catalog:
            return frozenset()
        schema = self.catalog.get(event_type)
        if not schema.has_field(path):
            return frozenset()
        spec = schema.field(path).avro_type
        if isinstance(spec, list):
            spec = next((t for t in spec if t != "null"), {})
        return frozenset(spec.get("symbols", ())) if isinstance(spec, dict) else frozenset()

    def _check_symbols(self, item: Located[ReferralTerms], loc: tuple[str, ...],
                       values: tuple[str, ...], event_type: str, path: str) -> None:
        allowed = self._symbols(event_type, path)
        for index, value in enumerate(values):
            if allowed and value not in allowed:
                self.problems.append(item.problem(
                    (*loc, index), f"'{value}' is not a symbol of {event_type}.{path} "
                                   f"({', '.join(sorted(allowed))})"))

    def _clear_grant(self, agreement: Agreement, event_type: str, path: str) -> bool:
        """Whether the agreement releases the field as it is (not withheld, no transform)."""
        return any(g.path == path and g.transform is None
                   for g in agreement.grants_for(event_type))

    # -- entries -------------------------------------------------------------------------

    def _terms(self, item: Located[ReferralTerms], calendar_ids: set[str]) -> None:
        terms = item.entry
        carrier = self.agreements.get(terms.agreement)
        if carrier is None:
            self.problems.append(item.problem(("agreement",),
                                              f"unknown agreement '{terms.agreement}'"))
        elif REFERRAL not in carrier.event_types:
            self.problems.append(item.problem(
                ("agreement",), f"agreement '{carrier.id}' does not carry {REFERRAL} events"))
        self._check_symbols(item, ("services",), terms.services, REFERRAL,
                            "referred_to_service")
        if terms.calendar is not None and terms.calendar not in calendar_ids:
            self.problems.append(item.problem(("calendar",),
                                              f"unknown calendar '{terms.calendar}'"))
        if terms.calendar is None:
            for step, level in terms.service_levels.items():
                if level.unit == "business_days":
                    self.problems.append(item.problem(
                        ("service_levels", step),
                        "business days need a calendar: add 'calendar: <id>' naming one in "
                        "calendars.yaml"))
        if carrier is not None and REFERRAL in carrier.event_types:
            if not self._clear_grant(carrier, REFERRAL, "referral_id"):
                self.problems.append(item.problem(
                    ("agreement",),
                    f"agreement '{carrier.id}' does not release referral_id as it is, so the "
                    "receiver cannot name the referral when it reports a status",
                    severity="warning"))
            self._feedback(item, carrier)
            if terms.service_levels:
                self._alerts_reach(item, carrier)

    def _alerts_reach(self, item: Located[ReferralTerms], carrier: Agreement) -> None:
        """Each party should hear of a dropped handoff: an agreement from the broker to
        it that carries `handoff_overdue`."""
        for role, agency in (("referrer", carrier.source), ("receiver", carrier.recipient)):
            if not any(a.source == BROKER_AGENCY and a.recipient == agency
                       and OVERDUE in a.event_types for a in self.agreements.values()):
                self.problems.append(item.problem(
                    ("service_levels",),
                    f"no agreement from '{BROKER_AGENCY}' to the {role} '{agency}' carries "
                    f"{OVERDUE}: it will not hear when these service levels are missed",
                    severity="warning"))

    def _feedback(self, item: Located[ReferralTerms], carrier: Agreement) -> None:
        feedback = item.entry.feedback
        if feedback is None:
            self.problems.append(item.problem(
                ("agreement",),
                f"referral agreement '{carrier.id}' has no return path: add 'feedback' so "
                f"'{carrier.source}' learns what became of its referrals",
                severity="warning"))
            return
        self._check_symbols(item, ("feedback", "statuses"), feedback.statuses, STATUS,
                            "status")
        self._check_symbols(item, ("feedback", "business_statuses"),
                            feedback.business_statuses, STATUS, "business_status")
        back = self.agreements.get(feedback.agreement)
        if back is None:
            self.problems.append(item.problem(("feedback", "agreement"),
                                              f"unknown agreement '{feedback.agreement}'"))
            return
        if (back.source, back.recipient) != (carrier.recipient, carrier.source):
            self.problems.append(item.problem(
                ("feedback", "agreement"),
                f"feedback agreement '{back.id}' must run from the receiver "
                f"'{carrier.recipient}' to the referrer '{carrier.source}' (it runs from "
                f"'{back.source}' to '{back.recipient}')"))
        if STATUS not in back.event_types:
            self.problems.append(item.problem(
                ("feedback", "agreement"),
                f"feedback agreement '{back.id}' does not carry {STATUS} events"))
            return
        if not self._clear_grant(back, STATUS, "referral_id"):
            self.problems.append(item.problem(
                ("feedback", "agreement"),
                f"feedback agreement '{back.id}' does not release referral_id as it is, so "
                "the referrer cannot tell which referral a status answers",
                severity="warning"))
        receiver = self.agencies.get(carrier.recipient)
        sud = receiver is not None and (PART2_REGIME in receiver.regimes
                                        or receiver.kind == SUD_KIND)
        if sud and any(g.path == "reason" for g in back.grants_for(STATUS)):
            self.problems.append(item.problem(
                ("feedback", "agreement"),
                f"'{carrier.recipient}' is a substance-use program and feedback agreement "
                f"'{back.id}' releases its reasons to '{carrier.source}'; leave 'reason' out",
                severity="warning"))

    def _overlaps(self) -> None:
        """Two terms may not cover the same service of one agreement: which deadlines
        would apply?"""
        for n, later in enumerate(self.terms):
            for earlier in self.terms[:n]:
                a, b = earlier.entry, later.entry
                if a.agreement != b.agreement or a.id == b.id:
                    continue
                shared = sorted(set(a.services) & set(b.services))
                if a.services and b.services and not shared:
                    continue
                what = shared[0] if shared else "every service"
                self.problems.append(later.problem(
                    ("services",), f"terms '{a.id}' ({earlier.where()}) already cover "
                                   f"{what} of agreement '{a.agreement}'"))
                break

    def _shared_feedback(self) -> None:
        """Terms that share a feedback agreement must send the same statuses back: a
        status is decided by its agreement, which cannot tell the terms apart."""
        first: dict[str, Located[ReferralTerms]] = {}
        for item in self.terms:
            feedback = item.entry.feedback
            if feedback is None:
                continue
            earlier = first.setdefault(feedback.agreement, item)
            other = earlier.entry.feedback
            if earlier is item or other is None:
                continue
            if (set(other.statuses), set(other.business_statuses)) != (
                    set(feedback.statuses), set(feedback.business_statuses)):
                self.problems.append(item.problem(
                    ("feedback", "agreement"),
                    f"terms '{earlier.entry.id}' ({earlier.where()}) also send statuses back "
                    f"under agreement '{feedback.agreement}', with other statuses or "
                    "business statuses; give these terms their own feedback agreement or the "
                    "same lists"))

    def _broker_agency(self) -> None:
        """Only the broker publishes its own events, and `handoff` is the broker."""
        for item in self.agency_items:
            agency = item.entry
            is_broker = agency.id == BROKER_AGENCY
            if is_broker and agency.kind != BROKER_KIND:
                self.problems.append(item.problem(
                    ("kind",), f"'{BROKER_AGENCY}' is the broker's own agency id: its kind "
                               f"must be '{BROKER_KIND}'"))
            if not is_broker and agency.kind == BROKER_KIND:
                self.problems.append(item.problem(
                    ("kind",), f"only the agency '{BROKER_AGENCY}' is of kind "
                               f"'{BROKER_KIND}'"))
            for index, event_type in enumerate(agency.publishes):
                if event_type in BROKER_EVENT_TYPES and not is_broker:
                    self.problems.append(item.problem(
                        ("publishes", index),
                        f"only the broker ('{BROKER_AGENCY}') publishes {event_type} events"))

    def _uncovered_agreements(self) -> None:
        covered = {t.entry.agreement for t in self.terms}
        for item in self.agreement_items:
            agreement = item.entry
            if REFERRAL in agreement.event_types and agreement.id not in covered:
                self.problems.append(item.problem(
                    ("event_types",),
                    f"referral agreement '{agreement.id}' has no return path and no service "
                    f"levels: add referral terms for it in referrals.yaml",
                    severity="warning"))
