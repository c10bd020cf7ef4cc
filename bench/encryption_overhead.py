"""What encryption at rest costs: sealing and opening one record, and append and read
rates of the embedded log with and without `EncryptedEventLog`, measured in one run.

    python bench/encryption_overhead.py [--records N] [--value-bytes B]

Figures on a shared 2-core machine are noisy; compare the two columns of one run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from broker.crypto import DataKeyring, LocalKek, LogKeyStore  # noqa: E402
from broker.crypto.encrypted_log import EncryptedEventLog  # noqa: E402
from broker.crypto.records import associated_data, open_sealed, seal  # noqa: E402
from broker.log import EventLog, NewRecord, SqliteEventLog, TopicSpec  # noqa: E402

HEADERS = tuple((f"handoff.h{n}", b"x" * 24) for n in range(8))
"""About the headers a delivery carries."""


def per_record_micros(value_bytes: int, rounds: int = 20_000) -> tuple[float, float]:
    cipher = AESGCM(AESGCM.generate_key(bit_length=256))
    value = os.urandom(value_bytes)
    started = time.perf_counter()
    sealed = b""
    for _ in range(rounds):
        aad = associated_data("deliver.hv-births", "dk-0123456789abcdef", b"subject", HEADERS)
        sealed = seal(cipher, value, aad)
    sealing = (time.perf_counter() - started) / rounds * 1e6
    started = time.perf_counter()
    for _ in range(rounds):
        aad = associated_data("deliver.hv-births", "dk-0123456789abcdef", b"subject", HEADERS)
        open_sealed(cipher, sealed, aad)
    return sealing, (time.perf_counter() - started) / rounds * 1e6


def log_rates(log: EventLog, records: int, value_bytes: int, batch: int
              ) -> tuple[float, float]:
    topic = "deliver.bench"
    log.ensure_topic(TopicSpec(topic))
    value = os.urandom(value_bytes)
    started = time.perf_counter()
    for start in range(0, records, batch):
        log.append(topic, [NewRecord(value, key=b"subject", headers=HEADERS)
                           for _ in range(min(batch, records - start))])
    appended = records / (time.perf_counter() - started)
    started = time.perf_counter()
    offset = read = 0
    while read < records:
        got = log.read(topic, 0, offset, 1000)
        read += len(got)
        offset = got[-1].offset + 1
    return appended, records / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--value-bytes", type=int, default=600)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    sealing, opening = per_record_micros(args.value_bytes)
    print(f"one {args.value_bytes}-byte record: seal {sealing:.1f} µs, open {opening:.1f} µs "
          "(AES-256-GCM, random nonce, topic/key/header digest as associated data)")
    with tempfile.TemporaryDirectory(prefix="handoff-enc-bench-") as tmp:
        plain = SqliteEventLog(Path(tmp) / "plain.db")
        inner = SqliteEventLog(Path(tmp) / "sealed.db")
        sealed = EncryptedEventLog(inner, DataKeyring(LogKeyStore(inner),
                                                      LocalKek(os.urandom(32))))
        results = {}
        for name, log in (("plain", plain), ("encrypted", sealed)):
            results[name] = log_rates(log, args.records, args.value_bytes, args.batch)
            log.close()
    print(f"embedded log, {args.records} records in batches of {args.batch}:")
    for name, (appended, read) in results.items():
        print(f"  {name:<10} append {appended:>9,.0f} records/s   read {read:>9,.0f} records/s")
    (pa, pr), (ea, er) = results["plain"], results["encrypted"]
    print(f"  encrypted / plain: append {ea / pa:.2f}x, read {er / pr:.2f}x")


if __name__ == "__main__":
    main()
