"""What verification reads of the embedded store, in one snapshot: every record's chain
link, the daily counts the records imply, and the daily counts stored."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator

from broker.audit import plan_table, record_counts
from broker.audit import sqlite_schema as schema
from broker.audit.plans import PLAN_KIND, missing_plan, plan_digest, plan_reference
from broker.audit.record_counts import CountKey
from broker.audit.record_table import subject_bucket
from broker.audit.records import StoredRow, encode_row

ChainLink = tuple[int, bytes, bytes, bytes, str | None]
"""(seq, prev_hash, hash, canonical bytes of the record without hash, problem): what
verification checks of one stored record. `problem` names a column outside the hash
that does not match the record (altered), or is None."""
_BROKEN = (b"", b"", b"")


class ChainSnapshot:
    """The store as of one read transaction on `conn` (the caller ends it)."""

    def __init__(self, conn: sqlite3.Connection,
                 tail_text: Callable[[sqlite3.Connection, int], str | None]) -> None:
        self._conn = conn
        self._tail_text = tail_text
        self.counted: Counter[CountKey] = Counter()
        """Daily counts of the records `links` yielded, as they should be stored."""
        self.plans: dict[str, int] = {}
        """Digest of every plan record `links` yielded, to the seq of its first."""

    def links(self) -> Iterator[ChainLink]:
        """Every record's chain link in seq order."""
        counted = self.counted
        for row in self._conn.execute(f"{schema.SELECT_LINKS} ORDER BY seq"):
            link = self._link(row)
            if link[3]:
                counted[record_counts.key_of_row(row)] += 1
            yield link

    def stored_counts(self) -> Counter[CountKey]:
        """The daily counts as stored."""
        return record_counts.stored(self._conn)

    def plans_problem(self) -> str | None:
        """What is wrong with `audit_plans` (where readers find plans), given the plan
        records `links` yielded; None when it holds exactly their first seqs."""
        stored = plan_table.first_seqs(self._conn)
        for digest, seq in sorted(self.plans.items(), key=lambda item: item[1]):
            if stored.get(digest) != seq:
                return (f"record {seq}: the plan index (audit_plans) does not name this plan "
                        "record: altered outside the chain, so its decisions cannot be read")
        extra = sorted(set(stored) - set(self.plans))
        if extra:
            return (f"the plan index (audit_plans) names a plan no record holds "
                    f"({extra[0][:16]}…): altered outside the chain")
        return None

    def _link(self, row: StoredRow) -> ChainLink:
        """A stored row (with `subject_bucket` last) as a chain link: what its hash must
        be computed over, and whether its columns outside the hash fit it.

        A row altered into something that cannot be encoded (a number where text belongs,
        a missing shared part) yields a link that cannot match its hash, so the verifier
        reports the record as changed instead of failing.
        """
        seq = row[0]
        try:
            if not schema.well_formed(row):
                return (seq, *_BROKEN, None)
            tail_id = row[schema.TAIL]
            text = row[12]
            if tail_id is not None:
                tail = self._tail_text(self._conn, tail_id) if type(tail_id) is int else None
                if tail is None:
                    return (seq, *_BROKEN, None)
                text += tail
            body = encode_row(row, detail_bytes=text.encode("utf-8"))
        except (TypeError, AttributeError, ValueError, sqlite3.InterfaceError):
            return (seq, *_BROKEN, None)
        problem = None
        if row[1] == PLAN_KIND:
            self.plans.setdefault(plan_digest(text), seq)
        else:
            digest = plan_reference(row[1], text)
            if digest is not None and digest not in self.plans:
                problem = missing_plan(digest)
        if row[-1] != subject_bucket(seq, row[3]):
            problem = ("its subject index column (subject_bucket) was altered outside the "
                       "chain: lookups by subject would miss it")
        return seq, row[13], row[14], body, problem
