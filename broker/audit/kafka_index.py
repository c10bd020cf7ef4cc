"""`KafkaAuditIndex`: the audit chains of Kafka materialised into a local SQLite file.

The chains live in Kafka (`broker.audit.kafka_records` describes the topics); queries and
the accounting of disclosures need indexes, so every process that answers them keeps
this file and brings it up to date on demand (`catch_up`), reading only what was
appended since. It is a cache: delete it and it is rebuilt from Kafka.

Records are checked as they are indexed (hash, `seq` and `prev_hash` against their
chain's head); one that does not fit is left out and logged, and `handoff audit verify`
names it. Positions are Kafka offsets + 1, so they are the same in every process's
index, and a page cursor taken from one API process works on another.
Several processes may share one index file: each catch-up re-reads its progress inside
its write transaction.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from broker.audit import kafka_index_sql as schema
from broker.audit import plan_table, record_counts
from broker.audit.errors import AuditFormatError, AuditStoreUnavailableError
from broker.audit.kafka_records import (
    AUDIT_TOPIC,
    CHECKPOINTS_TOPIC,
    TAILS_TOPIC,
    ChainedAuditRecord,
    heads_digest,
    parse_line,
    read_checkpoint,
    reassemble,
    tail_digest,
    tail_reference,
)
from broker.audit.record_table import statements
from broker.audit.records import GENESIS_HASH, Checkpoint, chain_hash
from broker.audit.table_reader import RecordTableReader
from broker.errors import AuditError
from broker.log.port import EventLog, LogRecord

log = logging.getLogger(__name__)

_READ_BATCH = 2000


class _Rejected(AuditError):
    """A record that does not fit its chain; internal to the catch-up."""


class KafkaAuditIndex:
    """A local, queryable copy of the audit chains in Kafka. Thread-safe."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._tails: dict[str, str] = {}
        self._chain_names: dict[int, str] = {}
        self._plans = plan_table.PlanTexts()
        self._closed = False
        self._origin_checked = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AuditStoreUnavailableError(
                f"cannot create the directory of the audit index {self.path}: {exc.strerror}"
            ) from exc
        self._writer = self._connect()
        try:
            self._prepare()
        except sqlite3.Error as exc:
            self._writer.close()
            raise self._translate(exc, "preparing") from exc
        self.reader = RecordTableReader(
            schema.SQL, self._reader, self._stream_connection, self._record, self._translate)
        """The `AuditReader` reads (pages, streams, counts, disclosures) of this index."""

    def _prepare(self) -> None:
        """Create the tables, emptying a file of another layout first (a cache)."""
        conn = self._writer
        conn.execute("PRAGMA journal_mode=WAL")
        if conn.execute("PRAGMA user_version").fetchone()[0] == schema.INDEX_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read inside the transaction: another process may have rebuilt it.
            if conn.execute("PRAGMA user_version").fetchone()[0] != schema.INDEX_VERSION:
                for table in schema.TABLES:
                    conn.execute(f"DROP TABLE IF EXISTS {table}")
                for statement in statements(schema.SCHEMA):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={schema.INDEX_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise self._translate(exc, "opening") from exc
        return conn

    def _translate(self, exc: sqlite3.Error, doing: str) -> AuditError:
        return AuditStoreUnavailableError(
            f"the audit index {self.path} failed while {doing}: {exc}; it is a cache of "
            "the chains in Kafka, so it may be deleted and will be rebuilt"
        )

    def _reader(self) -> sqlite3.Connection:
        if self._closed:
            raise AuditError("the audit index is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            with self._lock:
                self._readers.append(conn)
        return conn

    # -- catching up ----------------------------------------------------------------------

    def catch_up(self, event_log: EventLog) -> None:
        """Index every record and checkpoint appended to Kafka since the last catch-up."""
        with self._lock:
            if self._closed:
                raise AuditError("the audit index is closed")
            try:
                if not self._origin_checked:
                    self._check_origin(event_log)
                    self._origin_checked = True
                self._catch_up_topic(event_log, AUDIT_TOPIC, self._apply_records)
                self._catch_up_topic(event_log, CHECKPOINTS_TOPIC, self._apply_checkpoints)
            except sqlite3.Error as exc:
                raise self._translate(exc, "catching up") from exc

    def _check_origin(self, event_log: EventLog) -> None:
        """Start afresh if this file indexes another log (another cluster or prefix, or a
        log recreated since): its first record is not the one the file began with."""
        conn = self._writer
        first = event_log.read(AUDIT_TOPIC, 0, 0, 1)
        origin = tail_digest((first[0].key or b"") + first[0].value) if first else None
        found = conn.execute("SELECT value FROM meta WHERE name = 'origin'").fetchone()
        if found is not None and found[0] == origin:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            if self._progress(conn, AUDIT_TOPIC) and (found is None or found[0] != origin):
                log.warning("audit index %s belongs to another audit log; rebuilding it",
                            self.path)
                for table in ("audit_records", "audit_counts", "audit_plans", "chains",
                              "checkpoints", "progress", "tails"):
                    conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names
            if origin is not None:
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('origin', ?)", (origin,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _catch_up_topic(
        self,
        event_log: EventLog,
        topic: str,
        apply: Callable[[sqlite3.Connection, EventLog, list[LogRecord]], None],
    ) -> None:
        conn = self._writer
        end = event_log.end_offset(topic, 0)
        while True:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Re-read inside the transaction: another process may share this file.
                start = self._progress(conn, topic)
                records = event_log.read(topic, 0, start, _READ_BATCH) if start < end else []
                if records:
                    apply(conn, event_log, records)
                    conn.execute(
                        "INSERT INTO progress VALUES (?, ?) ON CONFLICT (topic) "
                        "DO UPDATE SET next_offset = excluded.next_offset",
                        (topic, records[-1].offset + 1),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            if not records:
                return

    @staticmethod
    def _progress(conn: sqlite3.Connection, topic: str) -> int:
        found = conn.execute(
            "SELECT next_offset FROM progress WHERE topic = ?", (topic,)
        ).fetchone()
        return 0 if found is None else int(found[0])

    def _apply_checkpoints(
        self, conn: sqlite3.Connection, _log: EventLog, records: list[LogRecord]
    ) -> None:
        rows = []
        for record in records:
            try:
                checkpoint, chain = read_checkpoint(record.offset + 1, record.value)
            except AuditFormatError as exc:
                log.warning("audit index: skipped a malformed checkpoint (%s)", exc)
                continue
            rows.append((checkpoint.number, checkpoint.seq, bytes.fromhex(checkpoint.hash),
                         checkpoint.at_ms, checkpoint.key_id, checkpoint.signature, chain))
        conn.executemany("INSERT OR IGNORE INTO checkpoints VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def _apply_records(
        self, conn: sqlite3.Connection, event_log: EventLog, records: list[LogRecord]
    ) -> None:
        heads: dict[str, list[Any]] = {
            name: [chain_id, seq, digest] for chain_id, name, seq, digest in conn.execute(
                "SELECT id, name, head_seq, head_hash FROM chains")
        }
        moved: set[str] = set()
        rows = []
        for record in records:
            chain = "" if record.key is None else record.key.decode("utf-8", "replace")
            try:
                rows.append(self._row(conn, event_log, record, chain, heads))
                moved.add(chain)
            except (_Rejected, AuditFormatError) as exc:
                log.warning(
                    "audit index: the record at position %d (chain %s) does not fit its chain "
                    "and was left out (%s); run `handoff audit verify`",
                    record.offset + 1, chain[:80], exc)
        conn.executemany(schema.INSERT, rows)
        plan_table.add_plans(conn, rows)
        record_counts.add(conn, map(record_counts.key_of_row, rows))
        conn.executemany(
            "UPDATE chains SET head_seq = ?, head_hash = ? WHERE id = ?",
            [(heads[name][1], heads[name][2], heads[name][0]) for name in moved],
        )

    def _row(
        self,
        conn: sqlite3.Connection,
        event_log: EventLog,
        record: LogRecord,
        chain: str,
        heads: dict[str, list[Any]],
    ) -> tuple[Any, ...]:
        if not chain:
            raise _Rejected("it names no chain")
        reference = tail_reference(record.headers)
        tail = None
        if reference is not None:
            tail = self._tail(conn, event_log, reference[0])
        parsed = parse_line(reassemble(record.value, reference, tail))
        head = heads.get(chain)
        head_seq, head_hash = (0, GENESIS_HASH) if head is None else (head[1], head[2])
        if parsed.seq != head_seq + 1:
            raise _Rejected(f"it holds record {parsed.seq} after record {head_seq}")
        if parsed.prev_hash != head_hash:
            raise _Rejected(f"record {parsed.seq} does not link to record {head_seq}")
        if chain_hash(parsed.prev_hash, parsed.body) != parsed.hash:
            raise _Rejected(f"record {parsed.seq} does not match its hash")
        built = schema.row(record.offset + 1, parsed, reference, tail, 0)
        if head is None:
            chain_id = conn.execute(
                "INSERT INTO chains (name, head_seq, head_hash) VALUES (?, 0, ?)",
                (chain, GENESIS_HASH),
            ).lastrowid
            head = heads[chain] = [chain_id, 0, GENESIS_HASH]
        head[1], head[2] = parsed.seq, parsed.hash
        return (*built[:schema.CHAIN], head[0], *built[schema.CHAIN + 1:])

    def _tail(self, conn: sqlite3.Connection, event_log: EventLog, digest: str) -> bytes | None:
        text = self._tails.get(digest)
        if text is None:
            found = conn.execute("SELECT text FROM tails WHERE digest = ?", (digest,)).fetchone()
            if found is None:
                self._catch_up_tails(conn, event_log)
                found = conn.execute(
                    "SELECT text FROM tails WHERE digest = ?", (digest,)).fetchone()
                if found is None:
                    return None
            text = self._tails[digest] = found[0]
        return text.encode("utf-8")

    def _catch_up_tails(self, conn: sqlite3.Connection, event_log: EventLog) -> None:
        # Called inside the records' transaction, so progress stays consistent with it.
        start = self._progress(conn, TAILS_TOPIC)
        end = event_log.end_offset(TAILS_TOPIC, 0)
        while start < end:
            records = event_log.read(TAILS_TOPIC, 0, start, _READ_BATCH)
            if not records:
                break
            rows = []
            for record in records:
                if record.key is not None and record.key.decode("ascii", "replace") == (
                        tail_digest(record.value)):
                    try:
                        rows.append((record.key.decode("ascii"), record.value.decode("utf-8")))
                    except UnicodeDecodeError:
                        continue
            conn.executemany("INSERT OR IGNORE INTO tails VALUES (?, ?)", rows)
            start = records[-1].offset + 1
            conn.execute(
                "INSERT INTO progress VALUES (?, ?) ON CONFLICT (topic) "
                "DO UPDATE SET next_offset = excluded.next_offset",
                (TAILS_TOPIC, start),
            )

    # -- reading --------------------------------------------------------------------------

    def head(self) -> tuple[int, str]:
        """(position of the last record indexed, heads digest of every chain there);
        (0, 64 zeros) while nothing is indexed."""
        conn = self._reader()
        conn.execute("BEGIN")  # one snapshot for the position and the heads
        try:
            position = self._progress(conn, AUDIT_TOPIC)
            heads = conn.execute("SELECT name, head_seq, head_hash FROM chains").fetchall()
        finally:
            conn.execute("COMMIT")
        if position == 0:
            return 0, GENESIS_HASH.hex()
        return position, heads_digest(heads)

    def heads_at(self, position: int) -> list[tuple[str, int, bytes]]:
        """(chain, seq, hash) of every chain's last record at or before `position`."""
        conn = self._reader()
        heads = []
        for chain_id, name in conn.execute("SELECT id, name FROM chains").fetchall():
            found = conn.execute(schema.HEAD_AT, (chain_id, position)).fetchone()
            if found is not None:
                heads.append((name, found[0], found[1]))
        return heads

    def chains(self) -> dict[str, tuple[int, str]]:
        """Every chain indexed: id to (seq, hash hex) of its head."""
        return {name: (seq, digest.hex()) for name, seq, digest in self._reader().execute(
            "SELECT name, head_seq, head_hash FROM chains")}

    def checkpoints(self, latest_only: bool = False) -> list[Checkpoint]:
        """Indexed checkpoints by number (or only the latest)."""
        sql = schema.SELECT_CHECKPOINTS + (" DESC LIMIT 1" if latest_only else "")
        return [
            Checkpoint(number, seq, digest.hex(), at_ms, key_id, signature)
            for number, seq, digest, at_ms, key_id, signature in self._reader().execute(sql)
        ]

    def _chain_name(self, conn: sqlite3.Connection, chain_id: int) -> str:
        name = self._chain_names.get(chain_id)
        if name is None:
            found = conn.execute("SELECT name FROM chains WHERE id = ?", (chain_id,)).fetchone()
            if found is None:
                raise AuditError(f"audit index: chain {chain_id} is missing; delete the index")
            name = self._chain_names[chain_id] = found[0]
        return name

    def _record(self, conn: sqlite3.Connection, row: Sequence[Any]) -> ChainedAuditRecord:
        (position, kind, at_ms, subject, recipient, source, agreement, subscription,
         outcome, event_id, decision_id, actor, detail, prev_hash, hash_, tail, chain,
         chain_seq) = row
        if tail is not None:
            text = self._tails.get(tail)
            if text is None:
                found = conn.execute("SELECT text FROM tails WHERE digest = ?",
                                     (tail,)).fetchone()
                if found is None:
                    raise AuditError(f"audit index: the shared part of the record at "
                                     f"position {position} is missing; delete the index")
                text = self._tails[tail] = found[0]
            detail += text
        return ChainedAuditRecord(
            position, kind, at_ms, subject, recipient, source, agreement, subscription,
            outcome, event_id, decision_id, actor,
            self._plans.detail(conn, position, kind, detail), prev_hash.hex(),
            hash_.hex(), chain=self._chain_name(conn, chain), chain_seq=chain_seq,
        )

    def _stream_connection(self) -> sqlite3.Connection:
        if self._closed:
            raise AuditError("the audit index is closed")
        return self._connect()

    def close(self) -> None:
        """Close every connection. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for conn in [self._writer, *self._readers]:
                conn.close()
            self._readers.clear()
