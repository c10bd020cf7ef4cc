"""`SqliteAuditStore`: the audit chain in one SQLite database (WAL) under the data dir."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from broker.audit.disclosures import PERMIT, Disclosure, disclosure_from_record
from broker.audit.errors import (
    AuditEntryError,
    AuditQueryError,
    AuditStoreNotFoundError,
    AuditStoreUnavailableError,
)
from broker.audit.records import (
    COLUMNS,
    GENESIS_HASH,
    AuditEntry,
    AuditKind,
    AuditRecord,
    Checkpoint,
    StoredRow,
    canonical_detail,
    chain_hash,
    encode_row,
)
from broker.audit.shared_tails import SharedTails
from broker.audit.store import AuditFilter, ChainLink
from broker.errors import AuditError

_SCHEMA_VERSION = 1
_WAL_AUTOCHECKPOINT_PAGES = 10_000
"""Fold the WAL back into the database every ~40 MB rather than SQLite's default 4 MB:
each fold syncs, and index pages changed by many batches are then written once."""
_CACHE_KIB = 65_536
_STORED_COLUMNS = (*COLUMNS, "detail_tail")
_TAIL = 15
"""Index of `detail_tail` in a selected row; the 15 before it are `COLUMNS`."""
_SELECT = f"SELECT {', '.join(_STORED_COLUMNS)} FROM audit_records"  # noqa: S608 - fixed
_INSERT = (
    f"INSERT INTO audit_records ({', '.join(_STORED_COLUMNS)}, subject_bucket) "  # noqa: S608
    f"VALUES ({', '.join('?' * (len(_STORED_COLUMNS) + 1))})"
)
_BUCKET_BITS = 12
"""The subject index is kept per bucket of 4,096 consecutive records: (bucket, subject).
A plain index on subject takes one random page write per record, as pseudonyms are
random, which cut appends by two thirds; per bucket, a batch only touches the few pages
of the current bucket. A lookup seeks once per bucket: about 2,500 seeks (~15 ms) for
10 million records."""
_BY_SUBJECT = (
    "WITH RECURSIVE buckets(bucket) AS (SELECT ? UNION ALL SELECT bucket + 1 FROM buckets "  # noqa: S608
    f"WHERE bucket < (SELECT max(seq) FROM audit_records) >> {_BUCKET_BITS}) "
    f"SELECT {', '.join(_STORED_COLUMNS)} FROM buckets "
    "JOIN audit_records INDEXED BY audit_by_subject "
    "ON subject_bucket = buckets.bucket AND subject = ?"
)
_SELECT_CHECKPOINTS = "SELECT number, seq, hash, at_ms, key_id, signature FROM audit_checkpoints"
_Item = TypeVar("_Item")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_records (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    subject TEXT,
    recipient TEXT,
    source TEXT,
    agreement TEXT,
    subscription TEXT,
    outcome TEXT,
    event_id TEXT,
    decision_id TEXT,
    actor TEXT,
    detail TEXT NOT NULL,  -- canonical JSON of the detail, or its head: see detail_tail
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL,
    detail_tail INTEGER,  -- when set, the detail is `detail || audit_detail_tails.text`
    subject_bucket INTEGER  -- seq >> 12 when subject is set: see _BUCKET_BITS
);
CREATE TABLE IF NOT EXISTS audit_detail_tails (
    id INTEGER PRIMARY KEY,
    text TEXT NOT NULL
);
-- seq is the rowid, so each index already orders its matches by seq.
CREATE INDEX IF NOT EXISTS audit_by_subject ON audit_records (subject_bucket, subject)
    WHERE subject IS NOT NULL;
-- Pages of "all about recipient X" come from the first index, "X between two dates"
-- from the second. Both grow at their ends (at_ms rises with seq), so they are cheap.
CREATE INDEX IF NOT EXISTS audit_by_recipient ON audit_records (recipient)
    WHERE recipient IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_by_recipient_time ON audit_records (recipient, at_ms)
    WHERE recipient IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_by_agreement ON audit_records (agreement)
    WHERE agreement IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_by_agreement_time ON audit_records (agreement, at_ms)
    WHERE agreement IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_by_time ON audit_records (at_ms);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    number INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL,
    at_ms INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    signature BLOB NOT NULL
);
-- Guards against accidental edits; tampering that drops them is what the chain catches.
CREATE TRIGGER IF NOT EXISTS audit_records_no_update BEFORE UPDATE ON audit_records
    BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_records_no_delete BEFORE DELETE ON audit_records
    BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
    BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
    BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_detail_tails_no_update BEFORE UPDATE ON audit_detail_tails
    BEGIN SELECT RAISE(ABORT, 'audit detail tails are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_detail_tails_no_delete BEFORE DELETE ON audit_detail_tails
    BEGIN SELECT RAISE(ABORT, 'audit detail tails are append-only'); END;
"""
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


def _well_formed(row: StoredRow) -> bool:
    """Whether a stored row has the types the schema promises (tampering can break them)."""
    return (
        type(row[2]) is int and type(row[1]) is str and type(row[12]) is str
        and type(row[13]) is bytes and type(row[14]) is bytes
        and all(value is None or type(value) is str for value in row[3:12])
    )


def _prepare_detail(entry: AuditEntry) -> tuple[str, bytes]:
    """(canonical text, its UTF-8 bytes) of an entry's detail."""
    text = canonical_detail(entry.kind, entry.detail)
    try:
        return text, text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise AuditEntryError(
            f"detail of a {entry.kind!r} entry is not valid Unicode text"
        ) from exc


def _select(
    where: AuditFilter | None, from_seq: int, order_limit: str = " ORDER BY seq"
) -> tuple[str, list[Any]]:
    """SQL and parameters selecting stored rows that match, from `from_seq` on."""
    clauses: list[str] = []
    params: list[Any] = []
    if from_seq > 1:
        clauses.append("seq >= ?")
        params.append(from_seq)
    subject = None
    if where is not None:
        for column, value in where.equalities().items():
            if column == "subject":
                subject = value
                continue
            clauses.append(f"{column} = ?")  # column names come from AuditFilter's fields
            params.append(value)
        if where.since_ms is not None:
            clauses.append("at_ms >= ?")
            params.append(where.since_ms)
        if where.until_ms is not None:
            clauses.append("at_ms < ?")
            params.append(where.until_ms)
    if subject is None:
        where_sql = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        return _SELECT + where_sql + order_limit, params
    where_sql = "".join(" AND " + clause for clause in clauses)
    return (
        _BY_SUBJECT + where_sql + order_limit,
        [max(from_seq, 1) >> _BUCKET_BITS, subject, *params],
    )


class SqliteAuditStore:
    """The embedded audit store: one SQLite file in WAL mode, safe across `kill -9`.

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
        self._closed = False
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = self._connect()
        try:
            self._prepare(create)
        except BaseException:
            self._writer.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA synchronous={self._sync}")
            conn.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
        except sqlite3.Error as exc:
            raise _translate(exc, "opening") from exc
        return conn

    def _prepare(self, create: bool) -> None:
        try:
            # Per connection, so set on every open; harmless for readers.
            self._writer.execute(f"PRAGMA wal_autocheckpoint={_WAL_AUTOCHECKPOINT_PAGES}")
            version = self._writer.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                raise AuditError(
                    f"{self.path} was written by a newer Handoff (audit schema {version}); "
                    "upgrade before opening it"
                )
            if version == _SCHEMA_VERSION:
                return
            if not create:
                raise AuditStoreNotFoundError(f"{self.path} is not a Handoff audit store")
            self._writer.execute("PRAGMA journal_mode=WAL")
            self._writer.executescript(_SCHEMA)
            self._writer.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
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
        self._check_open()
        if not entries:
            return []
        # Encoding the details is the costly part and needs no lock.
        details = [_prepare_detail(entry) for entry in entries]
        rows: list[StoredRow] = []
        with self._lock:
            self._check_open()
            new_tails: dict[int, str] = {}
            try:
                self._append_rows(entries, details, rows, new_tails)
            except sqlite3.Error as exc:
                self._tails.forget(set(new_tails))
                raise _translate(exc, "appending") from exc
            except BaseException:
                self._tails.forget(set(new_tails))
                raise
            self._tail_texts.update(new_tails)
        return [
            AuditRecord.from_row(row[:_TAIL], detail=entry.detail)
            for row, entry in zip(rows, entries, strict=True)
        ]

    def _append_rows(
        self,
        entries: Sequence[AuditEntry],
        details: list[tuple[str, bytes]],
        rows: list[StoredRow],
        new_tails: dict[int, str],
    ) -> None:
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read the head inside the write transaction: another process may append.
            last = conn.execute(
                "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            seq, prev = last if last is not None else (0, GENESIS_HASH)
            for entry, (text, raw) in zip(entries, details, strict=True):
                seq += 1
                head, tail_id = self._split_detail(conn, text, new_tails)
                row = (
                    seq, entry.kind, entry.at_ms, entry.subject, entry.recipient,
                    entry.source, entry.agreement, entry.subscription, entry.outcome,
                    entry.event_id, entry.decision_id, entry.actor, head, prev,
                )
                prev = chain_hash(prev, encode_row(row, detail_bytes=raw))
                bucket = None if entry.subject is None else seq >> _BUCKET_BITS
                rows.append((*row, prev, tail_id, bucket))
            conn.executemany(_INSERT, rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _split_detail(
        self, conn: sqlite3.Connection, text: str, new_tails: dict[int, str]
    ) -> tuple[str, int | None]:
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
        return self._read_checkpoints(f"{_SELECT_CHECKPOINTS} ORDER BY number")

    def latest_checkpoint(self) -> Checkpoint | None:
        """The checkpoint with the highest number, or None before the first."""
        found = self._read_checkpoints(f"{_SELECT_CHECKPOINTS} ORDER BY number DESC LIMIT 1")
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
        """A stored row as a record, its detail made whole again."""
        if not _well_formed(row):
            raise AuditError(
                f"record {row[0]}: stored attributes are malformed; run `handoff audit verify`"
            )
        tail_id = row[_TAIL]
        if tail_id is None:
            return AuditRecord.from_row(row[:_TAIL])
        tail = self._tail_text(conn, tail_id) if type(tail_id) is int else None
        if tail is None:
            raise AuditError(
                f"record {row[0]}: its detail refers to a missing shared part; "
                "run `handoff audit verify`"
            )
        return AuditRecord.from_row((*row[:12], row[12] + tail, row[13], row[14]))

    def _link(self, conn: sqlite3.Connection, row: StoredRow) -> ChainLink:
        """A stored row as a chain link: what its hash must be computed over.

        A row altered into something that cannot be encoded (a number where text belongs,
        a missing shared part) yields a link that cannot match its hash, so the verifier
        reports the record as changed instead of failing.
        """
        try:
            tail_id = row[_TAIL]
            if tail_id is None:
                detail = row[12].encode("utf-8")
            else:
                tail = self._tail_text(conn, tail_id)
                if tail is None:
                    return row[0], b"", b"", b""
                detail = (row[12] + tail).encode("utf-8")
            prev_hash, hash_ = row[13], row[14]
            if type(prev_hash) is not bytes or type(hash_) is not bytes:
                return row[0], b"", b"", b""
            return row[0], prev_hash, hash_, encode_row(row, detail_bytes=detail)
        except (TypeError, AttributeError, ValueError, sqlite3.InterfaceError):
            return row[0], b"", b"", b""

    def _stream(
        self,
        sql: str,
        params: Sequence[Any],
        doing: str,
        convert: Callable[[sqlite3.Connection, StoredRow], _Item],
    ) -> Iterator[_Item]:
        """Rows of one query on a connection of its own, so a long export neither holds
        the writer's lock nor shares a cursor with other callers on this thread. The
        query's snapshot covers every row it yields, and the tails those rows name."""
        self._check_open()
        conn = self._connect()
        try:
            for row in conn.execute(sql, params):
                yield convert(conn, row)
        except sqlite3.Error as exc:
            raise _translate(exc, doing) from exc
        finally:
            conn.close()

    def iter_records(
        self, from_seq: int = 1, where: AuditFilter | None = None
    ) -> Iterator[AuditRecord]:
        """Stream records with seq >= from_seq (matching `where`) in seq order."""
        sql, params = _select(where, from_seq)
        return self._stream(sql, params, "reading records", self._record)

    def iter_chain(self, from_seq: int = 1) -> Iterator[ChainLink]:
        """Stream every record's (seq, prev_hash, hash, canonical bytes) in seq order."""
        sql, params = _select(None, from_seq)
        return self._stream(sql, params, "reading the chain", self._link)

    def query(
        self,
        *,
        subject: str | None = None,
        recipient: str | None = None,
        agreement: str | None = None,
        outcome: str | None = None,
        kind: str | None = None,
        source: str | None = None,
        subscription: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        after_seq: int = 0,
        limit: int = 100,
    ) -> list[AuditRecord]:
        """Up to `limit` matching records with seq > after_seq, in seq order (a page)."""
        if limit < 1:
            raise AuditQueryError("limit must be at least 1")
        where = AuditFilter(
            subject=subject, recipient=recipient, agreement=agreement, outcome=outcome,
            kind=kind, source=source, subscription=subscription, since_ms=since_ms,
            until_ms=until_ms,
        )
        sql, params = _select(where, after_seq + 1, " ORDER BY seq LIMIT ?")
        try:
            conn = self._reader()
            return [self._record(conn, row) for row in conn.execute(sql, [*params, limit])]
        except sqlite3.Error as exc:
            raise _translate(exc, "querying") from exc

    def disclosures(
        self,
        subject_pseudonym: str,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> list[Disclosure]:
        """The accounting of disclosures for one subject: permitted decisions, oldest first."""
        where = AuditFilter(
            subject=subject_pseudonym, kind=AuditKind.DECISION, outcome=PERMIT,
            since_ms=since_ms, until_ms=until_ms,
        )
        sql, params = _select(where, 1)
        try:
            conn = self._reader()
            rows = conn.execute(sql, params).fetchall()
            return [disclosure_from_record(self._record(conn, row)) for row in rows]
        except sqlite3.Error as exc:
            raise _translate(exc, "reading disclosures") from exc

    def close(self) -> None:
        """Close every connection this store opened. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for conn in [self._writer, *self._readers]:
                conn.close()
            self._readers.clear()

    def __enter__(self) -> SqliteAuditStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
