"""Which registry subjects a caller may see: the one check every registry route uses.

Event schemas (`events.<type>-value`) are what every agency publishes and reads against,
so any key sees them. A view schema (`deliver.<subscription>.<type>-value`) describes
what one subscription receives, so only the agency holding that subscription sees it
(and admins, who see everything). A subject the caller may not see answers as if it did
not exist, so names of other agencies' subscriptions do not leak.
"""

from __future__ import annotations

from collections.abc import Iterable

from broker.auth import Principal, Role
from broker.event_types import event_type_of_subject
from policy import PolicyBundle
from schemas.registry import RegisteredSchema


def may_see(principal: Principal, subject: str, bundle: PolicyBundle) -> bool:
    """Whether `principal` may see `subject`."""
    if principal.has(Role.ADMIN) or event_type_of_subject(subject) is not None:
        return True
    if not subject.endswith("-value"):
        return False
    return any(sub.agency == principal.agency and subject.startswith(f"deliver.{sub.id}.")
               for sub in bundle.subscriptions.values())


def visible(principal: Principal, subjects: Iterable[str], bundle: PolicyBundle
            ) -> list[str]:
    return [s for s in subjects if may_see(principal, s, bundle)]


def visible_usages(principal: Principal, usages: Iterable[RegisteredSchema],
                   bundle: PolicyBundle) -> list[RegisteredSchema]:
    return [u for u in usages if may_see(principal, u.subject, bundle)]
