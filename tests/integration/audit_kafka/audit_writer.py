"""Append audit records from a process of its own, as one router of several would.

Usage: python audit_writer.py BOOTSTRAP_SERVERS TOPIC_PREFIX INDEX_PATH WRITER BATCHES

Appends BATCHES batches of 10 decisions, then prints its chain id and exits.
"""

from __future__ import annotations

import sys
from pathlib import Path

from broker.audit.kafka_store import KafkaAuditStore
from broker.log.kafka import KafkaEventLog
from tests.integration.audit_kafka.conftest import decision


def main() -> None:
    servers, prefix, index, writer, batches = sys.argv[1:6]
    log = KafkaEventLog(servers, topic_prefix=prefix)
    store = KafkaAuditStore(log, Path(index), writer=writer)
    try:
        for batch in range(int(batches)):
            store.append([decision(batch * 10 + n, f"MPI-{n}") for n in range(10)])
        print(store.chain, flush=True)
    finally:
        store.close()
        log.close()


if __name__ == "__main__":
    main()
