"""SDOHCC referral Tasks in a posted Bundle: referrals and status updates.

The Gravity Project's SDOH Clinical Care guide sends a referral as a `ServiceRequest`
plus a `Task` for referral management whose `focus` is the ServiceRequest, and reports
progress by updating the Task. In a Bundle posted to a FHIR R4 source:

- each Task whose `focus` is a ServiceRequest in the same Bundle is a **referral**
  (`referral` event), published as the connector's agency, the referring agency; the
  ServiceRequest is not mapped again on its own;
- each other Task is a **status update** (`referral_status` event) by the connector's
  agency, the receiving agency: `Task.status` one to one, `businessStatus` and
  `statusReason` by Handoff's code systems.

The mapping itself is `referrals.fhir_in` (pure); this module finds the Tasks and turns
its problems into the source's (resource, element, message) problems. Which agency a
`Task.owner` or `Task.requester` stands for: a Handoff agency identifier
(`https://handoff.example.org/fhir/sid/agency`), else the connector's `agencies` map.
The publisher then checks every status update against the referral, as on every channel.
"""

from __future__ import annotations

from collections.abc import Mapping

from connectors.fhir_bundle import BundleIndex, Problem, Resource, label
from referrals.fhir_in import (
    FhirReferralError,
    FhirReferralSource,
    referral_events,
    status_event,
)


def referral_task_events(index: BundleIndex, source: FhirReferralSource,
                         problems: list[Problem]
                         ) -> tuple[list[tuple[str, dict[str, object], str]], set[str]]:
    """(event type, event, resource label) for every Task of the bundle, and the labels
    of the ServiceRequests the referral Tasks consumed. Problems are added to
    `problems`, naming resource and element."""
    tasks = list(index.of_type("Task"))
    if not tasks:
        return [], set()
    referral_tasks = [t for t in tasks if _focus_request(index, t) is not None]
    updates = [t for t in tasks if _focus_request(index, t) is None]
    found: list[tuple[str, dict[str, object], str]] = []
    consumed: set[str] = set()
    if referral_tasks:
        others = [r for r in index.resources if r.get("resourceType") != "Task"]
        try:
            events = referral_events([*others, *referral_tasks], source)
        except FhirReferralError as exc:
            problems.extend(exc.problems)
        else:
            for task, event in zip(referral_tasks, events, strict=True):
                request = _focus_request(index, task)
                assert request is not None
                consumed.add(label(request))
                found.append(("referral", event, label(task)))
    for task in updates:
        try:
            found.append(("referral_status", status_event(task, source, index.resources),
                          label(task)))
        except FhirReferralError as exc:
            problems.extend(exc.problems)
    return found, consumed


def _focus_request(index: BundleIndex, task: Resource) -> Mapping[str, object] | None:
    found = index.get(task.get("focus"))
    return found if found is not None and found.get("resourceType") == "ServiceRequest" \
        else None
