"""`KafkaAuditStore`: the audit log on the Kafka backend, behind the `AuditStore` port.

    store = KafkaAuditStore(event_log, data_dir / "audit-index.db", writer="router")

- `event_log`: the runtime's `EventLog` (a `KafkaEventLog`; any adapter works). The
  store creates its topics (`_audit`, `_audit.tails`, `_audit.checkpoints`, one
  partition each) and never closes the log.
- `index_path`: a local SQLite file the store keeps as a queryable copy of the chains
  (`KafkaAuditIndex`); a cache that may be deleted.
- `writer`: a short name for this process's role or host (lowercase letters, digits,
  `.`, `_`, `-`); it starts the id of every chain this store writes.

**One chain per writer.** Each store writes its own chain, with an id nobody else uses
(`<writer>-<12 random hex>`), started on its first append. Routers that split the
ingress partitions, an API process writing refusals, a router that lost its partitions
in a rebalance but still finishes its batch: each appends only to its own chain, so no
chain can fork, whatever the consumer group does, and nothing has to fence anyone.
A decision made twice around a rebalance is recorded twice, once in each chain (at
least once, as on the embedded log). A chain whose append failed may hold a prefix of
that batch; the store then starts a new chain for the next append, so a chain never
continues from a head it is unsure of.

All chains share the `_audit` topic's one partition, whose offsets order every record
(`position` = offset + 1); a checkpoint signs the digest of every chain's head at a
position (`broker.audit.kafka_records`). `head()` returns (position, heads digest), so
`CheckpointSigner.checkpoint(store)` works unchanged. Records come back as
`ChainedAuditRecord`, whose `seq` is the position, so cursors work as on the embedded
store; `chain` and `chain_seq` give the record's place in its chain. Positions are not
gapless for readers: a record that does not fit its chain is left out of the index
(verification names it). There is no single chain to walk: `KafkaAuditVerifier` checks
every chain from the topics.

Reads catch the index up with Kafka first, so they see every record appended by any
process before the call.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from broker.audit.disclosures import Disclosure
from broker.audit.errors import AuditStoreUnavailableError
from broker.audit.kafka_index import KafkaAuditIndex
from broker.audit.kafka_records import (
    AUDIT_TOPIC,
    CHECKPOINTS_TOPIC,
    TAILS_TOPIC,
    ChainedAuditRecord,
    checkpoint_value,
    heads_digest,
)
from broker.audit.kafka_tails import TailCutter
from broker.audit.plans import DecisionDetail, plan_row
from broker.audit.records import (
    GENESIS_HASH,
    AuditEntry,
    AuditRecord,
    Checkpoint,
    StoredRow,
    prepared_detail,
)
from broker.audit.row_bytes import RowBytes
from broker.audit.store import AuditCount, AuditFilter, AuditPage, CountColumn
from broker.errors import AuditError, LogError, TopicMismatchError
from broker.log.port import EventLog, NewRecord, TopicSpec

_WRITER_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,47}")
AUDIT_TOPICS = (
    TopicSpec(AUDIT_TOPIC, partitions=1),
    TopicSpec(TAILS_TOPIC, partitions=1),
    TopicSpec(CHECKPOINTS_TOPIC, partitions=1),
)
"""The audit log's topics: records are kept forever and never compacted."""


def _unavailable(exc: LogError, doing: str) -> AuditStoreUnavailableError:
    return AuditStoreUnavailableError(f"audit log on Kafka unavailable while {doing}: {exc}")


class _Chain:
    """This store's chain: its id, head, and the digests of the plans it holds."""

    __slots__ = ("hash", "name", "plans", "seq")

    def __init__(self, name: str) -> None:
        self.name = name
        self.seq = 0
        self.hash = GENESIS_HASH
        self.plans: set[str] = set()


class KafkaAuditStore:
    """The `AuditStore` port on Kafka (see the module docstring). Thread-safe."""

    def __init__(self, event_log: EventLog, index_path: Path, *, writer: str = "broker") -> None:
        if not _WRITER_NAME.fullmatch(writer):
            raise AuditError(
                "the audit writer name must be 1 to 48 lowercase letters, digits, '.', '_' "
                "or '-', starting with a letter or digit"
            )
        self._log = event_log
        self._writer = writer
        self._lock = threading.Lock()
        self._chain: _Chain | None = None
        self._cutter = TailCutter(event_log)
        self._row_bytes = RowBytes()   # used under the lock
        try:
            for spec in AUDIT_TOPICS:
                event_log.ensure_topic(spec)
        except TopicMismatchError:
            raise  # a set-up mistake the message explains; retrying cannot help
        except LogError as exc:
            raise _unavailable(exc, "creating its topics") from exc
        self.index = KafkaAuditIndex(index_path)

    @property
    def chain(self) -> str | None:
        """The id of the chain this store appends to, once it has appended."""
        chain = self._chain
        return None if chain is None else chain.name

    # -- writing --------------------------------------------------------------------------

    def append(self, entries: Sequence[AuditEntry]) -> list[AuditRecord]:
        """Chain `entries` onto this store's chain and append them to Kafka.

        Returns when Kafka has acknowledged all of them. On failure it raises
        `AuditStoreUnavailableError`; a prefix of the batch may then be stored, and the
        next append starts a new chain. Retrying records the rest at least once.
        """
        return self._append(entries, returning=True)

    def record(self, entries: Sequence[AuditEntry]) -> None:
        """`append`, without building the stored records back."""
        self._append(entries, returning=False)

    def _append(self, entries: Sequence[AuditEntry], returning: bool) -> list[AuditRecord]:
        if not entries:
            return []
        details = [prepared_detail(entry) for entry in entries]
        with self._lock:
            chain = self._chain or _Chain(f"{self._writer}-{secrets.token_hex(6)}")
            seq, prev = chain.seq, chain.hash
            rows: list[StoredRow] = []
            texts: list[tuple[str, bytes]] = []
            lines: list[bytes] = []
            ours: list[StoredRow] = []
            new_plans: set[str] = set()
            chained = self._row_bytes.chained
            for entry, (text, raw) in zip(entries, details, strict=True):
                detail = entry.detail
                if (type(detail) is DecisionDetail and detail.plan_text is not None
                        and detail.plan_digest not in chain.plans
                        and detail.plan_digest not in new_plans):
                    # The plan goes into the chain once, before the first decision naming it.
                    seq += 1
                    plan = plan_row(seq, entry, "", prev)
                    prev, line = chained(plan, detail.plan_text)
                    rows.append((*plan, prev))
                    texts.append((detail.plan_text, detail.plan_text.encode("utf-8")))
                    lines.append(line)
                    new_plans.add(detail.plan_digest)
                seq += 1
                row = (seq, entry.kind, entry.at_ms, entry.subject, entry.recipient,
                       entry.source, entry.agreement, entry.subscription, entry.outcome,
                       entry.event_id, entry.decision_id, entry.actor, "", prev)
                # Hashed and written whole: the hash and the line from one encoding.
                prev, line = chained(row, text)
                rows.append((*row, prev))
                ours.append(rows[-1])
                texts.append((text, raw))
                lines.append(line)
            key = chain.name.encode("utf-8")
            try:
                values = self._cutter.values(rows, texts, lines)
                results = self._log.append(AUDIT_TOPIC, [
                    NewRecord(value=value, key=key, headers=headers)
                    for value, headers in values
                ])
            except LogError as exc:
                self._chain = None  # part of the batch may be stored: never continue it
                raise _unavailable(exc, "appending") from exc
            chain.seq, chain.hash = seq, prev
            chain.plans |= new_plans
            self._chain = chain
        if not returning:
            return []
        positions = {row[0]: result.offset + 1 for row, result in zip(rows, results, strict=True)}
        return [
            ChainedAuditRecord(
                positions[row[0]], entry.kind, entry.at_ms, entry.subject, entry.recipient,
                entry.source, entry.agreement, entry.subscription, entry.outcome,
                entry.event_id, entry.decision_id, entry.actor, entry.detail, row[13].hex(),
                row[14].hex(), chain=chain.name, chain_seq=row[0],
            )
            for entry, row in zip(entries, ours, strict=True)
        ]

    def add_checkpoint(
        self, seq: int, hash_hex: str, at_ms: int, key_id: str, signature: bytes
    ) -> Checkpoint:
        """Store a signed checkpoint of position `seq`, whose heads digest must be
        `hash_hex`; it is numbered by its place in `_audit.checkpoints`."""
        self._catch_up()
        found = heads_digest(self.index.heads_at(seq)) if seq > 0 else None
        if found != hash_hex:
            raise AuditError(
                f"cannot checkpoint position {seq}: the heads there do not have that digest"
            )
        unnumbered = Checkpoint(0, seq, hash_hex, at_ms, key_id, signature)
        try:
            (result,) = self._log.append(
                CHECKPOINTS_TOPIC, [NewRecord(value=checkpoint_value(unnumbered))])
        except LogError as exc:
            raise _unavailable(exc, "adding a checkpoint") from exc
        return Checkpoint(result.offset + 1, seq, hash_hex, at_ms, key_id, signature)

    # -- reading --------------------------------------------------------------------------

    def _catch_up(self) -> None:
        try:
            self.index.catch_up(self._log)
        except LogError as exc:
            raise _unavailable(exc, "reading") from exc

    def head(self) -> tuple[int, str]:
        """(position of the last record, heads digest of every chain there); (0, 64
        zeros) while the log is empty."""
        self._catch_up()
        return self.index.head()

    def chains(self) -> dict[str, tuple[int, str]]:
        """Every chain: id to (seq, hash hex) of its last record."""
        self._catch_up()
        return self.index.chains()

    def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint, by number."""
        self._catch_up()
        return self.index.checkpoints()

    def latest_checkpoint(self) -> Checkpoint | None:
        """The checkpoint with the highest number, or None before the first."""
        self._catch_up()
        found = self.index.checkpoints(latest_only=True)
        return found[0] if found else None

    def page(
        self,
        where: AuditFilter,
        *,
        cursor: int | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> AuditPage:
        """See `AuditReader.page`; `seq` is the position."""
        self._catch_up()
        return self.index.reader.page(where, cursor, limit, newest_first)

    def iter_records(
        self, where: AuditFilter | None = None, *, after: int = 0
    ) -> Iterator[AuditRecord]:
        """Stream matching records at positions after `after`, by position."""
        self._catch_up()
        return self.index.reader.iter_records(where, after)

    def count(
        self, where: AuditFilter, by: Sequence[CountColumn] = ()
    ) -> tuple[AuditCount, ...]:
        """See `AuditReader.count`."""
        self._catch_up()
        return self.index.reader.count(where, by)

    def disclosures(self, where: AuditFilter) -> list[Disclosure]:
        """The accounting of disclosures for `where.subject`, oldest first."""
        self._catch_up()
        return self.index.reader.disclosures(where)

    def close(self) -> None:
        """Close the index. The event log stays open: it belongs to the caller."""
        self.index.close()

    def __enter__(self) -> KafkaAuditStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
