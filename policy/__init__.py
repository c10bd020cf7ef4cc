"""Policy: decide, for one event and one subscriber, exactly which fields may be shared.

Load a bundle folder with `load_bundle`, build a `PolicyEngine` from it, feed consent
events into a `ConsentView`, and ask `engine.decide(...)` for a `Decision`. This package
does no I/O except reading the bundle's YAML files, and imports nothing from `broker`.
"""

from __future__ import annotations

from policy.bundle import PolicyBundle
from policy.consent import Consent, ConsentRecordError, ConsentView
from policy.decision import Decision, FieldDecision, ReasonCode
from policy.engine import PolicyEngine
from policy.errors import BundleError, PolicyError, Problem, UnknownSubscriptionError
from policy.loader import load_bundle
from policy.model import Agency, Agreement, Delivery, Obligation, Rule, RulePack, Subscription
from policy.transforms import Transform

__all__ = [
    "Agency",
    "Agreement",
    "BundleError",
    "Consent",
    "ConsentRecordError",
    "ConsentView",
    "Decision",
    "Delivery",
    "FieldDecision",
    "Obligation",
    "PolicyBundle",
    "PolicyEngine",
    "PolicyError",
    "Problem",
    "ReasonCode",
    "Rule",
    "RulePack",
    "Subscription",
    "Transform",
    "UnknownSubscriptionError",
    "load_bundle",
]
