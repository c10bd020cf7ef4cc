"""What a person index has read, kept for the next event that asks the same.

On the stream most events are about people the index already holds, and nothing about
them changes from one event to the next: the same record looked up by its agency id, the
same person's records and merge redirect read for its consents. `IndexReadCache` keeps
those answers (immutable values: `IndexedRecord`s, tuples of them, person ids) for the
adapter that owns it, which drops what each write changes and everything when another
connection has written (`SqlitePersonIndex`). Bounded: a map that reaches its cap is
emptied and fills again with what is still asked.
"""

from __future__ import annotations

from linkage.index import IndexedRecord


class IndexReadCache:
    """Answers by record key and by person id. Not thread-safe: its owner holds its lock."""

    def __init__(self, max_entries: int = 16_384) -> None:
        if max_entries < 1:
            raise ValueError("an index read cache holds at least one entry per map")
        self.max_entries = max_entries
        self._records: dict[str, IndexedRecord | None] = {}
        self._persons: dict[str, tuple[IndexedRecord, ...]] = {}
        self._redirects: dict[str, str | None] = {}

    # -- answers --------------------------------------------------------------------------

    # Each raises KeyError when the question is not cached.

    def record(self, record_key: str) -> IndexedRecord | None:
        return self._records[record_key]

    def records_of(self, person_id: str) -> tuple[IndexedRecord, ...]:
        return self._persons[person_id]

    def redirect(self, person_id: str) -> str | None:
        return self._redirects[person_id]

    def keep_record(self, record_key: str, record: IndexedRecord | None) -> None:
        if len(self._records) >= self.max_entries:
            self._records.clear()
        self._records[record_key] = record

    def keep_records_of(self, person_id: str, records: tuple[IndexedRecord, ...]) -> None:
        if len(self._persons) >= self.max_entries:
            self._persons.clear()
        self._persons[person_id] = records

    def keep_redirect(self, person_id: str, into: str | None) -> None:
        if len(self._redirects) >= self.max_entries:
            self._redirects.clear()
        self._redirects[person_id] = into

    # -- what a write changes -------------------------------------------------------------

    def record_changed(self, record_key: str, *person_ids: str | None) -> None:
        """A record's values or person changed: drop it and the records of the persons
        it belonged to and belongs to now."""
        self._records.pop(record_key, None)
        for person_id in person_ids:
            if person_id is not None:
                self._persons.pop(person_id, None)

    def redirect_changed(self, person_id: str) -> None:
        self._redirects.pop(person_id, None)

    def clear(self) -> None:
        self._records.clear()
        self._persons.clear()
        self._redirects.clear()

    def __len__(self) -> int:
        return len(self._records) + len(self._persons) + len(self._redirects)
