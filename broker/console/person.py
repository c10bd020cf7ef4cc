"""A person, as the console names them: by the subject pseudonym the audit log stores.

A clerk's identifier (an MPI number, a case number) is typed into a POST form and turned
into the pseudonym at once (`pages_person`); pages and links carry only the pseudonym.
"""

from __future__ import annotations

from broker.audit.pseudonym import is_subject_pseudonym
from broker.console.errors import ConsoleRefused


def subject_param(value: str | None) -> str | None:
    """A `subject` query parameter: empty, or a subject pseudonym."""
    if not value:
        return None
    if not is_subject_pseudonym(value):
        raise ConsoleRefused(422, "subject must be a subject pseudonym (sp_ and 32 hex "
                             "digits); search by identifier with the person form")
    return value
