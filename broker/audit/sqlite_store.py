"""`SqliteAuditStore`: the audit chain in one SQLite database (WAL) under the data dir."""

from __future__ import annotations

import sqlite3
import threading
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

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
from broker.audit.store import AuditFilter, ChainLink
from broker.errors import AuditError

_SCHEMA_VERSION = 1
_COMPRESS_FROM_BYTES = 512
"""Details this large are stored zlib-compressed (a decision explaining 20-odd fields
shrinks about 7 times); smaller ones stay readable text in the database."""
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM audit_records"  # noqa: S608 - fixed names
_SELECT_CHECKPOINTS = "SELECT number, seq, hash, at_ms, key_id, signature FROM audit_checkpoints"
_INSERT = (
    f"INSERT INTO audit_records ({', '.join(COLUMNS)}) "  # noqa: S608 - fixed names
    f"VALUES ({', '.join('?' * len(COLUMNS))})"
)
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
    detail BLOB NOT NULL,  -- canonical JSON text, or zlib-compressed UTF-8 bytes of it
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
);
-- seq is the rowid, so each index already orders its matches by seq.
CREATE INDEX IF NOT EXISTS audit_by_subject ON audit_records (subject)
    WHERE subject IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_by_recipient ON audit_records (recipient)
    WHERE recipient IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_by_agreement ON audit_records (agreement)
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


def _detail_bytes(stored: str | bytes) -> bytes:
    """The canonical detail's UTF-8 bytes from its stored form (may raise zlib.error)."""
    if isinstance(stored, bytes):
        return zlib.decompress(stored)
    return stored.encode("utf-8")


def _text_row(row: StoredRow) -> StoredRow:
    """A stored row with its detail as canonical JSON text."""
    stored = row[12]
    if type(stored) is not bytes:
        return row
    try:
        text = zlib.decompress(stored).decode("utf-8")
    except (zlib.error, UnicodeDecodeError) as exc:
        raise AuditError(
            f"record {row[0]}: stored detail is corrupt; run `handoff audit verify`"
        ) from exc
    return (*row[:12], text, *row[13:])


def _prepare_detail(entry: AuditEntry) -> tuple[bytes, str | bytes]:
    """(canonical UTF-8 bytes, form to store) of an entry's detail."""
    text = canonical_detail(entry.kind, entry.detail)
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise AuditEntryError(
            f"detail of a {entry.kind!r} entry is not valid Unicode text"
        ) from exc
    return raw, (zlib.compress(raw, 1) if len(raw) >= _COMPRESS_FROM_BYTES else text)


def _where(where: AuditFilter | None, from_seq: int) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if from_seq > 1:
        clauses.append("seq >= ?")
        params.append(from_seq)
    if where is not None:
        for column, value in where.equalities().items():
            clauses.append(f"{column} = ?")  # column names come from AuditFilter's fields
            params.append(value)
        if where.since_ms is not None:
            clauses.append("at_ms >= ?")
            params.append(where.since_ms)
        if where.until_ms is not None:
            clauses.append("at_ms < ?")
            params.append(where.until_ms)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


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
        except sqlite3.Error as exc:
            raise _translate(exc, "opening") from exc
        return conn

    def _prepare(self, create: bool) -> None:
        try:
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
        # Encoding and compressing detail are the costly parts and need no lock.
        details = [_prepare_detail(entry) for entry in entries]
        rows: list[StoredRow] = []
        with self._lock:
            self._check_open()
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    last = conn.execute(
                        "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1"
                    ).fetchone()
                    seq, prev = last if last is not None else (0, GENESIS_HASH)
                    for entry, (raw, stored) in zip(entries, details, strict=True):
                        seq += 1
                        row = (
                            seq, entry.kind, entry.at_ms, entry.subject, entry.recipient,
                            entry.source, entry.agreement, entry.subscription,
                            entry.outcome, entry.event_id, entry.decision_id, entry.actor,
                            stored, prev,
                        )
                        prev = chain_hash(prev, encode_row((*row, None), detail_bytes=raw))
                        rows.append((*row, prev))
                    conn.executemany(_INSERT, rows)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise _translate(exc, "appending") from exc
        return [
            AuditRecord.from_row(row, detail=entry.detail)
            for row, entry in zip(rows, entries, strict=True)
        ]

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
        return [
            Checkpoint(number, seq, bytes(digest).hex(), at_ms, key_id, bytes(signature))
            for number, seq, digest, at_ms, key_id, signature in rows
        ]

    def _stream(self, sql: str, params: Sequence[Any], doing: str) -> Iterator[StoredRow]:
        """Rows of one query on a connection of its own, so a long export neither holds
        the writer's lock nor shares a cursor with other callers on this thread."""
        self._check_open()
        conn = self._connect()
        try:
            yield from conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise _translate(exc, doing) from exc
        finally:
            conn.close()

    def iter_records(
        self, from_seq: int = 1, where: AuditFilter | None = None
    ) -> Iterator[AuditRecord]:
        """Stream records with seq >= from_seq (matching `where`) in seq order."""
        clause, params = _where(where, from_seq)
        for row in self._stream(f"{_SELECT}{clause} ORDER BY seq", params, "reading records"):
            yield AuditRecord.from_row(_text_row(row))

    def iter_chain(self, from_seq: int = 1) -> Iterator[ChainLink]:
        """Stream every record's (seq, prev_hash, hash, canonical bytes) in seq order."""
        clause, params = _where(None, from_seq)
        for row in self._stream(f"{_SELECT}{clause} ORDER BY seq", params, "reading the chain"):
            try:
                detail = _detail_bytes(row[12])
            except zlib.error:
                # Corrupt stored detail cannot hash to the record's hash: the verifier
                # reports it as changed content.
                detail = b""
            yield row[0], row[13], row[14], encode_row(row, detail_bytes=detail)

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
        clause, params = _where(where, after_seq + 1)
        sql = f"{_SELECT}{clause} ORDER BY seq LIMIT ?"
        try:
            rows = self._reader().execute(sql, [*params, limit]).fetchall()
        except sqlite3.Error as exc:
            raise _translate(exc, "querying") from exc
        return [AuditRecord.from_row(_text_row(row)) for row in rows]

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
        clause, params = _where(where, 1)
        try:
            rows = self._reader().execute(f"{_SELECT}{clause} ORDER BY seq", params).fetchall()
        except sqlite3.Error as exc:
            raise _translate(exc, "reading disclosures") from exc
        return [disclosure_from_record(AuditRecord.from_row(_text_row(row))) for row in rows]

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
