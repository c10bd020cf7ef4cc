"""The floor for Handoff's router: a hand-written fastavro + sqlite3 routing loop.

What the router must do per birth to three subscriptions, written directly, as a careful
engineer would write it for this one event type, in one process, one thread:

  read a batch of Avro birth records (schemaless, the birth schema) from a SQLite table;
  decode each with fastavro; build the two distinct views the three subscriptions need
  (hv-births and hv-births-bench share the care-coordination view: no SSN, Medicaid id,
  linkage CLK, race or Part 2 fact; eval-births gets no names or contact details,
  HMAC-SHA256 pseudonyms for the mother's and infant's ids, and a 3-digit ZIP); encode
  each view once with fastavro; write 3 delivery rows and 3 audit rows (a small JSON
  decision document, SHA-256 hash-chained to the one before) and advance the read cursor,
  one transaction per batch (WAL, synchronous=FULL, as the broker's stores).

No policy engine, no dataclasses, no metrics: the cost of the work itself.

    python bench/router_floor.py                     # 20,000 births, batches of 500
    python bench/router_floor.py --events 5000 --batch 100

Prints CPU µs per event (this process's user + system CPU over the loop) and events/s.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import io
import json
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import fastavro

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.calibration import calibration_ms  # noqa: E402
from bench.proc_cpu import self_cpu_seconds  # noqa: E402
from schemas.jsonform import record_from_json  # noqa: E402

BIRTH = REPO / "schemas" / "events" / "birth.avsc"
EXAMPLE = REPO / "schemas" / "events" / "birth.example.json"
CARE_DROPS: Mapping[str, frozenset[str]] = {
    "": frozenset(),
    "mother": frozenset({"ssn", "medicaid_id", "linkage_clk", "race_ethnicity",
                         "receiving_mat"}),
    "child": frozenset(),
}
EVAL_DROPS: Mapping[str, frozenset[str]] = {
    "": frozenset({"hospital_id"}),
    "mother": frozenset({"first_name", "last_name", "ssn", "street_address", "phone",
                         "race_ethnicity", "medicaid_id", "linkage_clk", "receiving_mat",
                         "birth_date"}),
    "child": frozenset({"first_name", "last_name", "plan_of_safe_care"}),
}
SUBSCRIPTIONS = (("hv-births", "care"), ("hv-births-bench", "care"), ("eval-births", "eval"))
read = cast(Callable[[io.BytesIO, Any], dict[str, Any]], fastavro.schemaless_reader)


def view_schema(schema: dict[str, Any], drops: Mapping[str, frozenset[str]],
                name: str) -> dict[str, Any]:
    """The record schema without the dropped fields (top level and nested records)."""
    fields = []
    for field in schema["fields"]:
        if field["name"] in drops[""]:
            continue
        if field["name"] in drops and isinstance(field["type"], dict):
            inner = field["type"]
            field = {**field, "type": {**inner, "name": f"{inner['name']}{name}",
                                       "fields": [f for f in inner["fields"]
                                                  if f["name"] not in drops[field["name"]]]}}
        fields.append(field)
    return {**schema, "name": f"{schema['name']}{name}", "fields": fields}


def project(record: dict[str, Any], drops: Mapping[str, frozenset[str]]) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k not in drops[""]}
    for nested in ("mother", "child"):
        out[nested] = {k: v for k, v in record[nested].items() if k not in drops[nested]}
    return out


def pseudonymiser(key: bytes) -> Callable[[str], str]:
    """HMAC-SHA256 with the inner and outer states computed once."""
    padded = key.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))

    def pseudonym(value: str) -> str:
        i = inner.copy()
        i.update(value.encode())
        o = outer.copy()
        o.update(i.digest())
        return "p_" + o.hexdigest()[:32]

    return pseudonym


def seed(db: sqlite3.Connection, count: int) -> None:
    """The ingress table, `count` distinct births as schemaless Avro."""
    schema = json.loads(BIRTH.read_text())
    parsed = fastavro.parse_schema(schema)
    base = record_from_json(schema, json.loads(EXAMPLE.read_text()))
    db.executescript("""
        CREATE TABLE ingress (offset INTEGER PRIMARY KEY, payload BLOB NOT NULL);
        CREATE TABLE delivery (subscription TEXT NOT NULL, event_id TEXT NOT NULL,
                               payload BLOB NOT NULL);
        CREATE TABLE audit (seq INTEGER PRIMARY KEY, record TEXT NOT NULL,
                            prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
        CREATE TABLE cursor (name TEXT PRIMARY KEY, offset INTEGER NOT NULL);
        INSERT INTO cursor VALUES ('router', -1);
    """)
    rows = []
    for n in range(count):
        record = copy.deepcopy(base)
        record["event_id"] = str(uuid.UUID(int=n + 1))
        record["subject_id"] = f"MPI-{n:07d}"
        record["child"]["child_id"] = f"MPI-C{n:07d}"
        out = io.BytesIO()
        fastavro.schemaless_writer(out, parsed, record)
        rows.append((n, out.getvalue()))
    db.executemany("INSERT INTO ingress VALUES (?, ?)", rows)
    db.commit()


@dataclass(frozen=True)
class RouterFloor:
    events: int
    batch: int
    seconds: float
    cpu_seconds: float

    @property
    def cpu_us_per_event(self) -> float:
        return self.cpu_seconds / self.events * 1e6

    @property
    def per_second(self) -> float:
        return self.events / self.seconds

    def line(self) -> str:
        return (f"floor (b): hand-written fastavro + sqlite3 router loop, {self.events:,} "
                f"births to 3 subscriptions, batches of {self.batch}: "
                f"{self.cpu_us_per_event:.0f} µs CPU per event, {self.per_second:,.0f} "
                f"events/s")


def route(db: sqlite3.Connection, batch: int) -> int:
    """Route everything after the cursor; the number of events routed."""
    schema = json.loads(BIRTH.read_text())
    parsed = fastavro.parse_schema(schema)
    views = {"care": (CARE_DROPS, fastavro.parse_schema(view_schema(schema, CARE_DROPS, "Care"))),
             "eval": (EVAL_DROPS, fastavro.parse_schema(view_schema(schema, EVAL_DROPS, "Eval")))}
    pseudonym = pseudonymiser(b"router-floor-pseudonym-key-0123456789")
    prev = "0" * 64
    seq = 0
    routed = 0
    cursor = db.execute("SELECT offset FROM cursor WHERE name = 'router'").fetchone()[0]
    while True:
        rows = db.execute("SELECT offset, payload FROM ingress WHERE offset > ? "
                          "ORDER BY offset LIMIT ?", (cursor, batch)).fetchall()
        if not rows:
            return routed
        deliveries, audits = [], []
        for offset, payload in rows:
            record = read(io.BytesIO(payload), parsed)
            encoded: dict[str, bytes] = {}
            for kind, (drops, view_parsed) in views.items():
                view = project(record, drops)
                if kind == "eval":
                    view["subject_id"] = pseudonym(view["subject_id"])
                    view["child"]["child_id"] = pseudonym(view["child"]["child_id"])
                    zip_code = view["mother"]["zip"]
                    view["mother"]["zip"] = None if zip_code is None else zip_code[:3]
                out = io.BytesIO()
                fastavro.schemaless_writer(out, view_parsed, view)
                encoded[kind] = out.getvalue()
            event_id = record["event_id"]
            subject = pseudonym(record["subject_id"])
            for subscription, kind in SUBSCRIPTIONS:
                body = encoded[kind]
                deliveries.append((subscription, event_id, body))
                document = json.dumps({
                    "event_id": event_id, "offset": offset, "subscription": subscription,
                    "outcome": "deliver", "plan": kind, "subject": subject,
                    "view_sha256": hashlib.sha256(body).hexdigest()},
                    separators=(",", ":"))
                digest = hashlib.sha256((prev + document).encode()).hexdigest()
                seq += 1
                audits.append((seq, document, prev, digest))
                prev = digest
            cursor = offset
        with db:
            db.executemany("INSERT INTO delivery VALUES (?, ?, ?)", deliveries)
            db.executemany("INSERT INTO audit VALUES (?, ?, ?, ?)", audits)
            db.execute("UPDATE cursor SET offset = ? WHERE name = 'router'", (cursor,))
        routed += len(rows)


def run(events: int = 20_000, batch: int = 500) -> RouterFloor:
    with tempfile.TemporaryDirectory(prefix="router-floor-") as tmp:
        db = sqlite3.connect(Path(tmp) / "floor.db", isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.isolation_level = "DEFERRED"   # a transaction per `with db:` block
        seed(db, events)
        cpu, wall = self_cpu_seconds(), time.perf_counter()
        routed = route(db, batch)
        wall, cpu = time.perf_counter() - wall, self_cpu_seconds() - cpu
        delivered = db.execute("SELECT count(*) FROM delivery").fetchone()[0]
        db.close()
    if routed != events or delivered != 3 * events:
        raise RuntimeError(f"router floor routed {routed} of {events} events, "
                           f"{delivered} deliveries")
    return RouterFloor(events=events, batch=batch, seconds=wall, cpu_seconds=cpu)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    print(f"calibration loop {calibration_ms():.0f} ms")
    print(run(args.events, args.batch).line())
