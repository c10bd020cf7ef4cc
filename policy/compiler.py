"""Compile, then run: everything about a route that does not depend on the event.

A route is (subscription, event type, schema version, source). Compiling it finds the
candidate agreements, rules every field under each (see `strictest`), lists the distinct
consent requirements as probes, and, lazily per combination of satisfied requirements
(a bitmask), builds the `DecisionPlan`: field explanations, obligations, legal basis and
the projection function. The per-event path is then: pick the agreement in force, match
the probes against the subject's consents, look up the plan for the bitmask.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from policy.consent import ConsentProbe, purpose_tokens
from policy.consent_recording import discloser_tokens
from policy.decision import DecisionPlan, FieldDecision, Projector, ReasonCode
from policy.model import Agency, Agreement, Obligation, Rule, Subscription
from policy.projection import COPY, Action, Projections, compile_projection
from policy.release_conditions import ReleaseCondition
from policy.strictest import ConsentNeed, FieldRuling
from policy.transforms import Transform
from policy.view import ViewLayout
from policy.vocabulary import KIND_PREFIX
from schemas.catalog import EventSchema

_NEVER = 1 << 62
RECORD_CONSENT = ConsentNeed(frozenset(), names_recipient=False, disclosers="any_holder")
"""What `consent_required: true` asks: a consent naming the recipient (or its kind) and
the purpose, whatever categories it covers and whichever holder it names as discloser
(any holder included: rules that need a named discloser ask for it field by field); as
every consent, recorded by an agency the source relies on."""

TransformFactory = Callable[[Transform, str], Callable[[Any], Any]]


@dataclass(frozen=True)
class RouteContext:
    """The parts of a route every plan repeats."""

    subscription: Subscription
    schema: EventSchema
    source: str
    recipient: Agency
    bundle_version: str
    rules_by_id: dict[str, Rule]
    source_agency: Agency | None = None
    """None when the source is not an agency of the bundle (every event is denied)."""
    recorders: frozenset[str] | None = frozenset()
    """Whose recorded consents the source relies on (None: any agency)."""
    linked_paths: frozenset[str] = frozenset()
    """Agency id fields that record linkage resolves to person ids (`linkage.yaml`):
    pseudonymised, they are pseudonyms of the person."""
    projections: Projections | None = field(default=None, compare=False)
    """The engine's compiled projections, shared by its routes (`compile_projection`)."""

    def disclosed_by(self, need: ConsentNeed) -> str:
        """How an unmet need names the discloser, for reasons."""
        if self.source_agency is None:
            return self.source
        tokens = sorted(discloser_tokens(self.source_agency, need.disclosers),
                        key=lambda t: (t == "*", t.startswith("kind:")))
        words = ["any holder" if t == "*" else t for t in tokens]
        return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"

    def plan(self, outcome: str, fields: tuple[FieldDecision, ...], *,
             deny_reason: str | None = None, agreement_id: str | None = None,
             obligations: tuple[Obligation, ...] = (), legal_basis: tuple[str, ...] = (),
             project: Projector | None = None) -> DecisionPlan:
        return DecisionPlan(
            outcome="permit" if outcome == "permit" else "deny",
            deny_reason=deny_reason, event_type=self.schema.event_type,
            schema_version=self.schema.version, source=self.source,
            subscription_id=self.subscription.id, recipient=self.recipient.id,
            purpose=self.subscription.purpose, agreement_id=agreement_id,
            bundle_version=self.bundle_version, fields=fields, obligations=obligations,
            legal_basis=legal_basis, project=project,
        )

    def deny_all(self, code: ReasonCode, reason: str, agreement_id: str | None = None
                 ) -> DecisionPlan:
        """A deny plan whose every field is withheld for the same reason."""
        fields = tuple(FieldDecision(f.path, "withheld", None, reason, code,
                                     agreement_id=agreement_id) for f in self.schema.fields)
        return self.plan("deny", fields, deny_reason=reason, agreement_id=agreement_id)


@dataclass
class AgreementPlan:
    """One candidate agreement of a route, with its plans per consent bitmask."""

    context: RouteContext
    agreement: Agreement
    rulings: list[FieldRuling]
    layout: ViewLayout
    transform_for: TransformFactory
    condition: ReleaseCondition | None = None
    """What each record must say to be released under this agreement (feedback and
    overdue-alert agreements); None: nothing."""
    start_ms: int = field(init=False)
    end_ms: int = field(init=False)
    needs: list[ConsentNeed] = field(init=False)
    probes: tuple[ConsentProbe, ...] = field(init=False)
    plans: dict[int, DecisionPlan] = field(default_factory=dict)
    refused: dict[str, DecisionPlan] = field(default_factory=dict)
    """Deny plans for records the release condition refuses, by reason."""

    def __post_init__(self) -> None:
        a = self.agreement
        self.start_ms = a.effective_ms
        self.end_ms = a.expires_ms if a.expires_ms is not None else _NEVER
        needs: list[ConsentNeed] = [RECORD_CONSENT] if a.consent_required else []
        for ruling in self.rulings:
            if ruling.withheld is None:
                needs += [n for n in ruling.needs if n not in needs]
        self.needs = needs
        recipient = self.context.recipient
        source = self.context.source_agency
        assert source is not None  # routes from unknown sources have no candidates
        purposes = purpose_tokens(a.purpose)
        self.probes = tuple(
            ConsentProbe(recipient.id,
                         None if n.names_recipient else f"{KIND_PREFIX}{recipient.kind}",
                         purposes, n.categories, discloser_tokens(source, n.disclosers),
                         self.context.recorders)
            for n in needs)

    def plan_for(self, mask: int) -> DecisionPlan:
        """The plan for the consent requirements satisfied in `mask` (compiled on first
        use, then cached)."""
        found = self.plans.get(mask)
        if found is None:
            found = self.plans[mask] = self._compile(mask)
        return found

    def refusal_plan(self, record: Mapping[str, Any]) -> DecisionPlan | None:
        """The deny plan for a record the release condition refuses; None when the
        condition holds (or there is none)."""
        if self.condition is None:
            return None
        refusal = self.condition.refusal(record, self.context.recipient.id)
        if refusal is None:
            return None
        code, reason = refusal
        found = self.refused.get(reason)
        if found is None:
            found = self.refused[reason] = self.context.deny_all(code, reason,
                                                                 self.agreement.id)
        return found

    def _met(self, need: ConsentNeed, mask: int) -> bool:
        return bool(mask >> self.needs.index(need) & 1)

    def _compile(self, mask: int) -> DecisionPlan:
        a, ctx = self.agreement, self.context
        if a.consent_required and not self._met(RECORD_CONSENT, mask):
            reason = (f"agreement {a.id} requires consent: none in force naming "
                      f"{ctx.recipient.id} (or kind:{ctx.recipient.kind}) for {a.purpose}, "
                      f"with {ctx.disclosed_by(RECORD_CONSENT)} as discloser")
            return ctx.deny_all(ReasonCode.CONSENT, reason, a.id)
        fields: list[FieldDecision] = []
        actions: dict[str, Action] = {}
        obligations: dict[str, Obligation] = {}
        cited: list[str] = []
        for ruling in self.rulings:
            entry = self._field(ruling, mask)
            fields.append(entry)
            if entry.status == "withheld":
                continue
            if ruling.transform is None:
                actions[ruling.path] = COPY
            else:
                actions[ruling.path] = self.transform_for(ruling.transform, ctx.recipient.id)
            for obligation, _ in ruling.obligations.values():
                obligations.setdefault(obligation.id, obligation)
            for rule_id in ruling.rule_ids:
                rule = ctx.rules_by_id[rule_id]
                if rule.then.effect != "deny" and rule.citation not in cited:
                    cited.append(rule.citation)
        if not actions:
            return ctx.plan("deny", tuple(fields), agreement_id=a.id,
                            deny_reason="nothing may be released: every field is withheld")
        basis = f"agreement {a.id}" + (f": {a.reference}" if a.reference else "")
        return ctx.plan(
            "permit", tuple(fields), agreement_id=a.id,
            obligations=tuple(obligations.values()), legal_basis=(basis, *cited),
            project=compile_projection(self.layout, actions, frozenset(
                r.path for r in self.rulings if r.path in ctx.linked_paths
                and r.transform is not None and r.transform.kind == "pseudonymise"),
                ctx.projections),
        )

    def _field(self, ruling: FieldRuling, mask: int) -> FieldDecision:
        a = self.agreement
        if ruling.withheld is not None:
            assert ruling.withheld_code is not None
            dropped = ruling.transform is not None and ruling.transform.kind == "drop"
            return FieldDecision(ruling.path, "withheld", "drop" if dropped else None,
                                 ruling.withheld, ruling.withheld_code, ruling.rule_ids, a.id)
        unmet = [(n, ids) for n, ids in ruling.needs.items() if not self._met(n, mask)]
        if unmet:
            need, ids = unmet[0]
            recipient = self.context.recipient
            who = recipient.id if need.names_recipient else \
                f"{recipient.id} or kind:{recipient.kind}"
            cats = ", ".join(sorted(need.categories)) or "any category"
            reason = (f"consent required by rule {', '.join(ids)}: none in force naming "
                      f"{who} for {a.purpose} covering {cats}, with "
                      f"{self.context.disclosed_by(need)} as discloser")
            return FieldDecision(ruling.path, "withheld", None, reason, ReasonCode.CONSENT,
                                 ruling.rule_ids, a.id)
        consented = ""
        if ruling.needs:
            needed_by = dict.fromkeys(i for ids_ in ruling.needs.values() for i in ids_)
            consented = f" with consent (required by rule {', '.join(needed_by)})"
        if ruling.transform is not None:
            label = ruling.transform.label()
            return FieldDecision(ruling.path, "transformed", label,
                                 f"transformed ({label}) under agreement {a.id}{consented}",
                                 ReasonCode.TRANSFORMED, ruling.rule_ids, a.id)
        return FieldDecision(ruling.path, "released", None,
                             f"released under agreement {a.id}{consented}",
                             ReasonCode.RELEASED, ruling.rule_ids, a.id)


@dataclass
class Route:
    """Candidate agreements for one (subscription, event type, version, source)."""

    candidates: list[AgreementPlan]
    no_agreement: DecisionPlan

    def pick(self, at_ms: int) -> AgreementPlan | None:
        """The agreement in force at `at_ms` (agreements of a route never overlap)."""
        for candidate in self.candidates:
            if candidate.start_ms <= at_ms < candidate.end_ms:
                return candidate
        return None
