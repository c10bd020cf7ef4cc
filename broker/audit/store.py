"""The audit-store port: what the broker and the verifier need from an audit log.

`SqliteAuditStore` implements it for the embedded broker; a Kafka-backed chain can be
added behind the same port. Guarantees every implementation gives:

- `append` chains and persists a batch atomically: either every entry of the batch gets
  the next consecutive seq and is durable when the call returns, or none does.
- Records are never changed or removed through the port; seq starts at 1 and grows by one.
- Reads see a consistent prefix of the chain: a record is visible only with every record
  before it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol, runtime_checkable

from broker.audit.disclosures import Disclosure
from broker.audit.errors import AuditQueryError
from broker.audit.records import AuditEntry, AuditRecord, Checkpoint

ChainLink = tuple[int, bytes, bytes, bytes]
"""(seq, prev_hash, hash, canonical bytes of the record without hash), as stored."""


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which records a query or export selects. Unset attributes match anything.

    Attributes are compared for equality; `since_ms` is inclusive, `until_ms` exclusive.
    `subject` is a subject pseudonym.
    """

    subject: str | None = None
    recipient: str | None = None
    agreement: str | None = None
    outcome: str | None = None
    kind: str | None = None
    source: str | None = None
    subscription: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    def __post_init__(self) -> None:
        if (
            self.since_ms is not None
            and self.until_ms is not None
            and self.until_ms < self.since_ms
        ):
            raise AuditQueryError("the time range ends before it starts")

    def equalities(self) -> dict[str, str]:
        """Attribute name to required value, for the attributes that are set."""
        return {
            item.name: str(value)
            for item in fields(self)
            if item.name not in ("since_ms", "until_ms")
            and (value := getattr(self, item.name)) is not None
        }


def filter_clauses(
    where: AuditFilter | None, table: str = ""
) -> tuple[list[str], list[Any], str | None]:
    """SQL conditions and parameters for a filter's attributes other than `subject`,
    which is returned apart because each store looks subjects up through its own index.
    `table` prefixes column names (`"r."`)."""
    clauses: list[str] = []
    params: list[Any] = []
    subject = None
    if where is not None:
        for column, value in where.equalities().items():
            if column == "subject":
                subject = value
                continue
            clauses.append(f"{table}{column} = ?")  # names come from AuditFilter's fields
            params.append(value)
        if where.since_ms is not None:
            clauses.append(f"{table}at_ms >= ?")
            params.append(where.since_ms)
        if where.until_ms is not None:
            clauses.append(f"{table}at_ms < ?")
            params.append(where.until_ms)
    return clauses, params, subject


@runtime_checkable
class AuditStore(Protocol):
    """An append-only, hash-chained log of audit records with signed checkpoints."""

    def append(self, entries: Sequence[AuditEntry]) -> list[AuditRecord]:
        """Chain and persist `entries` as one transaction; return them as stored."""
        ...

    def head(self) -> tuple[int, str]:
        """(seq, hash hex) of the last record; (0, 64 zeros) while the log is empty."""
        ...

    def iter_records(
        self, from_seq: int = 1, where: AuditFilter | None = None
    ) -> Iterator[AuditRecord]:
        """Stream records with seq >= from_seq (matching `where`) in seq order."""
        ...

    def iter_chain(self, from_seq: int = 1) -> Iterator[ChainLink]:
        """Stream every record's chain link in seq order, for verification."""
        ...

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
        ...

    def disclosures(
        self,
        subject_pseudonym: str,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> list[Disclosure]:
        """The accounting of disclosures for one subject: permitted decisions, oldest first."""
        ...

    def add_checkpoint(
        self, seq: int, hash_hex: str, at_ms: int, key_id: str, signature: bytes
    ) -> Checkpoint:
        """Store a signed checkpoint; it is numbered 1, 2, 3 … in the order added."""
        ...

    def checkpoints(self) -> list[Checkpoint]:
        """Every stored checkpoint, by number."""
        ...

    def latest_checkpoint(self) -> Checkpoint | None:
        """The checkpoint with the highest number, or None before the first."""
        ...

    def close(self) -> None:
        """Release resources. Idempotent."""
        ...
