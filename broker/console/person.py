"""A person, as the console names them: by the subject pseudonym the audit log stores.

A clerk's identifier (an MPI number, a case number) is typed into a POST form and turned
into the pseudonym at once (`pages_person`); pages and links carry only the pseudonym.
"""

from __future__ import annotations

from broker.audit.pseudonym import is_subject_pseudonym
from broker.console.errors import ConsoleRefused


def subjects(subject: str | None, also: str | None) -> tuple[str, ...]:
    """The pseudonyms a person's records are filed under: `subject` (with record linkage,
    the person's) and `also` (the typed identifier's own: consents as recorded, unlinked
    event types, decisions from before linkage). Empty when no person is chosen."""
    first = subject_param(subject)
    if first is None:
        return ()
    second = subject_param(also)
    return (first,) if second is None or second == first else (first, second)


def subject_param(value: str | None) -> str | None:
    """A `subject` query parameter: empty, or a subject pseudonym."""
    if not value:
        return None
    if not is_subject_pseudonym(value):
        raise ConsoleRefused(422, "subject must be a subject pseudonym (sp_ and 32 hex "
                             "digits); search by identifier with the person form")
    return value
