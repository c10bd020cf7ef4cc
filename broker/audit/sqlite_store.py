"""`SqliteAuditStore`: the audit chain in one SQLite database (WAL) under the data dir."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

from broker.audit import plan_table, record_counts
from broker.audit import sqlite_schema as schema
from broker.audit.disclosures import Disclosure
from broker.audit.errors import AuditStoreNotFoundError, AuditStoreUnavailableError
from broker.audit.plan_table import PlanTexts
from broker.audit.plans import DecisionDetail, plan_row
from broker.audit.record_table import BUCKET_BITS, RecordSql
from broker.audit.records import (
    GENESIS_HASH,
    AuditEntry,
    AuditRecord,
    Checkpoint,
    StoredRow,
    prepared_detail,
)
from broker.audit.row_bytes import RowBytes
from broker.audit.shared_tails import SHARE_FROM_CHARS, SharedTails
from broker.audit.sqlite_chain import ChainSnapshot
from broker.audit.store import AuditCount, AuditFilter, AuditPage, CountColumn
from broker.audit.table_reader import RecordTableReader
from broker.errors import AuditError
from broker.log.sqlite_wal import WalCheckpointer

_TRANSIENT_MARKERS = ("locked", "busy", "disk i/o", "full", "unable to open")


def _translate(exc: sqlite3.Error, doing: str) -> AuditError:
    message = str(exc).lower()
    if isinstance(exc, sqlite3.OperationalError) and any(
        marker in message for marker in _TRANSIENT_MARKERS
    ):
        return AuditStoreUnavailableError(
            f"audit store unavailable while {doing}: {exc}; check disk space, file "
            "permissions and that no other process holds a long write lock"
        )
    return AuditError(f"audit store failed while {doing}: {exc}")


class SqliteAuditStore:
    """The embedded audit store (`AuditStore`): one SQLite file in WAL mode, safe across
    `kill -9`. Its records form one chain, so `seq` runs 1, 2, 3 … without gaps and an
    append is all-or-nothing.

    `sync="normal"` (default) makes every committed `append` survive a crash of the
    process; `sync="full"` also survives power loss or an OS crash, at the cost of an
    fsync per batch. One writer connection serialised by a lock; each append re-reads the
    head inside its write transaction, so several processes may append to one file.
    Reads use their own connections and see a consistent prefix of the chain.
    `create=False` opens an existing store only (for verification and queries).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        sync: Literal["normal", "full"] = "normal",
        create: bool = True,
    ) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise AuditStoreNotFoundError(f"no audit store at {self.path}")
        self._sync = "FULL" if sync == "full" else "NORMAL"
        self._lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._tails = SharedTails()
        self._tail_texts: dict[int, str] = {}
        self._plans = PlanTexts()
        self._plans_held: set[str] = set()  # plans the chain holds (as far as known)
        self._row_bytes = RowBytes()
        self._closed = False
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = self._connect()
        try:
            self._prepare(create)
        except BaseException:
            self._writer.close()
            raise
        self._checkpoints = WalCheckpointer(self.path, busy_timeout_s=30.0)
        self._read = RecordTableReader(
            RecordSql(), self._reader, self._stream_connection, self._record, _translate)

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA synchronous={self._sync}")
            conn.execute(f"PRAGMA cache_size=-{schema.CACHE_KIB}")
        except sqlite3.Error as exc:
            raise _translate(exc, "opening") from exc
        return conn

    def _prepare(self, create: bool) -> None:
        try:
            schema.prepare(self._writer, self.path, create)
            self._plans_held = set(plan_table.first_seqs(self._writer))
        except sqlite3.Error as exc:
            raise _translate(exc, "preparing the schema") from exc

    def _check_open(self) -> None:
        if self._closed:
            raise AuditError("the audit store is closed")

    def _reader(self) -> sqlite3.Connection:
        self._check_open()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._readers.append(conn)
        return conn

    # -- writing ---------------------------------------------------------------------

    def append(self, entries: Sequence[AuditEntry]) -> list[AuditRecord]:
        """Chain and persist `entries` as one transaction; return them as stored."""
        rows = self._append(entries)
        return [
            AuditRecord.from_row(row[:schema.TAIL], detail=entry.detail)
            for row, entry in zip(rows, entries, strict=True)
        ]

    def record(self, entries: Sequence[AuditEntry]) -> None:
        """Chain and persist `entries` as one transaction."""
        self._append(entries)

    def _append(self, entries: Sequence[AuditEntry]) -> list[StoredRow]:
        """The rows of `entries` as stored (plan records written on the way left out)."""
        self._check_open()
        if not entries:
            return []
        # Encoding the details is the costly part and needs no lock.
        details = [prepared_detail(entry) for entry in entries]
        rows: list[StoredRow] = []
        with self._lock:
            self._check_open()
            new_tails: dict[int, str] = {}
            new_plans: dict[str, tuple[int, str]] = {}
            try:
                self._append_rows(entries, details, rows, new_tails, new_plans)
            except sqlite3.Error as exc:
                self._tails.forget(set(new_tails))
                raise _translate(exc, "appending") from exc
            except BaseException:
                self._tails.forget(set(new_tails))
                raise
            self._tail_texts.update(new_tails)
            self._plans_held.update(new_plans)
        if new_plans:  # remembered; the plan records written on the way are not the caller's
            self._plans.remember((digest, text) for digest, (_seq, text) in new_plans.items())
            rows = [row for row in rows if row[0] not in {s for s, _ in new_plans.values()}]
        return rows

    def _append_rows(
        self,
        entries: Sequence[AuditEntry],
        details: list[tuple[str, bytes]],
        rows: list[StoredRow],
        new_tails: dict[int, str],
        new_plans: dict[str, tuple[int, str]],
    ) -> None:
        """Chain and insert `entries` in one transaction, each compact decision's plan
        first when the chain does not hold it yet (recorded in `new_plans`)."""
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read the head inside the write transaction: another process may append.
            last = conn.execute(
                "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            seq, prev = last if last is not None else (0, GENESIS_HASH)
            held = self._plans_held
            encode, hash_of = self._row_bytes.encode, self._row_bytes.hash_of
            for entry, (text, _raw) in zip(entries, details, strict=True):
                detail = entry.detail
                if (type(detail) is DecisionDetail and detail.plan_text is not None
                        and detail.plan_digest not in held
                        and detail.plan_digest not in new_plans
                        and not self._chain_holds(conn, detail.plan_digest)):
                    seq += 1
                    plan = plan_row(seq, entry, detail.plan_text, prev)
                    prev = hashlib.sha256(prev + encode(plan)).digest()
                    rows.append((*plan, prev, None, None))
                    new_plans[detail.plan_digest] = (seq, detail.plan_text)
                seq += 1
                head, tail_id = ((text, None) if len(text) < SHARE_FROM_CHARS
                                 else self._split_detail(conn, text, new_tails))
                row = (
                    seq, entry.kind, entry.at_ms, (subject := entry.subject), entry.recipient,
                    entry.source, entry.agreement, entry.subscription, entry.outcome,
                    entry.event_id, entry.decision_id, entry.actor, head, prev,
                )
                prev = hash_of(row, text)  # the whole detail hashed
                rows.append((*row, prev, tail_id, None if subject is None else seq >> BUCKET_BITS))
            conn.executemany(schema.INSERT, rows)
            if new_plans:
                conn.executemany(plan_table.INSERT, [
                    (digest, plan_seq) for digest, (plan_seq, _t) in new_plans.items()])
            record_counts.add(conn, map(record_counts.key_of_row, rows))
            conn.execute("COMMIT")
            self._checkpoints.wrote()
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _chain_holds(self, conn: sqlite3.Connection, digest: str) -> bool:
        """Whether another process wrote this plan since this store was opened."""
        found = conn.execute(plan_table.SELECT_ONE, (digest,)).fetchone() is not None
        if found:
            self._plans_held.add(digest)
        return found

    def _split_detail(self, conn: sqlite3.Connection, text: str,
                      new_tails: dict[int, str]) -> tuple[str, int | None]:
        head, tail_id = self._tails.match(text)
        if tail_id is not None:
            return head, tail_id
        tail = self._tails.propose(text)
        if tail is None:
            return text, None
        tail_id = conn.execute(
            "INSERT INTO audit_detail_tails (text) VALUES (?)", (tail,)
        ).lastrowid
        assert tail_id is not None
        self._tails.add(tail_id, tail)
        new_tails[tail_id] = tail
        return text[: len(text) - len(tail)], tail_id

    def add_checkpoint(
        self, seq: int, hash_hex: str, at_ms: int, key_id: str, signature: bytes
    ) -> Checkpoint:
        """Store a signed checkpoint of record `seq`, which must exist with that hash."""
        self._check_open()
        with self._lock:
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    found = conn.execute(
                        "SELECT hash FROM audit_records WHERE seq = ?", (seq,)
                    ).fetchone()
                    if found is None or found[0].hex() != hash_hex:
                        raise AuditError(
                            f"cannot checkpoint record {seq}: it is not in the chain "
                            "with that hash"
                        )
                    cursor = conn.execute(
                        "INSERT INTO audit_checkpoints (seq, hash, at_ms, key_id, signature)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (seq, bytes.fromhex(hash_hex), at_ms, key_id, signature),
                    )
                    number = cursor.lastrowid
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise _translate(exc, "adding a checkpoint") from exc
        assert number is not None
        return Checkpoint(number, seq, hash_hex, at_ms, key_id, signature)

    # -- reading ---------------------------------------------------------------------

    def head(self) -> tuple[int, str]:
        """(seq, hash hex) of the last record; (0, 64 zeros) while the log is empty."""
        try:
            last = self._reader().execute(
                "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        except sqlite3.Error as exc:
            raise _translate(exc, "reading the head") from exc
        return (0, GENESIS_HASH.hex()) if last is None else (last[0], last[1].hex())

    def checkpoints(self) -> list[Checkpoint]:
        """Every stored checkpoint, by number."""
        return self._read_checkpoints(f"{schema.SELECT_CHECKPOINTS} ORDER BY number")

    def latest_checkpoint(self) -> Checkpoint | None:
        """The checkpoint with the highest number, or None before the first."""
        found = self._read_checkpoints(f"{schema.SELECT_CHECKPOINTS} ORDER BY number DESC LIMIT 1")
        return found[0] if found else None

    def _read_checkpoints(self, sql: str) -> list[Checkpoint]:
        try:
            rows = self._reader().execute(sql).fetchall()
        except sqlite3.Error as exc:
            raise _translate(exc, "reading checkpoints") from exc
        checkpoints = []
        for number, seq, digest, at_ms, key_id, signature in rows:
            if not (type(seq) is int and type(at_ms) is int and type(key_id) is str
                    and isinstance(digest, bytes) and isinstance(signature, bytes)):
                raise AuditError(f"checkpoint {number}: stored checkpoint is malformed")
            checkpoints.append(Checkpoint(number, seq, digest.hex(), at_ms, key_id, signature))
        return checkpoints

    def _tail_text(self, conn: sqlite3.Connection, tail_id: int) -> str | None:
        text = self._tail_texts.get(tail_id)
        if text is None:
            found = conn.execute(
                "SELECT text FROM audit_detail_tails WHERE id = ?", (tail_id,)
            ).fetchone()
            if found is None:
                return None
            text = self._tail_texts[tail_id] = found[0]
        return text

    def _record(self, conn: sqlite3.Connection, row: StoredRow) -> AuditRecord:
        """A stored row as a record, its detail made whole (a decision's with its plan)."""
        if not schema.well_formed(row):
            raise AuditError(
                f"record {row[0]}: stored attributes are malformed; run `handoff audit verify`"
            )
        tail_id = row[schema.TAIL]
        text = row[12]
        if tail_id is not None:
            tail = self._tail_text(conn, tail_id) if type(tail_id) is int else None
            if tail is None:
                raise AuditError(
                    f"record {row[0]}: its detail refers to a missing shared part; "
                    "run `handoff audit verify`"
                )
            text += tail
        return AuditRecord.from_row(row[:schema.TAIL],
                                    detail=self._plans.detail(conn, row[0], row[1], text))

    def _stream_connection(self) -> sqlite3.Connection:
        self._check_open()
        return self._connect()

    @contextlib.contextmanager
    def chain_snapshot(self) -> Iterator[ChainSnapshot]:
        """What `SqliteAuditVerifier` reads, in one read transaction of its own."""
        conn = self._stream_connection()
        try:
            conn.execute("BEGIN")
            yield ChainSnapshot(conn, self._tail_text)
        except sqlite3.Error as exc:
            raise _translate(exc, "reading the chain") from exc
        finally:
            conn.close()

    def page(
        self,
        where: AuditFilter,
        *,
        cursor: int | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> AuditPage:
        """See `AuditReader.page`."""
        return self._read.page(where, cursor, limit, newest_first)

    def iter_records(
        self, where: AuditFilter | None = None, *, after: int = 0
    ) -> Iterator[AuditRecord]:
        """Stream every matching record with seq > `after`, in seq order."""
        return self._read.iter_records(where, after)

    def count(
        self, where: AuditFilter, by: Sequence[CountColumn] = ()
    ) -> tuple[AuditCount, ...]:
        """See `AuditReader.count`."""
        return self._read.count(where, by)

    def disclosures(self, where: AuditFilter) -> list[Disclosure]:
        """The accounting of disclosures for `where.subject`, oldest first."""
        return self._read.disclosures(where)

    def close(self) -> None:
        """Close every connection this store opened. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._checkpoints.close()
            for conn in [self._writer, *self._readers]:
                conn.close()
            self._readers.clear()

    def __enter__(self) -> SqliteAuditStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
