"""Every acknowledged audit append survives `kill -9` of the writing process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from broker.audit import SqliteAuditStore, verify

WRITER = textwrap.dedent("""
    import sys
    from broker.audit import AuditEntry, SqliteAuditStore

    store = SqliteAuditStore(sys.argv[1])
    n = 0
    while True:
        batch = [
            AuditEntry(kind="decision", at_ms=n + i, subject="sp_" + "0" * 32,
                       recipient="hv-nfp", outcome="permit", event_id=f"ev-{n + i}",
                       detail={"released": ["mother.given_name"], "n": n + i})
            for i in range(50)
        ]
        records = store.append(batch)
        n += len(batch)
        print(records[-1].seq, records[-1].hash, flush=True)
""")


@pytest.mark.slow
def test_acknowledged_appends_survive_kill_9(tmp_path):
    path = tmp_path / "audit.db"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    acknowledged: list[tuple[int, str]] = []
    try:
        assert writer.stdout is not None
        for line in writer.stdout:
            seq, digest = line.split()
            acknowledged.append((int(seq), digest))
            if len(acknowledged) >= 40:
                break
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    assert acknowledged, "the writer never acknowledged an append"
    report = verify(path)
    assert report.ok, report.problem
    with SqliteAuditStore(path, create=False) as store:
        assert store.head()[0] >= acknowledged[-1][0]
        stored = {record.seq: record.hash for record in store.iter_records()}
    for acknowledged_seq, acknowledged_hash in acknowledged:
        assert stored[acknowledged_seq] == acknowledged_hash
