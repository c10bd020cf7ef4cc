"""Drive a referral ledger over a SQLite store through a made-up log until done or killed.

Usage: python referral_ledger_writer.py STORE_PATH PUBLISHED_PATH

The log is `history()`: referrals and status updates in one partition, offset = index.
The writer resumes from the store's position, applies batches of 7 records with their
position, then runs a tick at the batch's last event time: every alert the tick returns
is appended to PUBLISHED_PATH (one event id a line, flushed) before it is recorded, as
the broker publishes before recording. A kill can land anywhere in that cycle.
"""

from __future__ import annotations

import sys
from pathlib import Path

from broker.referral_store import SqliteLedgerStore
from referrals.events import LedgerEvent
from referrals.ledger import ReferralLedger
from referrals.store import Position
from tests.referral_cases import HOUR, SIMPLE_POLICY, T0, referral, status

TOPIC = "events.log"
BATCH = 7
FAR_FUTURE = 1 << 62


def history(count: int = 300) -> list[LedgerEvent]:
    events: list[tuple[int, LedgerEvent]] = []
    for n in range(count):
        rid, at = f"HL-{n:04d}", T0 + n * HOUR
        events.append((at, referral(rid, at=at, event_id=f"r-{n}")))
        if n % 3 == 0:
            events.append((at + 2 * HOUR, status("RECEIVED", at + 2 * HOUR, rid,
                                                 event_id=f"s-{n}")))
        elif n % 3 == 1:
            events.append((at + 30 * HOUR, status("RECEIVED", at + 30 * HOUR, rid,
                                                  event_id=f"s-{n}")))
    return [e for _, e in sorted(events, key=lambda pair: (pair[0], pair[1].event_id))]


def run(store_path: Path, published: Path) -> None:
    log = history()
    ledger = ReferralLedger(SqliteLedgerStore(store_path), SIMPLE_POLICY)
    start = ledger.positions().get((TOPIC, 0), 0)
    drop_torn_line(published)
    with published.open("a", encoding="utf-8") as out:
        for offset in range(start, len(log), BATCH):
            batch = log[offset:offset + BATCH]
            ledger.apply(batch, [Position(TOPIC, 0, offset + len(batch))])
            tick(ledger, batch[-1].occurred_at, out)
            print(f"batch {offset // BATCH}", flush=True)
        tick(ledger, FAR_FUTURE, out)
    print("done", flush=True)


def drop_torn_line(published: Path) -> None:
    """Cut a line the kill tore off mid-write (the kernel stops a write to a file at a
    page boundary once SIGKILL is pending): that publish never completed, as a publish
    the broker never had acknowledged, and this run makes it again."""
    if not published.exists():
        return
    data = published.read_bytes()
    if data and not data.endswith(b"\n"):
        with published.open("r+b") as file:
            file.truncate(data.rfind(b"\n") + 1)


def tick(ledger: ReferralLedger, now: int, out) -> None:  # type: ignore[no-untyped-def]
    while True:
        alerts = ledger.due_alerts(now, limit=50)
        if not alerts:
            return
        for alert in alerts:
            out.write(f"{alert.event_id}\n")
        out.flush()
        ledger.record_alerts(alerts)


if __name__ == "__main__":
    run(Path(sys.argv[1]), Path(sys.argv[2]))
