"""Whether a subscription named in a request belongs to the caller: one check for every
route that takes a subscription id (pull, stream, dead letters, webhook status, explain).
"""

from __future__ import annotations

from collections.abc import Collection

from fastapi import Request

from broker.api.auth import refuse
from broker.api.problems import NotFound
from broker.auth import Principal, Role
from policy import PolicyBundle, Subscription


def owned_subscription(request: Request, bundle: PolicyBundle, principal: Principal,
                       subscription_id: str, *, any_agency_for: Collection[Role] = ()
                       ) -> Subscription:
    """The subscription, when the caller's agency holds it or the caller has one of the
    roles in `any_agency_for`.

    An unknown id is 404. Another agency's subscription is 403, audited as
    `access_refused` like every other refusal of the API.
    """
    sub = bundle.subscriptions.get(subscription_id)
    if sub is None:
        raise NotFound(f"no subscription '{subscription_id}'")
    if sub.agency != principal.agency and not any(principal.has(r) for r in any_agency_for):
        raise refuse(request, principal,
                     f"subscription '{subscription_id}' belongs to another agency")
    return sub
