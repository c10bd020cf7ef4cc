"""The closed vocabulary of data categories that schema fields are tagged with.

Rule packs match data by these tags, consents name them, and the audit log reports
disclosures by them. A schema using any other tag is refused at load.
"""

from __future__ import annotations

DATA_CATEGORIES: dict[str, str] = {
    "identifier.direct": "Identifies a person on its own: name, SSN, address, phone, email, "
    "case or record number.",
    "identifier.quasi": "Identifies a person in combination: date of birth, ZIP code, sex, "
    "race and ethnicity.",
    "health": "Diagnoses, birth facts, screenings and other health information (HIPAA PHI "
    "when held by a covered entity).",
    "sud": "Substance-use-disorder treatment information (42 CFR Part 2 when held by a "
    "Part 2 program).",
    "education": "Education records (FERPA when held by a school or district).",
    "child_welfare": "Reports of abuse and neglect, screening decisions and findings (CAPTA "
    "and state confidentiality law).",
    "reporter_identity": "Who reported suspected maltreatment. Never released.",
    "benefits": "Participation in Medicaid, SNAP, TANF, WIC and similar programs.",
}

TAGS: frozenset[str] = frozenset(DATA_CATEGORIES)
