"""Connector throughput: rows per second from a dropped CSV file and from a PostgreSQL
outbox into `events.birth`, through the whole publish path (mapping, schema validation,
idempotency index, group commit, position commit), on the embedded log.

    python bench/connectors_bench.py                 # 20,000 rows each
    python bench/connectors_bench.py --rows 5000 --no-postgres

Each source runs in the benchmark's thread through `broker.testing.ConnectorHarness`
(the runtime's own batch code, without its thread), with its default batch size. Also
times a replay: the same rows read again from position zero, all recognised as
duplicates. Prints figures; asserts nothing. The machine is shared, so figures vary by
tens of percent between runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from broker.testing import ConnectorHarness

HEADER = ("mrn,recorded,child_mrn,child_first,child_last,dob,sex,weight,ga,nicu,exposure,"
          "mother_first,mother_last,mother_dob,medicaid,phone\n")
ROW = ("MPI-{n:07d},11/06/2026 14:20,C-{n:07d},Amara,Lindqvist,11/06/2026,F,2410,36,yes,"
       "OPIOIDS,Jolene,Lindqvist,05/14/1995,y,608-555-0142\n")
MAPPING = {
    "event_type": "birth",
    "fields": {
        "subject_id": "mrn",
        "occurred_at": {"from": "recorded", "convert": [{"datetime": "%m/%d/%Y %H:%M"}]},
        "child.child_id": "child_mrn", "child.first_name": "child_first",
        "child.last_name": "child_last",
        "child.birth_date": {"from": "dob", "convert": [{"date": "%m/%d/%Y"}]},
        "child.sex": {"from": "sex", "convert": [{"lookup": {"F": "FEMALE", "M": "MALE"}}]},
        "child.birth_weight_grams": {"from": "weight", "convert": ["int"]},
        "child.gestational_age_weeks": {"from": "ga", "convert": ["int"]},
        "child.nicu_admission": {"from": "nicu", "convert": ["bool"]},
        "child.substance_exposure": "exposure",
        "mother.first_name": "mother_first", "mother.last_name": "mother_last",
        "mother.birth_date": {"from": "mother_dob", "convert": [{"date": "%m/%d/%Y"}]},
        "mother.medicaid_covered_birth": {"from": "medicaid", "convert": ["bool"]},
        "mother.phone": {"from": "phone", "default": None},
        "hospital_id": {"const": "1467533928"}, "county_fips": {"const": "55025"},
    },
}


def timed(harness: ConnectorHarness, config: dict, rows: int, label: str) -> None:
    source = harness.connector(config)
    source.start()
    started = time.perf_counter()
    batches = source.run_until_idle(max_steps=1_000_000)
    elapsed = time.perf_counter() - started
    counts = source.status["records"]
    print(f"{label:<28} {rows:>7} rows in {elapsed:6.2f} s = {rows / elapsed:8.0f} rows/s "
          f"({batches} batches; out {counts['out']}, duplicate {counts['duplicate']}, "
          f"failed {counts['failed']})")
    source.stop()


def bench_file_drop(work: Path, rows: int) -> None:
    drop = work / "drop"
    drop.mkdir()
    (drop / "births.csv").write_text(HEADER + "".join(ROW.format(n=n) for n in range(rows)))
    with ConnectorHarness(work / "data-file") as harness:
        config = {"type": "file_drop", "name": "bench-drop", "agency": "county-general",
                  "folder": str(drop), "mapping": MAPPING, "min_age_seconds": 0}
        timed(harness, config, rows, "file_drop CSV")
        # The same file again: every row is a duplicate by its derived event id.
        shutil.move(str(drop / "done" / "births.csv"), drop / "births.csv")
        timed(harness, {**config, "name": "bench-drop"}, rows, "file_drop CSV, replayed")


def bench_outbox(work: Path, rows: int) -> None:
    import psycopg

    from tests.postgres_server import PostgresServer

    server = PostgresServer()
    try:
        dsn = server.create_database()
        example = json.loads(Path("schemas/events/birth.example.json").read_text())
        example.pop("event_id")
        with psycopg.connect(dsn) as conn:
            conn.execute("CREATE TABLE handoff_outbox (id bigserial PRIMARY KEY, "
                         "event_type text NOT NULL, payload jsonb NOT NULL, "
                         "created_at timestamptz NOT NULL DEFAULT now())")
            with conn.cursor().copy("COPY handoff_outbox (event_type, payload) FROM STDIN"
                                    ) as copy:
                for n in range(rows):
                    copy.write_row(("birth", json.dumps({**example,
                                                         "subject_id": f"MPI-{n:07d}"})))
        with ConnectorHarness(work / "data-pg") as harness:
            config = {"type": "postgres_outbox", "name": "bench-outbox",
                      "agency": "county-general", "dsn": dsn}
            timed(harness, config, rows, "postgres_outbox")
            harness.connectors.offsets.commit("bench-outbox", {"id": 0})
            timed(harness, config, rows, "postgres_outbox, replayed")
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="handoff-connectors-bench-"))
    try:
        bench_file_drop(work, args.rows)
        if not args.no_postgres:
            bench_outbox(work, args.rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
