"""Writing audit records to Kafka with the long shared ends of their details stored once.

A decision's detail ends with the explanation of every field, the same for every event
decided by one compiled plan (`broker.audit.shared_tails` explains how such ends are
found). `TailCutter` appends each newly found end to `_audit.tails` once, before any
record that uses it, and cuts it out of the records' values, which then take about a
tenth of the space (see `broker.audit.kafka_records` for the layout).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from broker.audit.kafka_records import H_TAIL, H_TAIL_AT, TAILS_TOPIC, cut_tail, tail_digest
from broker.audit.plans import PLAN_KIND
from broker.audit.records import StoredRow, encode_row
from broker.audit.shared_tails import SharedTails
from broker.log.port import EventLog, Headers, NewRecord


class TailCutter:
    """Turns chained rows into `_audit` values and headers. Thread-safe."""

    def __init__(self, event_log: EventLog) -> None:
        self._log = event_log
        self._lock = threading.Lock()
        self._tails = SharedTails()
        self._names: dict[int, tuple[str, bytes]] = {}
        self._next_id = 1

    def values(
        self, rows: Sequence[StoredRow], details: Sequence[tuple[str, bytes]],
        lines: Sequence[bytes] | None = None,
    ) -> list[tuple[bytes, Headers]]:
        """The value and headers of each row (hash included; its detail given as (text,
        UTF-8 bytes); `lines`, when given, its exported line, `encode_row(row,
        with_hash=True, ...)`, already made). New shared ends are appended to
        `_audit.tails` first; a `LogError` from that append is raised with nothing else
        written."""
        with self._lock:
            # Plan records are kept whole: each is written once per chain anyway.
            splits = self._split([text if row[1] != PLAN_KIND else "" for row, (text, _raw)
                                  in zip(rows, details, strict=True)])
        out: list[tuple[bytes, Headers]] = []
        made = lines if lines is not None else [
            encode_row(row, with_hash=True, detail_bytes=raw)
            for row, (_text, raw) in zip(rows, details, strict=True)]
        for row, line, (head, tail) in zip(rows, made, splits, strict=True):
            if tail is None or row[1] == PLAN_KIND:
                out.append((line, ()))
                continue
            name, tail_bytes = tail
            value, at = cut_tail(line, head, tail_bytes)
            out.append((value, ((H_TAIL, name.encode("ascii")), (H_TAIL_AT, str(at).encode()))))
        return out

    def _split(self, texts: list[str]) -> list[tuple[bytes, tuple[str, bytes] | None]]:
        # Called with the lock held.
        splits: list[tuple[bytes, tuple[str, bytes] | None]] = []
        new: dict[int, tuple[str, bytes]] = {}
        for text in texts:
            head, tail_id = self._tails.match(text)
            if tail_id is None:
                tail = self._tails.propose(text)
                if tail is not None:
                    tail_bytes = tail.encode("utf-8")
                    tail_id = self._next_id
                    self._next_id += 1
                    new[tail_id] = (tail_digest(tail_bytes), tail_bytes)
                    self._tails.add(tail_id, tail)
                    head = text[: len(text) - len(tail)]
            named = None if tail_id is None else new.get(tail_id) or self._names[tail_id]
            splits.append((head.encode("utf-8"), named))
        if new:
            try:
                self._log.append(TAILS_TOPIC, [
                    NewRecord(value=tail_bytes, key=name.encode("ascii"))
                    for name, tail_bytes in new.values()
                ])
            except BaseException:
                self._tails.forget(set(new))
                raise
            self._names.update(new)
        return splits
