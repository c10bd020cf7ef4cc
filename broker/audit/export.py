"""Exports of the audit log for compliance work outside the broker.

- JSON lines: one record per line, exactly the canonical JSON the chain hashes plus its
  `hash`, so each line can be re-verified with the algorithm in `docs/audit.md`; an
  unfiltered export re-verifies as a whole chain.
- CSV: flat columns for spreadsheets, with `detail` as a canonical JSON column.

Both stream: records are written as they are read, whatever the size of the log.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Literal, TextIO

from broker.audit.records import AuditRecord, canonical_detail
from broker.audit.store import AuditFilter, AuditReader, ProgressCallback

ExportFormat = Literal["jsonl", "csv"]

CSV_COLUMNS = (
    "seq", "at", "at_ms", "kind", "subject", "recipient", "source", "agreement",
    "subscription", "outcome", "event_id", "decision_id", "actor", "detail", "prev_hash",
    "hash",
)
"""CSV header. `at` is `at_ms` as ISO 8601 UTC with milliseconds, for people."""
_PROGRESS_EVERY = 1000


def iso_utc(at_ms: int) -> str:
    """`at_ms` as `2025-03-01T14:03:22.120Z`."""
    moment = datetime.fromtimestamp(at_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at_ms % 1000:03d}Z"


def _reported(
    records: Iterable[AuditRecord], progress: ProgressCallback | None, total: int
) -> Iterator[AuditRecord]:
    """`records`, calling `progress(done, total)` every thousand and at the end."""
    done = 0
    for done, record in enumerate(records, start=1):
        yield record
        if progress is not None and done % _PROGRESS_EVERY == 0:
            progress(done, max(total, done))
    if progress is not None:
        progress(done, max(total, done))


def export_jsonl(
    store: AuditReader, out: TextIO, where: AuditFilter | None = None,
    progress: ProgressCallback | None = None, total: int = 0,
) -> int:
    """Write matching records as canonical JSON lines; return how many were written.
    `progress` hears (written, `total`) as it goes."""
    count = 0
    for record in _reported(store.iter_records(where), progress, total):
        out.write(record.to_json_line())
        out.write("\n")
        count += 1
    return count


def export_csv(
    store: AuditReader, out: TextIO, where: AuditFilter | None = None,
    progress: ProgressCallback | None = None, total: int = 0,
) -> int:
    """Write matching records as CSV with a header row; return how many were written."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for record in _reported(store.iter_records(where), progress, total):
        writer.writerow((
            record.seq, iso_utc(record.at_ms), record.at_ms, record.kind, record.subject,
            record.recipient, record.source, record.agreement, record.subscription,
            record.outcome, record.event_id, record.decision_id, record.actor,
            canonical_detail(record.kind, record.detail), record.prev_hash, record.hash,
        ))
        count += 1
    return count


def export_records(
    store: AuditReader, out: TextIO, fmt: ExportFormat, where: AuditFilter | None = None,
    progress: ProgressCallback | None = None, total: int = 0,
) -> int:
    """Write matching records in `fmt`; return how many were written."""
    if fmt == "csv":
        return export_csv(store, out, where, progress, total)
    return export_jsonl(store, out, where, progress, total)
