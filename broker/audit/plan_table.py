"""Where a store finds a decision plan by its digest: the table `audit_plans`.

Both keepers of a records table (the embedded store and the Kafka index) keep beside it
`audit_plans (plan, seq)`: for each plan digest, the `seq` of the first
`decision_plan` record holding it. It is derived from the records and checked by the
verifiers; a reader also re-hashes every plan text it reads, so an edited table can
make a plan unreadable but never make a decision read as another plan's.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable

from broker.audit.plans import PLAN_KIND, DecisionDetail, plan_digest, plan_reference
from broker.audit.records import CanonicalDetail

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_plans (
    plan TEXT PRIMARY KEY,  -- SHA-256 hex of a decision_plan record's detail
    seq INTEGER NOT NULL    -- the first record holding it
) WITHOUT ROWID;
"""
INSERT = "INSERT OR IGNORE INTO audit_plans (plan, seq) VALUES (?, ?)"
SELECT_ALL = "SELECT plan, seq FROM audit_plans"
_SELECT_SEQ = "SELECT seq FROM audit_plans WHERE plan = ?"
SELECT_ONE = "SELECT 1 FROM audit_plans WHERE plan = ?"

_SELECT_PLAN = (
    "SELECT detail FROM audit_records WHERE seq = ? AND kind = ? AND detail_tail IS NULL")


def _plan_detail(conn: sqlite3.Connection, seq: int) -> str | None:
    """The detail of the `decision_plan` record at `seq` (plans are stored whole)."""
    found = conn.execute(_SELECT_PLAN, (seq, PLAN_KIND)).fetchone()
    return None if found is None or type(found[0]) is not str else found[0]


class PlanTexts:
    """Plan texts by digest, read through `audit_plans` and kept in memory (plans are
    few). Thread-safe."""

    def __init__(self) -> None:
        self._texts: dict[str, str] = {}
        self._lock = threading.Lock()

    def remember(self, texts: Iterable[tuple[str, str]]) -> None:
        """Plans just written: (digest, text)."""
        with self._lock:
            self._texts.update(texts)

    def text(self, conn: sqlite3.Connection, digest: str) -> str | None:
        """The plan whose detail hashes to `digest`, or None if the store has none."""
        found = self._texts.get(digest)
        if found is not None:
            return found
        row = conn.execute(_SELECT_SEQ, (digest,)).fetchone()
        if row is None or type(row[0]) is not int:
            return None
        text = _plan_detail(conn, row[0])
        if text is None or plan_digest(text) != digest:
            return None
        with self._lock:
            self._texts[digest] = text
        return text

    def detail(self, conn: sqlite3.Connection, seq: int, kind: str, text: str
               ) -> CanonicalDetail:
        """A stored detail as readers see it: a compact decision expanded with its plan
        (`DecisionDetail`; reading it raises `AuditError` naming `seq` when the plan is
        missing), anything else as stored."""
        digest = plan_reference(kind, text)
        if digest is None:
            return CanonicalDetail(text)
        plan = self.text(conn, digest) if digest else None
        return DecisionDetail(text, digest, plan, f"record {seq}: the decision plan it names "
                              "is missing or altered; run `handoff audit verify`")


def add_plans(conn: sqlite3.Connection, rows: Iterable[tuple[object, ...]]) -> None:
    """Index the plan records among `rows` (`record_table.READ_COLUMNS` order, as the
    Kafka index inserts them): those stored whole, by the digest of their detail."""
    conn.executemany(INSERT, [
        (plan_digest(str(row[12])), row[0]) for row in rows
        if row[1] == PLAN_KIND and row[15] is None])  # 15: detail_tail


def first_seqs(conn: sqlite3.Connection) -> dict[str, int]:
    """The table as stored: digest to seq."""
    return {plan: seq for plan, seq in conn.execute(SELECT_ALL)}
