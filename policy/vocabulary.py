"""Closed vocabularies the policy bundle is checked against.

A typo in an agency kind would silently stop a rule or a `kind:` consent from matching,
so kinds are a closed list; extend it here when a state needs another.
"""

from __future__ import annotations

AGENCY_KINDS: dict[str, str] = {
    "hospital": "Birthing hospital or other health care provider (usually a HIPAA covered entity).",
    "vital_records": "State or county office of vital records.",
    "child_welfare": "Child protective services, intake hotline, foster care.",
    "home_visiting": "Home visiting program (MIECHV model sites and others).",
    "early_intervention": "IDEA Part C early intervention program (birth to three).",
    "medicaid": "State Medicaid agency or managed care organisation.",
    "school": "School district or local education agency.",
    "sud_treatment": "Substance-use-disorder treatment program (often a 42 CFR Part 2 program).",
    "behavioral_health": "Mental and behavioral health provider.",
    "public_health": "State or local public health department.",
    "benefits": "Agency running SNAP, TANF, WIC or similar programs.",
    "court": "Family or juvenile court.",
    "evaluator": "Evaluation or research team working under a data use agreement.",
    "broker": "Handoff itself, as the source of the events it makes (overdue referral alerts).",
}

BROKER_AGENCY = "handoff"
"""The agency id under which the broker publishes the events it makes itself
(`handoff_overdue`). A bundle that releases those events declares it in agencies.yaml
(kind `broker`, publishing `handoff_overdue`), so its agreements name a known source."""

BROKER_EVENT_TYPES = frozenset({"handoff_overdue"})
"""Event types only the broker publishes: no agency may list them in `publishes`."""

ANY_PERSONAL_TAG = "*"
"""In a rule's `when.tags` and a consent's categories: every personal data category."""

KIND_PREFIX = "kind:"
"""A consent recipient `kind:<agency kind>` names every agency of that kind."""

ANY_HOLDER = "*"
"""In a consent's disclosers (and an agency's `consents.records_for` and `relies_on`):
whoever holds the data. Only rules that allow it (`disclosers: any_holder`) accept it."""

TPO_PURPOSE = "tpo"
"""In a consent's purposes: treatment, payment and health care operations, for every
future use (42 CFR 2.31(a)(4)(i) as amended in 2024)."""

TPO_PURPOSES = frozenset({"treatment", "payment", "health_care_operations"})

IDENTIFIER_TAGS = frozenset({"identifier.direct", "identifier.quasi"})
"""The categories that say who a record is about."""
