"""Consents for a linked person: every consent an agency recorded under its own id for
any record now linked to the person.

Consents stay keyed as recorded (recording agency, that agency's subject id); which
person they govern is read from the person index when a decision asks. So a clerical
change (a review resolved, an unlink, a merge) re-keys consents with nothing to rewrite:
decisions after it see the records the person has then.
"""

from __future__ import annotations

from collections.abc import Sequence

from linkage.identity import key_parts
from linkage.index import PersonIndex
from policy import ConsentView
from policy.consent import ConsentProbe


class PersonConsents:
    """A `ConsentMatcher` whose subjects are person ids (or, for a record the index could
    not link, its record key).

    Made for one event's decisions: the records of a person are read from the index once
    and kept for the decisions that follow (one per subscription), not re-read for each.
    """

    def __init__(self, view: ConsentView, index: PersonIndex, consent_system: str) -> None:
        self._view = view
        self._index = index
        self.consent_system = consent_system
        self._records: dict[str, tuple[tuple[str, str], ...]] = {}

    def records(self, subject: str) -> tuple[tuple[str, str], ...]:
        """(recording agency, its subject id) pairs whose consents govern `subject`."""
        known = self._records.get(subject)
        if known is None:
            known = self._records[subject] = self._read_records(subject)
        return known

    def _read_records(self, subject: str) -> tuple[tuple[str, str], ...]:
        if "|" in subject:
            keys = [subject]
        else:
            # A person merged away while its event was in flight: its records moved.
            person, seen = subject, {subject}
            while (into := self._index.merged_into(person)) is not None and into not in seen:
                seen.add(into)
                person = into
            keys = [r.record_key for r in self._index.records_of(person)]
        pairs = []
        for key in keys:
            agency, id_system, value = key_parts(key)
            if id_system == self.consent_system:
                pairs.append((agency, value))
        return tuple(pairs)

    def match(self, subject_id: str, at_ms: int, probes: Sequence[ConsentProbe]
              ) -> tuple[int, tuple[str, ...]]:
        if not len(self._view):
            # No consent recorded at all: nothing any record of the person could match,
            # so the index is not asked for them (what `match_recorded` answers for no
            # grants).
            return 0, ()
        return self._view.match_recorded(self.records(subject_id), at_ms, probes)
