"""A loaded policy bundle: agencies, agreements, effective rule packs, subscriptions.

The bundle is immutable; its `version` is a hash of its canonical content, so two folders
that differ only in comments or layout have the same version and any change in meaning
gives a new one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from policy.errors import Problem
from policy.linkage_terms import LinkageTerms
from policy.model import Agency, Agreement, Rule, RulePack, Subscription
from policy.referral_terms import BusinessCalendar, ReferralTerms


@dataclass(frozen=True)
class PolicyBundle:
    """Everything the engine decides from, as loaded and checked by `load_bundle`."""

    agencies: dict[str, Agency]
    agreements: dict[str, Agreement]
    rulepacks: dict[str, RulePack]
    """Effective packs by regime: shipped defaults, replaced or extended by the bundle."""
    subscriptions: dict[str, Subscription]
    warnings: tuple[Problem, ...] = ()
    calendars: dict[str, BusinessCalendar] = field(default_factory=dict)
    """Business calendars (calendars.yaml) that referral service levels count in."""
    referrals: dict[str, ReferralTerms] = field(default_factory=dict)
    """Referral terms (referrals.yaml): service levels and feedback per referral agreement."""
    linkage: LinkageTerms | None = None
    """Record linkage terms (linkage.yaml); None: events are not linked."""
    version: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "version", bundle_version(self.canonical_content()))

    def canonical_content(self) -> dict[str, Any]:
        """The parsed content that the version hashes (JSON-ready, order-independent)."""
        content = {
            "agencies": {k: v.model_dump(mode="json") for k, v in sorted(self.agencies.items())},
            "agreements": {k: v.model_dump(mode="json")
                           for k, v in sorted(self.agreements.items())},
            "rulepacks": {k: v.model_dump(mode="json")
                          for k, v in sorted(self.rulepacks.items())},
            "subscriptions": {k: v.model_dump(mode="json")
                              for k, v in sorted(self.subscriptions.items())},
        }
        # Only when present, so bundles without referral terms keep their versions.
        if self.calendars:
            content["calendars"] = {k: v.model_dump(mode="json")
                                    for k, v in sorted(self.calendars.items())}
        if self.referrals:
            content["referrals"] = {k: v.model_dump(mode="json")
                                    for k, v in sorted(self.referrals.items())}
        if self.linkage is not None:
            content["linkage"] = self.linkage.model_dump(mode="json")
        return content

    @property
    def rules(self) -> list[tuple[RulePack, Rule]]:
        """Every rule of every effective pack, with its pack."""
        return [(pack, rule) for pack in self.rulepacks.values() for rule in pack.rules]

    def summary(self) -> str:
        """`8 agencies, 9 agreements, 17 rules, 8 subscriptions`."""
        return (f"{len(self.agencies)} agencies, {len(self.agreements)} agreements, "
                f"{len(self.rules)} rules, {len(self.subscriptions)} subscriptions")


def bundle_version(content: dict[str, Any]) -> str:
    """`sha256:` + 16 hex digits of the canonical JSON of the content."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]
