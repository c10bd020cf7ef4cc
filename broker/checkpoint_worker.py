"""Signing the audit chain head on a timer, and once more when the process stops.

A process with the `router` role signs on a timer and when it stops; a process in any
other role writes audit records too (refusals, dead letters, keys file changes) and
signs once, when it stops, so a stop (SIGTERM included) always leaves the head signed.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from broker.audit import AuditStore, CheckpointSigner, signing_key_path
from broker.errors import BrokerError

log = logging.getLogger("handoff")


class CheckpointWorker:
    """A `broker.workers.Worker`: signs a checkpoint every `interval` seconds (None: never
    on a timer) unless the latest one already covers the head, and a last one on `stop`."""

    name = "checkpoints"

    def __init__(self, signer: CheckpointSigner, store: AuditStore,
                 interval: float | None) -> None:
        self._signer = signer
        self._store = store
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._interval is None:
            return
        self._thread = threading.Thread(target=self._loop, args=(self._interval,),
                                        name="handoff-checkpoints", daemon=True)
        self._thread.start()

    def _loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.checkpoint()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.checkpoint()

    def healthy(self) -> bool:
        return True

    def checkpoint(self) -> None:
        """Sign the audit chain head, unless the latest checkpoint already covers it."""
        store = self._store
        seq, _ = store.head()
        latest = store.checkpoints()
        if seq == 0 or (latest and latest[-1].seq == seq):
            return
        try:
            self._signer.checkpoint(store)
        except BrokerError:
            log.exception("could not sign an audit checkpoint; will retry")


def signer_for(data_dir: Path, backend: str, router: bool) -> CheckpointSigner | None:
    """Who signs this process's audit checkpoints. The router creates the signing key on
    first start. Other roles sign when they stop: on the embedded log, where every
    process shares the data directory, with the one key (created if need be); on Kafka
    only when the key was put in this process's `keys/`, as docs/operations.md says."""
    path = signing_key_path(data_dir)
    if router or backend == "embedded":
        return CheckpointSigner.load_or_create(path)
    return CheckpointSigner.load(path) if path.exists() else None
