"""The person index on the `_linkage` topic (the Kafka deployment), over the in-memory
log and real SQLite files: restored after the local file is lost, completed after a crash
between the local write and the topic, rebuilt when the two disagree, and a second
writer fencing the first."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from broker.linking.journal import (
    H_WRITER,
    LINKAGE_TOPIC,
    JournalReader,
    LinkageJournal,
    LinkerFencedError,
    catch_up,
)
from broker.log.port import AppendResult, NewRecord
from linkage.default_model import default_model
from linkage.events import Linked, encode_event
from linkage.identity import AgencyId, IdentityRecord
from linkage.resolver import PersonResolver
from linkage.sqlite_index import SqlitePersonIndex
from linkage.thresholds import Thresholds
from tests.unit.broker.fakes import MemoryEventLog

THRESHOLDS = Thresholds.from_probabilities(0.99, 0.5)


def person(agency: str, value: str, given: str = "Jolene", family: str = "Lindqvist"
           ) -> IdentityRecord:
    return IdentityRecord(AgencyId(agency, "subject", value), given_name=given,
                          family_name=family, birth_date=dt.date(1995, 5, 16), zip="53703")


def open_writer(log: MemoryEventLog, path: Path, writer: str
                ) -> tuple[SqlitePersonIndex, LinkageJournal, PersonResolver]:
    journal = LinkageJournal(log, writer)
    index = journal.restore(SqlitePersonIndex(path), lambda: SqlitePersonIndex(path))
    return index, journal, PersonResolver(index, default_model(), THRESHOLDS)


def snapshot(index: SqlitePersonIndex) -> list[tuple[str, str | None]]:
    return sorted((r.record_key, r.person_id) for r in index.iter_records())


def test_a_lost_index_file_is_rebuilt_from_the_topic(tmp_path: Path) -> None:
    log = MemoryEventLog()
    index, journal, resolver = open_writer(log, tmp_path / "persons.db", "a")
    resolver.resolve(person("county-general", "MRN-1"))
    resolver.resolve(person("cw-hotline", "HL-1"))
    resolver.resolve(person("medicaid", "MA-1", "Maria", "Delgado"))
    journal.flush(index)
    before = snapshot(index)
    index.close()
    for name in ("persons.db", "persons.db-wal", "persons.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    rebuilt, _, _ = open_writer(log, tmp_path / "persons.db", "a2")
    assert snapshot(rebuilt) == before
    assert before[0][1] == before[1][1] != before[2][1]
    rebuilt.close()


def test_decisions_applied_but_not_yet_on_the_topic_are_appended_at_restart(
        tmp_path: Path) -> None:
    log = MemoryEventLog()
    index, journal, resolver = open_writer(log, tmp_path / "persons.db", "a")
    resolver.resolve(person("county-general", "MRN-1"))
    journal.flush(index)
    resolver.resolve(person("cw-hotline", "HL-1"))      # the process dies before flushing
    local = index.last_seq()
    index.close()
    index, _, _ = open_writer(log, tmp_path / "persons.db", "b")
    reader = JournalReader(log)
    assert [e.seq for e in reader.events()] == list(range(1, local + 1))
    replica = SqlitePersonIndex(tmp_path / "replica.db")
    assert catch_up(JournalReader(log), replica) == local
    assert snapshot(replica) == snapshot(index)
    index.close()
    replica.close()


def test_an_index_that_disagrees_with_the_topic_is_rebuilt_from_it(tmp_path: Path) -> None:
    log = MemoryEventLog()
    index, journal, resolver = open_writer(log, tmp_path / "persons.db", "a")
    resolver.resolve(person("county-general", "MRN-1"))
    journal.flush(index)
    topic = snapshot(index)
    index.close()
    # Another file, with its own decision under the same seq (restored from a backup of
    # another installation, say): the topic is the record.
    stray = SqlitePersonIndex(tmp_path / "stray.db")
    PersonResolver(stray, default_model(), THRESHOLDS).resolve(
        person("county-general", "MRN-9", "Ana", "Reyes"))
    stray.close()
    (tmp_path / "stray.db").replace(tmp_path / "persons.db")
    for name in ("persons.db-wal", "persons.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    index, _, _ = open_writer(log, tmp_path / "persons.db", "b")
    assert snapshot(index) == topic
    index.close()


def assert_readers_follow(writer: SqlitePersonIndex, log: MemoryEventLog, tmp_path: Path
                          ) -> None:
    """A reader of the topic (an API process's replica) ends with `writer`'s index."""
    replica = SqlitePersonIndex(tmp_path / "replica.db")
    catch_up(JournalReader(log), replica)
    assert snapshot(replica) == snapshot(writer)
    replica.close()


def test_a_second_writer_fences_the_first(tmp_path: Path) -> None:
    log = MemoryEventLog()
    first, first_journal, first_resolver = open_writer(log, tmp_path / "a.db", "a")
    first_resolver.resolve(person("county-general", "MRN-1"))
    first_journal.flush(first)
    second, second_journal, second_resolver = open_writer(log, tmp_path / "b.db", "b")
    assert snapshot(second) == snapshot(first)
    second_resolver.resolve(person("medicaid", "MA-1", "Maria", "Delgado"))
    second_journal.flush(second)                 # the second writer claims the topic
    first_resolver.resolve(person("cw-hotline", "HL-1"))
    with pytest.raises(LinkerFencedError, match="steps down"):
        first_journal.flush(first)
    # A decision the fenced writer slipped in after the takeover counts for no reader.
    zombie = Linked(first.last_seq() + 5, dt.datetime.now(dt.UTC), "x|subject|1",
                    "hp_aaaaaaaaaaaaaaaa", "new_person")
    log.append(LINKAGE_TOPIC, [NewRecord(value=encode_event(zombie).encode(), key=b"a:zz",
                                         headers=((H_WRITER, b"a"),))])
    second_resolver.resolve(person("school", "S-1", "Ana", "Reyes"))
    second_journal.flush(second)
    assert_readers_follow(second, log, tmp_path)
    for index in (first, second):
        index.close()


def test_a_process_that_never_links_never_claims(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="handoff.linkage")
    log = MemoryEventLog()
    first, first_journal, first_resolver = open_writer(log, tmp_path / "a.db", "a")
    idle, idle_journal, _ = open_writer(log, tmp_path / "b.db", "b")
    assert idle_journal.flush(idle) == 0 and not idle_journal.claimed
    assert "claimed" not in caplog.text
    first_resolver.resolve(person("county-general", "MRN-1"))
    assert first_journal.flush(first) > 0 and first_journal.claimed
    # The operator can tell which process links (by its writer id, nothing of a person).
    claims = [r.getMessage() for r in caplog.records if "claimed" in r.getMessage()]
    assert claims == [f"this router process links persons: it claimed {LINKAGE_TOPIC} "
                      "as writer a at offset 0"]
    assert "MRN-1" not in caplog.text


def test_two_writers_restored_together_the_first_to_write_wins(tmp_path: Path) -> None:
    log = MemoryEventLog()
    first, first_journal, first_resolver = open_writer(log, tmp_path / "a.db", "a")
    second, second_journal, second_resolver = open_writer(log, tmp_path / "b.db", "b")
    first_resolver.resolve(person("county-general", "MRN-1"))
    first_journal.flush(first)
    second_resolver.resolve(person("cw-hotline", "HL-1"))     # from a stale index
    with pytest.raises(LinkerFencedError):
        second_journal.flush(second)
    assert_readers_follow(first, log, tmp_path)
    for index in (first, second):
        index.close()


class ClaimsAtOnce(MemoryEventLog):
    """Two writers' first flushes interleaved as two router processes' can be: both
    check an empty topic, then the first's marker lands, then the second's."""

    def __init__(self) -> None:
        super().__init__()
        self.second_flush: Callable[[], object] | None = None
        self.second_fenced = False
        self._held: tuple[str, Sequence[NewRecord]] | None = None
        self._held_result: list[AppendResult] = []

    def append(self, topic: str, records: Sequence[NewRecord]) -> list[AppendResult]:
        if self.second_flush is not None:          # the first writer's marker: hold it
            second_flush, self.second_flush = self.second_flush, None
            self._held = (topic, records)
            try:
                second_flush()
            except LinkerFencedError:
                self.second_fenced = True
            return self._held_result
        if self._held is not None:                 # the second writer's marker
            held, self._held = self._held, None
            self._held_result = super().append(*held)
        return super().append(topic, records)


def test_two_writers_claiming_at_once_leave_exactly_one_writer(tmp_path: Path) -> None:
    log = ClaimsAtOnce()
    first, first_journal, first_resolver = open_writer(log, tmp_path / "a.db", "a")
    second, second_journal, second_resolver = open_writer(log, tmp_path / "b.db", "b")
    first_resolver.resolve(person("county-general", "MRN-1"))
    second_resolver.resolve(person("cw-hotline", "HL-1", "Maria", "Delgado"))
    log.second_flush = lambda: second_journal.flush(second)
    # Both checked the topic before either marker landed: the first marker wins, the
    # second writer steps down before anything relies on its decision.
    assert first_journal.flush(first) > 0
    assert log.second_fenced
    first_resolver.resolve(person("medicaid", "MA-1", "Ana", "Reyes"))
    assert first_journal.flush(first) > 0
    second_resolver.resolve(person("school", "S-1", "Ana", "Reyes"))
    with pytest.raises(LinkerFencedError):
        second_journal.flush(second)
    assert_readers_follow(first, log, tmp_path)
    for index in (first, second):
        index.close()


class TakenOverMidFlush(MemoryEventLog):
    """Another writer's marker lands between a writer's check and its decisions."""

    def __init__(self) -> None:
        super().__init__()
        self.before_next_append: Callable[[], object] | None = None

    def append(self, topic: str, records: Sequence[NewRecord]) -> list[AppendResult]:
        if self.before_next_append is not None:
            before, self.before_next_append = self.before_next_append, None
            before()
        return super().append(topic, records)


def test_a_writer_taken_over_while_appending_steps_down_at_once(tmp_path: Path) -> None:
    log = TakenOverMidFlush()
    first, first_journal, first_resolver = open_writer(log, tmp_path / "a.db", "a")
    first_resolver.resolve(person("county-general", "MRN-1"))
    first_journal.flush(first)
    second, second_journal, second_resolver = open_writer(log, tmp_path / "b.db", "b")
    second_resolver.resolve(person("medicaid", "MA-1", "Maria", "Delgado"))
    first_resolver.resolve(person("cw-hotline", "HL-1"))
    log.before_next_append = lambda: second_journal.flush(second)
    # Readers ignore the first writer's decision (it came after the second's marker):
    # the batch that made it must not go on to be audited or delivered.
    with pytest.raises(LinkerFencedError):
        first_journal.flush(first)
    assert_readers_follow(second, log, tmp_path)
    for index in (first, second):
        index.close()
