"""The person index's decisions on the `_linkage` topic, for the Kafka deployment.

The router process that links (the one writer) keeps the index in a local SQLite file,
appends every decision (`LinkageEvent`, JSON) to `_linkage` before the audit records and
deliveries that rely on it, and on start restores its file from the topic: it applies
what the topic has beyond the file, re-appends what the file has beyond the topic (a
crash between the two), and rebuilds the file from the topic when the two disagree.
Processes that do not link (an API process) read the same topic into a replica.

One partition, compacted, keyed `<writer>:<seq>`: every decision keeps its own key, so
compaction drops only a decision re-sent after a crash. A process claims the topic when
it first has decisions to append: it appends a marker (key `writer`), unless someone
else wrote since its index was brought up to date. A writer that finds another's marker
(or, before claiming, another's decisions) when it next appends is fenced
(`LinkerFencedError`): the router steps down, and readers ignore decisions a fenced
writer appended after a newer writer's marker. Two processes may claim at once (both
checked the topic before either marker landed): a marker says how far its writer had
read (`after`), and one that does not cover an earlier writer's marker is void, so the
first claim wins. A writer reads through what it appended (never skipping to its end)
and is fenced there, before the batch that made the decisions is audited or delivered.
A process that never links (no
`linkage.yaml`) never claims, so routers without linkage are not affected.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from broker.errors import BrokerError
from broker.log.port import EventLog, LogRecord, NewRecord, TopicSpec
from linkage.events import LinkageEvent, decode_event, encode_event
from linkage.index import PersonIndex
from linkage.sqlite_index import SqlitePersonIndex

log = logging.getLogger("handoff.linkage")

LINKAGE_TOPIC = "_linkage"
H_WRITER = "handoff.linker"
WRITER_KEY = b"writer"
_READ_BATCH = 2000
_APPLY_BATCH = 5000


class JournalError(BrokerError):
    """The linkage topic is inconsistent (a gap in the decisions); the operator must
    look at it before the linker can start."""


class LinkerFencedError(BrokerError):
    """Another process started linking: this one must stop routing."""


def is_void_marker(record: LogRecord, writer: str | None, marker_at: int) -> bool:
    """Whether a marker lost a race to claim: appended by a process that had not read as
    far as the marker of `writer` (at `marker_at`) when it checked the topic. Such a
    marker counts for no one: its writer steps down, the earlier one keeps writing."""
    body = json.loads(record.value)
    after = body.get("after")
    return (writer is not None and body["writer"] != writer and after is not None
            and int(after) <= marker_at)


def new_writer_id() -> str:
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(4)}"


class JournalReader:
    """Reads `_linkage` in order, applying the fencing rule: once a writer's marker is
    seen, only that writer's decisions count until the next marker; a decision whose seq
    is already known (re-sent after a crash) is skipped."""

    def __init__(self, event_log: EventLog) -> None:
        self._log = event_log
        event_log.ensure_topic(TopicSpec(LINKAGE_TOPIC, partitions=1, compacted=True))
        self.position = 0
        self.writer: str | None = None
        """The writer of the newest marker read so far."""
        self.marker_at = -1
        """Its offset."""
        self.last_seq = 0

    def records(self) -> Iterator[LogRecord]:
        end = self._log.end_offset(LINKAGE_TOPIC, 0)
        while self.position < end:
            batch = self._log.read(LINKAGE_TOPIC, 0, self.position, _READ_BATCH)
            if not batch:
                break
            for record in batch:
                self.position = record.offset + 1
                yield record

    def events(self) -> Iterator[LinkageEvent]:
        """Decisions appended since the last call that count, in seq order."""
        for record in self.records():
            if record.key == WRITER_KEY:
                if is_void_marker(record, self.writer, self.marker_at):
                    continue
                self.writer = json.loads(record.value)["writer"]
                self.marker_at = record.offset
                continue
            writer = record.header(H_WRITER)
            if self.writer is not None and (writer is None
                                            or writer.decode() != self.writer):
                log.warning("ignored a linkage decision a fenced writer appended at "
                            "offset %d", record.offset)
                continue
            event = decode_event(record.value)
            if event.seq <= self.last_seq:
                continue
            if event.seq != self.last_seq + 1:
                raise JournalError(f"{LINKAGE_TOPIC} jumps from seq {self.last_seq} to "
                                   f"{event.seq} at offset {record.offset}")
            self.last_seq = event.seq
            yield event


def catch_up(reader: JournalReader, index: SqlitePersonIndex) -> int:
    """Apply the decisions the topic has beyond the index; returns how many."""
    applied = 0
    pending: list[LinkageEvent] = []
    for event in reader.events():
        if event.seq <= index.last_seq():
            continue
        pending.append(event)
        if len(pending) >= _APPLY_BATCH:
            index.apply(pending)
            applied += len(pending)
            pending = []
    if pending:
        index.apply(pending)
        applied += len(pending)
    return applied


def _event_at(index: SqlitePersonIndex, seq: int) -> LinkageEvent | None:
    return next(iter(index.events(after_seq=seq - 1)), None)


class LinkageJournal:
    """The one writer's side: restore at start, then append after every change."""

    def __init__(self, event_log: EventLog, writer: str | None = None) -> None:
        self._log = event_log
        self.writer = writer or new_writer_id()
        self._reader = JournalReader(event_log)
        self._journaled = 0
        self._lock = threading.Lock()
        self._claimed = False
        self._fenced = False
        self._marker_at = -1

    def restore(self, index: SqlitePersonIndex,
                reopen: Callable[[], SqlitePersonIndex]) -> SqlitePersonIndex:
        """Bring the local index and the topic to the same decisions. Returns the index
        to use (a new one after a rebuild). Claims the topic only if the local index has
        decisions the topic lacks (this writer's, from before a crash)."""
        topic_events = list(self._reader.events())
        topic_seq = topic_events[-1].seq if topic_events else 0
        local_seq = index.last_seq()
        shared = min(local_seq, topic_seq)
        if shared and encode_event(topic_events[shared - 1]) != encode_event(
                _event_at(index, shared) or topic_events[shared - 1]):
            log.warning("the local person index disagrees with %s at seq %d; rebuilding "
                        "it from the topic", LINKAGE_TOPIC, shared)
            index = self._rebuild(index, reopen)
            local_seq = 0
        if local_seq < topic_seq:
            for start in range(local_seq, topic_seq, _APPLY_BATCH):
                index.apply(topic_events[start:start + _APPLY_BATCH])
        self._journaled = topic_seq
        if index.last_seq() > topic_seq:
            log.info("re-appending %d linkage decisions the topic missed",
                     index.last_seq() - topic_seq)
            self.flush(index)
        return index

    def _rebuild(self, index: SqlitePersonIndex,
                 reopen: Callable[[], SqlitePersonIndex]) -> SqlitePersonIndex:
        path = index.path
        index.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return reopen()

    @property
    def claimed(self) -> bool:
        return self._claimed

    def _claim(self) -> None:
        """Become the writer: append a marker after checking no one else wrote since this
        index was last brought up to date (else its decisions would clash by seq)."""
        self._check_fence(unclaimed=True)
        after = self._reader.position
        body = json.dumps({"writer": self.writer, "seq": self._journaled,
                           "after": after}).encode()
        at = self._log.append(LINKAGE_TOPIC, [NewRecord(value=body, key=WRITER_KEY)])[-1].offset
        # Another process may have written between the check and this marker (both saw
        # an empty topic and claim at once). Read on rather than skip it: anything of
        # another's before our marker makes ours void (`is_void_marker`) or this index
        # behind the topic; a valid marker after ours supersedes ours.
        self._marker_at = at
        for record in self._reader.records():
            if record.offset < at and self._foreign(record):
                self._fence()
            if record.offset > at and self._supersedes(record):
                self._fence()
        self._reader.writer = self.writer
        self._reader.marker_at = at
        self._claimed = True
        log.info("this router process links persons: it claimed %s as writer %s at offset %d",
                 LINKAGE_TOPIC, self.writer, at)

    def flush(self, index: PersonIndex) -> int:
        """Append the decisions applied since the last flush; returns how many. The first
        flush that has decisions claims the topic for this writer."""
        with self._lock:
            if index.last_seq() <= self._journaled:
                return 0
            if self._claimed:
                self._check_fence()
            else:
                self._claim()
            events = list(index.events(after_seq=self._journaled))
            header = ((H_WRITER, self.writer.encode()),)
            result = self._log.append(LINKAGE_TOPIC, [
                NewRecord(value=encode_event(e).encode(), key=f"{self.writer}:{e.seq}".encode(),
                          headers=header) for e in events])
            self._journaled = events[-1].seq
            self._reader.last_seq = self._journaled
            if result[0].offset == self._reader.position:
                self._reader.position = result[-1].offset + 1   # nothing came in between
            else:
                # Something landed between the check and these: read through it rather
                # than skip it. Another writer's marker there makes readers ignore these
                # decisions, so the batch that made them must not be audited or delivered.
                self._check_fence()
            return len(events)

    def _foreign(self, record: LogRecord) -> bool:
        if record.key == WRITER_KEY:
            return bool(json.loads(record.value)["writer"] != self.writer)
        writer = record.header(H_WRITER)
        return writer is None or writer.decode() != self.writer

    def _supersedes(self, record: LogRecord) -> bool:
        """A marker of another's that counts (not one that lost a race to ours)."""
        return (record.key == WRITER_KEY and self._foreign(record)
                and not is_void_marker(record, self.writer, self._marker_at))

    def _check_fence(self, unclaimed: bool = False) -> None:
        for record in self._reader.records():
            if unclaimed:
                if not self._foreign(record):
                    continue
            elif not self._supersedes(record):
                continue
            # Another writer's marker, or (before claiming) decisions someone else made
            # since this index was restored: this index is behind the topic.
            self._fence()

    def _fence(self) -> None:
        self._fenced = True
        raise LinkerFencedError(
            f"another router process links persons on {LINKAGE_TOPIC}; this one steps "
            "down from routing. With record linkage on Kafka, run one router process "
            "(docs/linkage.md)")
