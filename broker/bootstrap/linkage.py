"""Opening record linkage's person index, its model and the linker, for the composition
root (`broker.bootstrap`) and `handoff linkage`."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from broker.audit import (
    AuditStore,
)
from broker.auditor import Auditor
from broker.config import Settings
from broker.errors import ConfigError
from broker.linking.audit_entries import LinkageAuditor
from broker.linking.births import WatchListFeed
from broker.linking.journal import JournalReader, LinkageJournal, catch_up
from broker.linking.linker import Linker
from broker.linking.service import LinkageService
from broker.linking.terms import thresholds_of
from broker.log.port import EventLog
from broker.metrics import Metrics
from linkage.default_model import default_model
from linkage.resolver import PersonResolver
from linkage.scoring import CompiledModel
from linkage.sqlite_index import SqlitePersonIndex
from linkage.thresholds import Thresholds
from policy import PolicyBundle
from schemas.wire import WireCodec

log = logging.getLogger("handoff")

PERSON_INDEX_FILE = Path("linkage") / "persons.db"
PERSON_REPLICA_FILE = Path("linkage") / "replica.db"
LINKAGE_MODEL_FILE = Path("linkage") / "model.json"


def load_linkage_model(data_dir: Path) -> CompiledModel:
    """The model `handoff linkage retrain --apply` trained for this installation, or the
    one shipped with Handoff."""
    path = data_dir / LINKAGE_MODEL_FILE
    if path.exists():
        return CompiledModel.from_json(path.read_text(encoding="utf-8"))
    return default_model()


@dataclass(frozen=True)
class OpenedIndex:
    """A person index this process writes, its linkage topic (Kafka), and how to close
    both (the index file, and its lock)."""

    index: SqlitePersonIndex
    journal: LinkageJournal | None
    close: Callable[[], None]


def _locked_slot(directory: Path, stem: str) -> tuple[Path, Callable[[], None]]:
    """The first `<stem>.db`, `<stem>.1.db`, … no other process holds: processes of one
    installation may share a data directory (on Kafka several routers, several API
    processes), and each needs a local index file of its own. The operating system
    releases the lock when its holder exits, `kill -9` included."""
    directory.mkdir(parents=True, exist_ok=True)
    for n in range(256):
        name = stem if n == 0 else f"{stem}.{n}"
        fd = os.open(directory / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return directory / f"{name}.db", lambda fd=fd: os.close(fd)
    raise ConfigError(f"{directory}: 256 processes already hold a {stem} index here")


def open_person_index(settings: Settings, event_log: EventLog) -> OpenedIndex:
    """The person index this process writes: `linkage/persons.db` in the data directory
    (one router per data directory on the embedded log); with the Kafka log, restored
    from (and mirrored to) the `_linkage` topic, in a file of this process's own."""
    # As durable as the embedded log: `normal` survives a process crash, `full` also a
    # power loss (an fsync per resolution).
    sync: Literal["FULL", "NORMAL"] = "FULL" if settings.log.sync == "full" else "NORMAL"
    if settings.log.backend != "kafka":
        index = SqlitePersonIndex(settings.data_dir / PERSON_INDEX_FILE, synchronous=sync)
        return OpenedIndex(index, None, index.close)
    path, release = _locked_slot(settings.data_dir / PERSON_INDEX_FILE.parent, "persons")
    journal = LinkageJournal(event_log)
    try:
        index = journal.restore(SqlitePersonIndex(path, synchronous=sync),
                                lambda: SqlitePersonIndex(path, synchronous=sync))
    except BaseException:
        release()
        raise

    def close() -> None:
        index.close()
        release()

    return OpenedIndex(index, journal, close)


def open_linker(settings: Settings, event_log: EventLog, codec: WireCodec, auditor: Auditor,
                metrics: Metrics, bundle: PolicyBundle
                ) -> tuple[Linker, WatchListFeed, Callable[[], None]]:
    """The linker (the one writer of the person index), the birth match list, and what
    closes the index."""
    opened = open_person_index(settings, event_log)
    model = load_linkage_model(settings.data_dir)
    terms = bundle.linkage
    resolver = PersonResolver(opened.index, model, thresholds_of(terms) if terms is not None
                              else Thresholds.from_probabilities(0.99, 0.5))
    linker = Linker(opened.index, resolver, LinkageAuditor(auditor), metrics, opened.journal)
    linker.use_terms(terms)
    return linker, WatchListFeed(event_log, codec, model), opened.close


def open_linkage_replica(settings: Settings, event_log: EventLog, auditor: Auditor,
                         audit_store: AuditStore, closers: list[Callable[[], None]]
                         ) -> LinkageService:
    """What an API process without the router role reads the person index through: the
    router's file on the embedded log, a replica of the `_linkage` topic on Kafka."""
    if settings.log.backend != "kafka":
        index = SqlitePersonIndex(settings.data_dir / PERSON_INDEX_FILE)
        closers.insert(0, index.close)
        return LinkageService(index, auditor, audit_store)
    path, release = _locked_slot(settings.data_dir / PERSON_REPLICA_FILE.parent, "replica")
    closers.insert(0, release)
    replica = SqlitePersonIndex(path)
    closers.insert(0, replica.close)
    reader = JournalReader(event_log)
    lock = threading.Lock()

    def refresh() -> None:
        with lock:
            catch_up(reader, replica)

    return LinkageService(replica, auditor, audit_store, refresh=refresh)
