"""Records the linker resolved by their agency id, kept with the event values they were
resolved from, so the next event that sends the same values for the same record skips
building its identity and resolving it again.

The resolver links a record by its agency id, with no change to the index, when the
index holds the record with a person and with the identity the event gives
(`PersonResolver.resolve`). The identity is a function of the event's values at the
mapping's paths (`identity_from_values`), so the same values, of the same types, give
the same identity. `KnownRecords.person` asks the index for the record each time and
answers only when it still holds a person and the identity kept; anything else (the
record re-keyed, merged, unlinked, its identity changed, dropped from the index) is
resolved as before. Bounded: the map is emptied when it reaches its cap (about 540
bytes a record for a birth's mother, so some 9 MB at the default when full).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from linkage.identity import IdentityRecord, NormalisedIdentity
from linkage.index import PersonIndex
from linkage.subjects import SubjectMapping


@dataclass(frozen=True, slots=True)
class _Known:
    mapping: SubjectMapping
    """The mapping `values` were read by (another event type's may read other paths)."""
    values: tuple[object, ...]
    types: tuple[type, ...]
    identity: IdentityRecord
    """The identity record made of `values`."""
    normalised: NormalisedIdentity
    """The identity the index held for the record when it was linked by its agency id."""


class KnownRecords:
    """Record key -> the values it was last linked by agency id from. Not thread-safe:
    the linker's stream calls it, one event at a time."""

    def __init__(self, index: PersonIndex, max_entries: int = 16_384) -> None:
        self._index = index
        self._held: dict[str, _Known] = {}
        self.max_entries = max_entries

    def person(self, key: str, mapping: SubjectMapping, values: tuple[object, ...]
               ) -> tuple[str, IdentityRecord] | None:
        """(person id, identity record) when `values`, read by `mapping`, are those the
        record was linked by and the index still holds it with a person and that
        identity; else None."""
        held = self._held.get(key)
        if (held is None or held.mapping is not mapping or held.values != values
                or held.types != tuple(map(type, values))):
            return None
        record = self._index.record(key)
        if record is None or record.person_id is None:
            return None
        identity = record.identity
        if identity is not held.normalised and identity != held.normalised:
            return None
        return record.person_id, held.identity

    def keep(self, key: str, mapping: SubjectMapping, values: Sequence[object],
             identity: IdentityRecord) -> None:
        """The record was just linked by its agency id from `values` read by `mapping`
        (`identity`), with nothing applied to the index."""
        record = self._index.record(key)
        if record is None or record.person_id is None:
            return
        if len(self._held) >= self.max_entries:
            self._held.clear()
        values = tuple(values)
        self._held[key] = _Known(mapping, values, tuple(map(type, values)), identity,
                                 record.identity)

    def clear(self) -> None:
        self._held.clear()
