"""Strictest-rule composition: every requirement that applies to a field, combined.

For one agreement and one field of a schema this collects the agreement's own grant and
transform and every matching rule of every applicable rule pack, then combines them so
the most protective outcome wins: deny overrides permit, a purpose restriction that does
not list the purpose withholds, every consent requirement must hold, and transforms
resolve by drop > pseudonymise > generalise > mask > clear.

Everything here depends only on the bundle, the schema and the agreement, so it runs
once when the engine compiles a route, never per event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from policy.decision import ReasonCode
from policy.model import Agency, Agreement, FieldGrant, Obligation, Rule, RulePack
from policy.transforms import Transform, applicable, strictest
from policy.vocabulary import ANY_PERSONAL_TAG, IDENTIFIER_TAGS
from schemas.catalog import EventSchema, FieldInfo

RECORD_SCOPE_NOTE = "scope: record"


@dataclass(frozen=True, slots=True)
class ConsentNeed:
    """One consent requirement: categories a consent must cover, whether it must name
    the recipient itself (True) or may name the recipient's kind (False), and whom it
    must name as discloser (`source`, `source_or_kind`, `any_holder`)."""

    categories: frozenset[str]
    names_recipient: bool
    disclosers: str = "source_or_kind"

    def describe(self) -> str:
        cats = ", ".join(sorted(self.categories)) or "any category"
        who = "the recipient itself" if self.names_recipient else "the recipient or its kind"
        return f"{who}, covering {cats}"


def consent_need(applied: AppliedRule) -> ConsentNeed:
    """The consent requirement a matching `require_consent` rule imposes on a field."""
    then = applied.rule.then
    cats = frozenset(then.categories) if then.categories is not None else applied.matched
    if then.identifiers_with is not None:
        # The identity of the person a record is about travels with the facts the
        # consent covers: identifier categories are met by the consent covering these.
        cats = (cats - IDENTIFIER_TAGS) | frozenset(then.identifiers_with)
    return ConsentNeed(cats, then.naming == "recipient", then.disclosers)


@dataclass(frozen=True)
class AppliedRule:
    """A rule that matched a field, with the data categories it matched."""

    pack: RulePack
    rule: Rule
    matched: frozenset[str]


@dataclass
class FieldRuling:
    """The static outcome for one field under one agreement, before consents are known.

    `withheld` holds the reason when the field can never be released under this
    agreement; otherwise the field is released (with `transform`) once every need in
    `needs` is met.
    """

    info: FieldInfo
    grant: FieldGrant | None
    applied: list[AppliedRule] = field(default_factory=list)
    withheld: str | None = None
    withheld_code: ReasonCode | None = None
    """Set with `withheld` (see `withhold`)."""
    transform: Transform | None = None
    needs: dict[ConsentNeed, list[str]] = field(default_factory=dict)
    """Each consent need and the ids of the rules (or agreement) that impose it."""
    obligations: dict[str, tuple[Obligation, str]] = field(default_factory=dict)
    """Obligation id → (obligation, rule id)."""
    lifted_from: list[str] = field(default_factory=list)
    """Under `scope: record`: the rule ids lifted onto this field from other fields."""

    @property
    def path(self) -> str:
        return self.info.path

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """Rules that shaped the outcome; for a field outside the agreement only the
        rules that would deny it anyway."""
        if self.grant is None:
            return tuple(a.rule.id for a in self.applied if a.rule.then.effect == "deny")
        ids = [a.rule.id for a in self.applied]
        ids += [r for r in self.lifted_from if r not in ids]
        return tuple(ids)

    def withhold(self, code: ReasonCode, reason: str) -> None:
        self.withheld_code, self.withheld = code, reason

    def citations(self) -> list[str]:
        return [a.rule.citation for a in self.applied if a.rule.then.effect != "deny"]


@dataclass(frozen=True)
class RuleContext:
    """Who sends what to whom, for which purpose: all a rule's `when` can look at."""

    packs: Sequence[RulePack]
    source: Agency
    recipient: Agency
    purpose: str

    def matching(self, info: FieldInfo) -> list[AppliedRule]:
        """Every rule of every applicable pack that matches the field."""
        found: list[AppliedRule] = []
        for pack in self.packs:
            covered = pack.regime in self.source.regimes
            for rule in pack.rules:
                when = rule.when
                if not covered and when.source != "any":
                    continue
                if when.purposes is not None and self.purpose not in when.purposes:
                    continue
                if self.purpose in when.unless_purposes:
                    continue
                if (when.recipient_kinds is not None
                        and self.recipient.kind not in when.recipient_kinds):
                    continue
                matched = _matched_tags(when.tags, info.tags)
                if when.tags and matched is None:
                    continue
                if when.fields and info.path not in when.fields:
                    continue
                found.append(AppliedRule(pack, rule, matched or info.tags))
        return found


def _matched_tags(wanted: Iterable[str], tags: frozenset[str]) -> frozenset[str] | None:
    wanted = tuple(wanted)
    if not wanted:
        return None
    if ANY_PERSONAL_TAG in wanted:
        return tags if tags else None
    hit = tags.intersection(wanted)
    return frozenset(hit) if hit else None


def rule_field(info: FieldInfo, grant: FieldGrant | None, agreement: Agreement,
               context: RuleContext) -> FieldRuling:
    """Combine the agreement and every matching rule for one field (scope: field)."""
    ruling = FieldRuling(info, grant, context.matching(info))
    denies = [a.rule.id for a in ruling.applied if a.rule.then.effect == "deny"]
    if grant is None:
        also = f" (and denied by rule {', '.join(denies)} in any case)" if denies else ""
        ruling.withhold(ReasonCode.NOT_IN_AGREEMENT, f"not in agreement {agreement.id}{also}")
        return ruling
    if denies:
        ruling.withhold(ReasonCode.DENIED, f"denied by rule {', '.join(denies)}")
        return ruling
    for applied in ruling.applied:
        then = applied.rule.then
        if then.effect == "permit_purposes" and context.purpose not in then.purposes:
            ruling.withhold(ReasonCode.PURPOSE,
                            f"purpose {context.purpose} not permitted by rule "
                            f"{applied.rule.id} (allows {', '.join(then.purposes)})")
            return ruling
    transforms: list[Transform] = [grant.transform] if grant.transform is not None else []
    dropped_by: list[str] = ["agreement"] if grant.transform and grant.transform.kind == "drop" \
        else []
    for applied in ruling.applied:
        then = applied.rule.then
        if then.effect == "transform" and then.transform is not None:
            if applicable(then.transform, info):
                transforms.append(then.transform)
            else:
                # A rule demanding a transform this field's type cannot take is met the
                # only safe way left: the field is not released.
                transforms.append(Transform(kind="drop"))
                dropped_by.append(applied.rule.id)
            if then.transform.kind == "drop":
                dropped_by.append(applied.rule.id)
        if then.effect == "require_consent":
            ruling.needs.setdefault(consent_need(applied), []).append(applied.rule.id)
        for obligation in applied.rule.obligations:
            ruling.obligations.setdefault(obligation.id, (obligation, applied.rule.id))
    ruling.transform = strictest(transforms)
    if ruling.transform is not None and ruling.transform.kind == "drop":
        ruling.withhold(ReasonCode.DROPPED, f"dropped by {', '.join(dropped_by) or 'agreement'}")
    return ruling


def rule_record(schema: EventSchema, agreement: Agreement, context: RuleContext
                ) -> list[FieldRuling]:
    """Rulings for every leaf field of the schema under one agreement.

    With `scope: record`, every consent requirement, purpose restriction and obligation
    found for any field of the schema is lifted onto every field that is not otherwise
    withheld; denials and transforms stay with their own field.
    """
    grants = {g.path: g for g in agreement.grants_for(schema.event_type)}
    rulings = [rule_field(f, grants.get(f.path), agreement, context) for f in schema.fields]
    if agreement.scope == "record":
        _lift(rulings, context.purpose)
    return rulings


def _lift(rulings: list[FieldRuling], purpose: str) -> None:
    needs: dict[ConsentNeed, list[str]] = {}
    obligations: dict[str, tuple[Obligation, str]] = {}
    blocked: list[tuple[str, str]] = []
    for ruling in rulings:
        for applied in ruling.applied:
            then = applied.rule.then
            if then.effect == "require_consent":
                ids = needs.setdefault(consent_need(applied), [])
                if applied.rule.id not in ids:
                    ids.append(applied.rule.id)
            if then.effect == "permit_purposes" and purpose not in then.purposes:
                blocked.append((applied.rule.id, ruling.path))
            for obligation in applied.rule.obligations:
                obligations.setdefault(obligation.id, (obligation, applied.rule.id))
    lifted_ids = [r for ids in needs.values() for r in ids] + [r for r, _ in blocked]
    lifted_ids += [rule_id for _, rule_id in obligations.values()]
    for ruling in rulings:
        if ruling.withheld is not None:
            continue
        own = set(ruling.rule_ids)
        ruling.lifted_from = [r for r in dict.fromkeys(lifted_ids) if r not in own]
        if blocked:
            rule_id, path = blocked[0]
            ruling.withhold(ReasonCode.PURPOSE,
                            f"{RECORD_SCOPE_NOTE}: purpose {purpose} not permitted by rule "
                            f"{rule_id} (on {path})")
            continue
        for need, ids in needs.items():
            ruling.needs.setdefault(need, [])
            ruling.needs[need] += [r for r in ids if r not in ruling.needs[need]]
        for key, value in obligations.items():
            ruling.obligations.setdefault(key, value)
