"""The policy engine: decides, per event and subscription, what may be shared and why.

Build one engine per bundle version. Routes are compiled on first use and cached (see
`compiler`); the caches fill idempotently, so one engine can be shared by threads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from policy.bundle import PolicyBundle
from policy.compiler import AgreementPlan, Route, RouteContext
from policy.consent import ConsentMatcher
from policy.consent_recording import relied_on_recorders
from policy.decision import Decision, ReasonCode
from policy.errors import PolicyError, UnknownSubscriptionError
from policy.model import Agreement, Rule, Subscription
from policy.projection import Projections
from policy.release_conditions import release_condition
from policy.strictest import FieldRuling, RuleContext, rule_record
from policy.subscription_filter import SubscriptionMatcher
from policy.transforms import Transform, pseudonym_key_for, value_transform
from policy.view import ViewLayout
from schemas.catalog import EventSchema, SchemaCatalog


class PolicyEngine:
    """Decides, for one event and one subscription, which fields may be shared and why.

    `pseudonym_key` is the secret from which per-recipient (and shared-scope) HMAC keys
    for pseudonyms are derived; keep it stable, or every pseudonym changes.
    """

    def __init__(self, bundle: PolicyBundle, catalog: SchemaCatalog, pseudonym_key: bytes
                 ) -> None:
        if not pseudonym_key:
            raise PolicyError("pseudonym_key must not be empty")
        self.bundle = bundle
        self.catalog = catalog
        self._pseudonym_key = bytes(pseudonym_key)
        self._rules_by_id: dict[str, Rule] = {r.id: r for _, r in bundle.rules}
        self._matcher = SubscriptionMatcher(bundle.subscriptions.values())
        self._routes: dict[tuple[str, str, int, str], Route] = {}
        self._layouts: dict[tuple[str, str, int], ViewLayout] = {}
        self._rulings: dict[tuple[str, str, int], list[FieldRuling]] = {}
        self._transforms: dict[tuple[Transform, str], Callable[[Any], Any]] = {}
        self._projections: Projections = {}

    # -- the per-event calls -----------------------------------------------------------

    def subscriptions_for(
        self, event_type: str, source: str, record: Mapping[str, Any]
    ) -> list[Subscription]:
        """Subscriptions whose event types, sources and filter match this event."""
        return self._matcher.matching(event_type, source, record)

    def decide(
        self, event_type: str, schema_version: int, record: Mapping[str, Any], source: str,
        subscription_id: str, consents: ConsentMatcher, at_ms: int, *,
        subject: str | None = None, linked_ids: Mapping[str, str] | None = None,
    ) -> Decision:
        """Decide what `subscription_id` may receive of this event.

        `at_ms` is the decision time, the event's ingest time: agreements and consents
        are evaluated at that instant. The returned decision's `view` is projected when
        first read.

        With record linkage, `subject` is the Handoff person id consents are matched by
        (`consents` then answers for that person) instead of the event's `subject_id`,
        and `linked_ids` maps agency id fields (`subject_id`, `child.child_id`) to the
        person ids they resolved to: an agreement that pseudonymises such a field
        pseudonymises the person id.
        """
        route = self._routes.get((subscription_id, event_type, schema_version, source))
        if route is None:
            route = self._compile_route(subscription_id, event_type, schema_version, source)
        event_id = str(record.get("event_id"))
        candidate = route.pick(at_ms)
        if candidate is None:
            return Decision(route.no_agreement, event_id, at_ms)
        if candidate.condition is not None:
            refused = candidate.refusal_plan(record)
            if refused is not None:
                return Decision(refused, event_id, at_ms)
        if candidate.probes:
            mask, consent_ids = consents.match(
                str(record.get("subject_id")) if subject is None else subject, at_ms,
                candidate.probes)
        else:
            mask, consent_ids = 0, ()
        plan = candidate.plans.get(mask) or candidate.plan_for(mask)
        if plan.outcome == "deny":
            return Decision(plan, event_id, at_ms)
        return Decision(plan, event_id, at_ms, consent_ids, record, linked_ids)

    def view_schema(self, subscription_id: str, event_type: str, schema_version: int
                    ) -> dict[str, Any]:
        """The Avro schema (JSON form) every view of this subscription is written with."""
        subscription = self._subscription(subscription_id)
        if event_type not in subscription.event_types:
            raise PolicyError(f"subscription {subscription_id} does not receive "
                              f"{event_type} events")
        return self._layout(subscription, self.catalog.get(event_type, schema_version)
                            ).avro_schema()

    # -- compiling ---------------------------------------------------------------------

    def _subscription(self, subscription_id: str) -> Subscription:
        try:
            return self.bundle.subscriptions[subscription_id]
        except KeyError:
            raise UnknownSubscriptionError(
                f"no subscription '{subscription_id}' in policy bundle "
                f"{self.bundle.version}") from None

    def _serving(self, subscription: Subscription, event_type: str,
                 source: str | None = None) -> list[Agreement]:
        """Agreements that can serve the subscription for this event type (and source)."""
        return sorted(
            (a for a in self.bundle.agreements.values()
             if a.recipient == subscription.agency and a.purpose == subscription.purpose
             and event_type in a.event_types
             and (subscription.sources is None or a.source in subscription.sources)
             and (source is None or a.source == source)),
            key=lambda a: (a.effective, a.id))

    def _agreement_rulings(self, agreement: Agreement, schema: EventSchema
                           ) -> list[FieldRuling]:
        key = (agreement.id, schema.event_type, schema.version)
        found = self._rulings.get(key)
        if found is None:
            context = RuleContext(
                packs=tuple(self.bundle.rulepacks.values()),
                source=self.bundle.agencies[agreement.source],
                recipient=self.bundle.agencies[agreement.recipient],
                purpose=agreement.purpose)
            found = self._rulings[key] = rule_record(schema, agreement, context)
        return found

    def _layout(self, subscription: Subscription, schema: EventSchema) -> ViewLayout:
        key = (subscription.id, schema.event_type, schema.version)
        found = self._layouts.get(key)
        if found is None:
            rulings = [self._agreement_rulings(a, schema)
                       for a in self._serving(subscription, schema.event_type)]
            found = self._layouts[key] = ViewLayout(subscription.id, schema, rulings)
        return found

    def _transform_for(self, transform: Transform, recipient: str) -> Callable[[Any], Any]:
        key = (transform, recipient)
        found = self._transforms.get(key)
        if found is None:
            hmac_key = pseudonym_key_for(self._pseudonym_key, recipient, transform.scope)
            found = self._transforms[key] = value_transform(transform, hmac_key)
        return found

    def _compile_route(self, subscription_id: str, event_type: str, schema_version: int,
                       source: str) -> Route:
        subscription = self._subscription(subscription_id)
        schema = self.catalog.get(event_type, schema_version)
        recipient = self.bundle.agencies[subscription.agency]
        source_agency = self.bundle.agencies.get(source)
        linkage = self.bundle.linkage
        context = RouteContext(
            subscription, schema, source, recipient, self.bundle.version, self._rules_by_id,
            source_agency,
            None if source_agency is None
            else relied_on_recorders(source_agency, self.bundle.agencies),
            linkage.linked_paths(event_type) if linkage is not None else frozenset(),
            self._projections)
        key = (subscription_id, event_type, schema_version, source)
        if event_type not in subscription.event_types:
            route = Route([], context.deny_all(
                ReasonCode.NOT_SUBSCRIBED,
                f"subscription {subscription_id} does not receive {event_type} events"))
        elif subscription.sources is not None and source not in subscription.sources:
            route = Route([], context.deny_all(
                ReasonCode.NOT_SUBSCRIBED,
                f"subscription {subscription_id} does not receive events from {source}"))
        elif source not in self.bundle.agencies:
            route = Route([], context.deny_all(ReasonCode.UNKNOWN_SOURCE,
                                               f"unknown source agency '{source}'"))
        else:
            layout = self._layout(subscription, schema)
            candidates = [
                AgreementPlan(context, a, self._agreement_rulings(a, schema), layout,
                              self._transform_for, release_condition(self.bundle, a,
                                                                     event_type))
                for a in self._serving(subscription, event_type, source)
            ]
            route = Route(candidates, context.deny_all(
                ReasonCode.NO_AGREEMENT,
                f"no agreement in force for {source} to {recipient.id}, purpose "
                f"{subscription.purpose}, {event_type} at the decision time"))
        self._routes[key] = route
        return route
