"""Checking a Kafka audit index against the log it caches, while the log is verified.

Queries, the accounting of disclosures and the API's head read a process's local index
(`<data dir>/audit-index.db`), not Kafka. Someone who can write that file could change
what they show without touching Kafka, so verification compares the file with what it
reads from Kafka: every record the index has read must be in it, and each row must be
exactly the one the index would have written (every column, including the position,
the chain, the subject bucket and the shared detail tail it names); no row may be
there that Kafka does not hold; chain heads, checkpoints and the origin must match.

The index is read in one snapshot taken before the log is read, so a live process may
go on indexing meanwhile; anything it indexed later is not compared.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from broker.audit import kafka_index_sql as schema
from broker.audit import plan_table, record_counts
from broker.audit.errors import AuditStoreNotFoundError
from broker.audit.kafka_records import AUDIT_TOPIC, CHECKPOINTS_TOPIC, ParsedLine, tail_digest
from broker.audit.plans import PLAN_KIND
from broker.audit.record_counts import CountKey
from broker.audit.records import Checkpoint
from broker.errors import AuditError
from broker.log.port import LogRecord

_COLUMNS = (*schema.READ_COLUMNS, "subject_bucket")


class IndexMismatch(AuditError):
    """The index differs from the log; `position`, `chain` and `seq` say where."""

    def __init__(self, problem: str, *, position: int | None = None,
                 chain: str | None = None, seq: int | None = None) -> None:
        super().__init__(problem)
        self.problem, self.position, self.chain, self.seq = problem, position, chain, seq


class IndexCheck:
    """Compares one index file with the records verification reads (see the module)."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise AuditStoreNotFoundError(f"no audit index at {path}")
        self.path = path
        try:
            self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                         isolation_level=None)
        except sqlite3.Error as exc:
            raise self._broken(f"it cannot be opened ({exc})") from exc
        try:
            self._conn.execute("BEGIN")  # one snapshot for everything below
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version != schema.INDEX_VERSION:
                raise self._broken("it is not an index of this version; delete it and it "
                                   "is rebuilt from Kafka")
            progress = dict(self._conn.execute("SELECT topic, next_offset FROM progress"))
            self.indexed = int(progress.get(AUDIT_TOPIC, 0))
            self._checkpoints_read = int(progress.get(CHECKPOINTS_TOPIC, 0))
            self._names: dict[int, str] = dict(self._conn.execute("SELECT id, name FROM chains"))
            found = self._conn.execute("SELECT value FROM meta WHERE name = 'origin'").fetchone()
            self._origin = None if found is None else found[0]
            self._rows: Iterator[tuple[Any, ...]] = iter(self._conn.execute(schema.SELECT_ROWS))
        except sqlite3.Error as exc:
            self._conn.close()
            raise self._broken(f"it cannot be read ({exc})") from exc
        except IndexMismatch:
            self._conn.close()
            raise
        self._pending: tuple[Any, ...] | None = None
        self._counted: Counter[CountKey] = Counter()
        self._tails_checked: set[str] = set()
        self._plans: dict[str, int] = {}
        self._heads: Mapping[str, tuple[int, bytes]] = {}

    def _broken(self, problem: str, **where: Any) -> IndexMismatch:
        advice = "" if "delete it" in problem else "; delete it and it is rebuilt from Kafka"
        return IndexMismatch(f"audit index {self.path}: {problem}{advice}", **where)

    def _next_row(self) -> tuple[Any, ...] | None:
        if self._pending is not None:
            row, self._pending = self._pending, None
            return row
        return next(self._rows, None)

    def record(self, record: LogRecord, chain: str, parsed: ParsedLine,
               reference: tuple[str, int] | None, tail: bytes | None,
               heads: Mapping[str, tuple[int, bytes]]) -> None:
        """Compare the index's row for a record found sound in Kafka. `heads` are every
        chain's head once this record is counted."""
        position = record.offset + 1
        if position > self.indexed:
            return
        where = f"the record at position {position} (chain {chain} record {parsed.seq})"
        at = {"position": position, "chain": chain, "seq": parsed.seq}
        if position == 1 and self._origin != tail_digest((record.key or b"") + record.value):
            raise self._broken("it was built from another audit log (its origin differs)",
                               **at)
        row = self._next_row()
        if row is not None and row[0] < position:
            raise self._broken(f"it holds a record at position {row[0]} that the audit "
                               "topic does not (inserted)", position=row[0])
        if row is None or row[0] > position:
            self._pending = row
            raise self._broken(f"{where} is missing from it, so queries do not show it", **at)
        expected = schema.row(position, parsed, reference, tail, 0)
        for index, name in enumerate(_COLUMNS):
            if name == "chain":
                if self._names.get(row[index]) != chain:
                    raise self._broken(f"{where}: its chain was altered", **at)
            elif row[index] != expected[index] or type(row[index]) is not type(expected[index]):
                raise self._broken(f"{where}: its {name} was altered", **at)
        digest = row[schema.READ_COLUMNS.index("detail_tail")]
        if digest is not None and digest not in self._tails_checked:
            found = self._conn.execute("SELECT text FROM tails WHERE digest = ?",
                                       (digest,)).fetchone()
            if found is None or tail is None or found[0] != tail.decode("utf-8"):
                raise self._broken(f"{where}: the shared end of its detail was altered", **at)
            self._tails_checked.add(digest)
        self._counted[record_counts.key_of_row(parsed.row)] += 1
        if parsed.row[1] == PLAN_KIND and reference is None:
            self._plans.setdefault(tail_digest(parsed.detail), position)
        if position == self.indexed:
            self._heads = dict(heads)

    def finish(self, position: int, checkpoints: Mapping[int, tuple[Checkpoint, str | None]]
               ) -> None:
        """After the walk reached `position`: nothing more in the index, chain heads and
        checkpoints as in Kafka."""
        if self.indexed > position:
            raise self._broken(f"it claims to have read {self.indexed} records but the audit "
                               f"topic holds {position}")
        extra = self._next_row()
        if extra is not None:
            raise self._broken(f"it holds a record at position {extra[0]} beyond what it "
                               "has read (inserted)", position=extra[0])
        chains = {name: (seq, bytes(digest)) for name, seq, digest in self._conn.execute(
            "SELECT name, head_seq, head_hash FROM chains")}
        if chains != dict(self._heads):
            wrong = sorted(set(chains.items()) ^ set(self._heads.items()))[0][0]
            raise self._broken(f"the head it holds for chain {wrong} was altered", chain=wrong)
        self._check_checkpoints(checkpoints)
        if plan_table.first_seqs(self._conn) != self._plans:
            raise self._broken("its plan index (audit_plans) differs from the plan records "
                               "in Kafka (altered), so decisions may not be readable")
        problem = record_counts.first_difference(self._counted,
                                                 record_counts.stored(self._conn))
        if problem is not None:
            raise self._broken(problem)

    def _check_checkpoints(self, in_kafka: Mapping[int, tuple[Checkpoint, str | None]]) -> None:
        numbers = []
        for number, seq, digest, at_ms, key_id, signature, chain in self._conn.execute(
                "SELECT number, seq, hash, at_ms, key_id, signature, chain FROM checkpoints "
                "ORDER BY number"):
            try:
                found = (Checkpoint(number, seq, bytes(digest).hex(), at_ms, key_id,
                                    bytes(signature)), chain)
            except TypeError:
                found = None
            if number > self._checkpoints_read or in_kafka.get(number) != found:
                raise self._broken(f"checkpoint {number} in it differs from Kafka's (altered)")
            numbers.append(number)
        missing = sorted(set(range(1, self._checkpoints_read + 1)) - set(numbers))
        if missing:
            raise self._broken(f"checkpoint {missing[0]} is missing from it (removed)")

    def close(self) -> None:
        """Release the file (ends the snapshot). Idempotent."""
        self._conn.close()
