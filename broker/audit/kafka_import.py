"""Importing an existing chain (the embedded store's) into the audit log on Kafka.

The records are copied verbatim, as one chain of the Kafka log: same `seq`, content,
`prev_hash` and `hash`, so the chain verifies exactly as it did, and the embedded
store's signed checkpoints are imported too, each naming the chain (they sign a record
of it, not a heads digest). `handoff migrate` uses this; it can be interrupted and run
again, and continues after the last record and checkpoint already in Kafka.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from broker.audit.errors import AuditFormatError
from broker.audit.kafka_records import (
    AUDIT_TOPIC,
    CHECKPOINTS_TOPIC,
    checkpoint_value,
    read_checkpoint,
)
from broker.audit.kafka_store import AUDIT_TOPICS
from broker.audit.kafka_tails import TailCutter
from broker.audit.records import GENESIS_HASH, AuditRecord, Checkpoint, StoredRow
from broker.audit.store import ProgressCallback
from broker.errors import AuditError
from broker.log.port import EventLog, NewRecord

_READ_BATCH = 5000


@dataclass(frozen=True, slots=True)
class ImportedChain:
    """What an import found in Kafka already and what it added."""

    chain: str
    records_present: int
    records_added: int
    checkpoints_present: int
    checkpoints_added: int


def _chain_in_kafka(event_log: EventLog, chain: str) -> tuple[int, str]:
    """(last seq, its hash hex) of `chain` in `_audit`; (0, zeros) when absent."""
    key = chain.encode("utf-8")
    last, digest = 0, GENESIS_HASH.hex()
    offset, end = 0, event_log.end_offset(AUDIT_TOPIC, 0)
    while offset < end:
        records = event_log.read(AUDIT_TOPIC, 0, offset, _READ_BATCH)
        if not records:
            break
        for record in records:
            if record.key != key:
                continue
            # The attributes after the detail end the value whether or not its shared
            # tail was cut out (the tail goes inside the detail).
            value = record.value
            try:
                document = json.loads(b"{" + value[value.rfind(b',"event_id":') + 1:])
                seq, digest = int(document["seq"]), str(document["hash"])
            except (ValueError, KeyError, TypeError) as exc:
                raise AuditFormatError(
                    f"chain {chain} in Kafka holds a malformed record at offset "
                    f"{record.offset}; run `handoff audit verify --kafka …`") from exc
            last = seq
        offset = records[-1].offset + 1
    return last, digest


def _checkpoints_in_kafka(event_log: EventLog, chain: str) -> int:
    count = 0
    offset, end = 0, event_log.end_offset(CHECKPOINTS_TOPIC, 0)
    while offset < end:
        records = event_log.read(CHECKPOINTS_TOPIC, 0, offset, _READ_BATCH)
        if not records:
            break
        for record in records:
            try:
                _checkpoint, named = read_checkpoint(record.offset + 1, record.value)
            except AuditFormatError:
                continue
            count += named == chain
        offset = records[-1].offset + 1
    return count


def import_chain(
    event_log: EventLog,
    chain: str,
    records: Iterable[AuditRecord],
    checkpoints: Sequence[Checkpoint],
    *,
    batch: int = 1000,
    progress: ProgressCallback | None = None,
    total: int = 0,
) -> ImportedChain:
    """Append `records` (a whole chain from seq 1, in order) and its `checkpoints` to the
    Kafka audit log as chain `chain`, skipping what a previous run already appended.
    `progress` hears (records done, `total`) after each batch.

    Raises `AuditError` when Kafka holds a different chain under that id.
    """
    for spec in AUDIT_TOPICS:
        event_log.ensure_topic(spec)
    present, present_hash = _chain_in_kafka(event_log, chain)
    cutter = TailCutter(event_log)
    key = chain.encode("utf-8")
    added = 0
    pending: list[tuple[StoredRow, tuple[str, bytes]]] = []

    def flush() -> None:
        values = cutter.values([row for row, _ in pending], [detail for _, detail in pending])
        event_log.append(AUDIT_TOPIC, [NewRecord(value=value, key=key, headers=headers)
                                       for value, headers in values])
        pending.clear()
        if progress is not None:
            progress(present + added, max(total, present + added))

    for record in records:
        if record.seq <= present:
            if record.seq == present and record.hash != present_hash:
                raise AuditError(
                    f"Kafka already holds a different chain {chain} (record {present} "
                    "differs); import into an empty topic prefix")
            continue
        row = record.to_row()
        pending.append((row, (row[12], row[12].encode("utf-8"))))
        added += 1
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    checkpoints_present = _checkpoints_in_kafka(event_log, chain)
    missing = list(checkpoints)[checkpoints_present:]
    if missing:
        event_log.append(CHECKPOINTS_TOPIC, [
            NewRecord(value=checkpoint_value(checkpoint, chain)) for checkpoint in missing])
    return ImportedChain(chain, present, added, checkpoints_present, len(missing))
