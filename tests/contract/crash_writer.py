"""Append records in a loop until killed, printing each acknowledged record.

Usage: python crash_writer.py TARGET_JSON TOPIC

TARGET_JSON is an `EventLogFactory.target` from conftest.py. For every record whose
`append` has returned, one line "SEQ PARTITION OFFSET" goes to stdout, flushed, so the
test that kills this process knows exactly which records the log acknowledged.
Record SEQ has key b"subject-{SEQ % 13}", value `expected_value(SEQ)` and a header
("seq", SEQ as text); the test recomputes them to check each record is intact.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from broker.log import EventLog, NewRecord, SqliteEventLog
from broker.log.kafka import KafkaEventLog

_GIVE_UP_AFTER_S = 60.0
"""Stop on our own if nobody kills us, so a failed test leaves no process behind."""


def expected_value(seq: int) -> bytes:
    return f"record {seq} ".encode() * 16


def open_log(target: dict[str, str]) -> EventLog:
    if target["backend"] == "embedded":
        return SqliteEventLog(Path(target["path"]))
    if target["backend"] == "kafka":
        return KafkaEventLog(target["bootstrap_servers"], topic_prefix=target["topic_prefix"])
    raise SystemExit(f"crash_writer: unknown backend {target['backend']!r}")


def main() -> None:
    target, topic = json.loads(sys.argv[1]), sys.argv[2]
    log = open_log(target)
    stop_at = time.monotonic() + _GIVE_UP_AFTER_S
    seq = 0
    while time.monotonic() < stop_at:
        # Batches of 1 to 4 records, so the kill can land inside a multi-record append.
        batch = list(range(seq, seq + 1 + seq % 4))
        results = log.append(
            topic,
            [
                NewRecord(
                    expected_value(n),
                    key=f"subject-{n % 13}".encode(),
                    headers=(("seq", str(n).encode()),),
                )
                for n in batch
            ],
        )
        sys.stdout.write(
            "".join(f"{n} {r.partition} {r.offset}\n" for n, r in zip(batch, results, strict=True))
        )
        sys.stdout.flush()
        seq = batch[-1] + 1
    log.close()


if __name__ == "__main__":
    main()
