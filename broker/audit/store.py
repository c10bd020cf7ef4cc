"""The audit log's ports: what each caller needs from it, and nothing more.

- `AuditAppender`: the broker records entries (`Auditor`).
- `CheckpointLog`: the signer reads the head and stores signed checkpoints.
- `AuditReader`: queries, exports, the accounting of disclosures and the compliance
  console read records through one `AuditFilter`: keyset pages, streams, counts.
- `AuditVerifier`: re-walks a backend's chains and checkpoints. Each backend has its
  own (`SqliteAuditVerifier`, `KafkaAuditVerifier`), because what "the chain" is differs.
- `AuditStore`: all of the first three, as the composition root opens it.

What every backend guarantees to readers:

- Each record has a `seq` that orders the log: it is strictly increasing in the order
  records were appended, and the same for a record in every process that reads the
  log, so a cursor taken in one API process pages on in another. It is **not** promised
  to be gapless: on the embedded store it is the chain's seq (1, 2, 3 …); on Kafka it is
  the record's position in the audit topic, and a record that does not fit its chain is
  left out of queries (verification names it). Chain continuity is the verifier's job.
- A read sees every record appended before it started, by any process.
- Records are never changed or removed through the ports.

What appenders are promised: `append` returns once every entry is durable; on failure it
raises (`AuditStoreUnavailableError` when retrying may help), and part of the batch may
have been stored, so retrying records each entry at least once (the embedded store's
batches are in fact all-or-nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Literal, Protocol, runtime_checkable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from broker.audit.disclosures import Disclosure
from broker.audit.errors import AuditQueryError
from broker.audit.records import AuditEntry, AuditRecord, Checkpoint

CountColumn = Literal["kind", "outcome", "agreement", "recipient", "source", "subscription"]
"""Attributes records can be counted by."""
COUNT_COLUMNS: tuple[CountColumn, ...] = (
    "kind", "outcome", "agreement", "recipient", "source", "subscription")
MAX_PAGE = 10_000
"""The largest page a reader returns; stream with `iter_records` for more."""

ProgressCallback = Callable[[int, int], None]
"""Called as (done, total) while a long operation runs; total may grow as it goes."""
ExportedCheckpoint = tuple[Checkpoint, "str | None"]
"""A checkpoint kept outside the broker, with the chain it names (Kafka imports only)."""


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which records a query, count or export selects. Unset attributes match anything.

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
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None:
                continue
            if item.name in ("since_ms", "until_ms"):
                if type(value) is not int:
                    raise AuditQueryError(f"{item.name} must be an integer")
            elif not isinstance(value, str):
                raise AuditQueryError(f"{item.name} must be text")
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

    def matches(self, record: AuditRecord) -> bool:
        """Whether `record` is selected (for callers holding records already)."""
        if any(getattr(record, name) != value for name, value in self.equalities().items()):
            return False
        if self.since_ms is not None and record.at_ms < self.since_ms:
            return False
        return self.until_ms is None or record.at_ms < self.until_ms


@dataclass(frozen=True, slots=True)
class AuditPage:
    """One page of records, and where the next one starts."""

    records: tuple[AuditRecord, ...]
    cursor: int | None
    """Pass back as `cursor` for the next page: the seq of this page's last record (the
    cursor given when the page is empty, so polling at the end waits for new records)."""
    more: bool
    """Whether more records matched beyond this page when it was read."""


@dataclass(frozen=True, slots=True)
class AuditCount:
    """How many records have one combination of values of the counted attributes."""

    group: tuple[str | None, ...]
    """Values of the `by` attributes, in the order asked for."""
    count: int


def check_page_limit(limit: int) -> None:
    """Refuse a page size outside 1 … MAX_PAGE."""
    if type(limit) is not int or not 1 <= limit <= MAX_PAGE:
        raise AuditQueryError(f"limit must be between 1 and {MAX_PAGE}")


def check_count_columns(by: Sequence[str]) -> tuple[CountColumn, ...]:
    """The attributes to count by, refusing unknown or repeated ones."""
    chosen: list[CountColumn] = []
    for name in by:
        if name not in COUNT_COLUMNS:
            raise AuditQueryError(
                f"cannot count by {name!r}: choose from {', '.join(COUNT_COLUMNS)}")
        if name in chosen:
            raise AuditQueryError(f"{name!r} is given twice")
        chosen.append(name)
    return tuple(chosen)


@runtime_checkable
class AuditAppender(Protocol):
    """Where the broker records what happened."""

    def append(self, entries: Sequence[AuditEntry]) -> list[AuditRecord]:
        """Record `entries` in order; return them as stored (with seq and hashes)."""
        ...

    def record(self, entries: Sequence[AuditEntry]) -> None:
        """Record `entries` in order, as `append` does, returning nothing: the router's
        path, where building the stored records back costs more than some entries."""
        ...


@runtime_checkable
class CheckpointLog(Protocol):
    """What signing checkpoints needs: the head to sign, and where signatures go."""

    def head(self) -> tuple[int, str]:
        """(seq, hash hex) a checkpoint signs now; (0, 64 zeros) while the log is empty.
        On Kafka: (position, digest of every chain's head there)."""
        ...

    def latest_checkpoint(self) -> Checkpoint | None:
        """The checkpoint with the highest number, or None before the first."""
        ...

    def add_checkpoint(
        self, seq: int, hash_hex: str, at_ms: int, key_id: str, signature: bytes
    ) -> Checkpoint:
        """Store a signed checkpoint of `head()` as it was; numbered 1, 2, 3 …"""
        ...


@runtime_checkable
class AuditReader(Protocol):
    """Reading the audit log: what queries, exports, the accounting of disclosures and the
    compliance console need. Every method takes one `AuditFilter`."""

    def page(
        self,
        where: AuditFilter,
        *,
        cursor: int | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> AuditPage:
        """Up to `limit` (1 … MAX_PAGE) matching records in seq order, oldest first or
        newest first, after `cursor` (the previous page's `cursor`) in that order.
        Keyset paging: a page costs the same however deep it is, and records appended
        meanwhile are neither skipped nor repeated."""
        ...

    def iter_records(
        self, where: AuditFilter | None = None, *, after: int = 0
    ) -> Iterator[AuditRecord]:
        """Stream every matching record with seq > `after`, oldest first (exports)."""
        ...

    def count(
        self, where: AuditFilter, by: Sequence[CountColumn] = ()
    ) -> tuple[AuditCount, ...]:
        """How many records match, per combination of the `by` attributes (ordered by
        them, nulls first); with no `by`, one count of everything that matches."""
        ...

    def disclosures(self, where: AuditFilter) -> list[Disclosure]:
        """The accounting of disclosures: permitted decisions about `where.subject`
        (required), narrowed by the filter's other attributes, oldest first."""
        ...

    def head(self) -> tuple[int, str]:
        """As `CheckpointLog.head`."""
        ...

    def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint, by number."""
        ...

    def latest_checkpoint(self) -> Checkpoint | None:
        """The checkpoint with the highest number, or None before the first."""
        ...


@runtime_checkable
class AuditStore(AuditAppender, CheckpointLog, AuditReader, Protocol):
    """An audit log as the composition root opens it: append, sign, read."""

    def close(self) -> None:
        """Release resources. Idempotent."""
        ...


class VerifyResult(Protocol):
    """What every verifier reports."""

    @property
    def ok(self) -> bool: ...

    @property
    def problem(self) -> str | None: ...

    @property
    def records_checked(self) -> int: ...

    @property
    def checkpoints_checked(self) -> int: ...

    @property
    def signatures_checked(self) -> bool: ...

    def summary(self) -> str:
        """One line for people: `ok: …` or `FAILED: <the first problem>`."""
        ...

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        ...


class AuditVerifier(Protocol):
    """Re-walks one backend's records and checkpoints; names the first problem."""

    def verify(
        self,
        public_key: Ed25519PublicKey | None = None,
        *,
        exported_checkpoints: Sequence[ExportedCheckpoint] = (),
        progress: ProgressCallback | None = None,
    ) -> VerifyResult:
        """Check every record and checkpoint, and every checkpoint's signature when
        `public_key` is given. `exported_checkpoints` are copies kept outside the broker;
        they catch checkpoints deleted together with what they covered."""
        ...
