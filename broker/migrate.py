"""Moving an embedded data directory onto Kafka (`handoff migrate`).

`Migration(data_dir, target).run()` copies, into the target event log (a `KafkaEventLog`
under the installation's topic prefix):

1. every topic of the embedded log (`events.*`, `deliver.*`, `_schemas`, `_policy`,
   `quarantine.events`, `_keys` …), partition by partition in offset order, keeping
   each record's key, headers, timestamp and partition. Offsets stay the same when the
   target partition was empty and the embedded one has no gaps (retention or compaction
   remove records, and Kafka numbers what is appended densely);
2. the consumer groups' committed offsets (the router's place), translated to the
   target's offsets, so routing continues where it stopped rather than from the start;
3. the idempotency index (`ingress.db`) into `_accepted`, with translated offsets;
4. the audit chain, verbatim, as the chain `embedded-<12 hex of record 1's hash>`, with
   the checkpoints the embedded broker signed; then the whole audit log in Kafka is
   verified and a checkpoint over every chain's head is signed with the data
   directory's key.

The embedded chain is verified (with its signed checkpoints) before anything is copied,
and the copy is refused if it fails. Stop the broker first: the migration takes the
router lock of the data directory.

It can be interrupted and run again: the topic `_migration` records that a migration
from this directory started (with the end offsets the target had then) and which steps
finished; a second run continues, appending only what is missing. A target that holds
records of anything but this migration is refused unless `force` is given (the records
are then added after what is there).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.audit.chain import verify
from broker.audit.checkpoints import CheckpointSigner, load_public_key
from broker.audit.kafka_import import import_chain
from broker.audit.kafka_records import CHECKPOINTS_TOPIC, checkpoint_value
from broker.audit.kafka_verify import verify_kafka
from broker.audit.paths import audit_db_path, signing_key_path, signing_public_key_path
from broker.audit.records import Checkpoint
from broker.audit.sqlite_store import SqliteAuditStore
from broker.errors import BrokerError, TopicMismatchError
from broker.ingest.idempotency import Accepted
from broker.ingest.kafka_idempotency import (
    ACCEPTED_PARTITIONS,
    ACCEPTED_TOPIC,
    accepted_key,
    accepted_value,
)
from broker.log.port import EventLog, NewRecord, TopicSpec
from broker.log.sqlite import SqliteEventLog
from broker.migrate_offsets import OffsetMap
from broker.roles import RouterAlreadyRunningError, RouterLock

MIGRATION_TOPIC = "_migration"
_BATCH = 1000
_STEPS = ("groups", "accepted", "audit")


class MigrationError(BrokerError):
    """The migration stopped; running it again continues where it stopped."""


class MigrationRefused(MigrationError):
    """The migration will not start: the target is in use, or the source cannot be read."""


@dataclass
class MigrationReport:
    """What a run found and did."""

    copied: dict[str, int] = field(default_factory=dict)
    """Records appended by this run, per topic."""
    present: dict[str, int] = field(default_factory=dict)
    """Records already in the target from an earlier, interrupted run, per topic."""
    group_offsets: dict[str, int] = field(default_factory=dict)
    """Partitions whose committed offset was set, per consumer group."""
    accepted: int = 0
    audit_records: int = 0
    audit_checkpoints: int = 0
    audit_chain: str | None = None
    checkpoint: Checkpoint | None = None
    resumed: bool = False
    already_done: bool = False


def _source_tables(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of the embedded log's own tables (topic shapes, group offsets), which the
    event-log port does not list."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise MigrationRefused(f"cannot read {path}: {exc}") from exc


class Migration:
    """One migration of `data_dir` into `target` (see the module docstring)."""

    def __init__(self, data_dir: Path, target: EventLog, *, force: bool = False,
                 progress: Callable[[str], None] = lambda line: None,
                 meter: Callable[[str, int, int], None] | None = None) -> None:
        """`progress` hears a line per step done; `meter`, if given, (label, done,
        total) as long steps go (for progress bars)."""
        self.data_dir = data_dir
        self.target = target
        self.force = force
        self._say = progress
        self._meter = meter
        self._moved = self._to_move = 0
        self._log_path = data_dir / "log.db"
        if not self._log_path.is_file():
            raise MigrationRefused(f"no embedded event log at {self._log_path}")
        self.report = MigrationReport()
        self._offsets: dict[tuple[str, int], OffsetMap] = {}

    # -- the run --------------------------------------------------------------------------

    def run(self) -> MigrationReport:
        """Migrate, or continue an interrupted migration; return what was done."""
        try:
            lock = RouterLock(self.data_dir)
        except RouterAlreadyRunningError as exc:
            raise MigrationRefused(f"{exc}; stop the broker before migrating") from exc
        try:
            source = SqliteEventLog(self._log_path)
            try:
                self._run(source)
            finally:
                source.close()
        finally:
            lock.release()
        return self.report

    def _run(self, source: SqliteEventLog) -> None:
        identity = self._identity()
        state = self._state(identity)
        if state.get("done"):
            self.report.already_done = True
            self._say("already migrated: nothing to do")
            return
        self.target.ensure_topic(TopicSpec(MIGRATION_TOPIC))
        bases = state.get("bases")
        if bases is None:
            self._refuse_if_in_use()
            bases = self._target_ends()
            self._mark({"state": "started", "bases": bases}, identity)
        else:
            self.report.resumed = True
            self._say("continuing an interrupted migration")
        self._copy_topics(source, bases)
        steps = {"groups": self._copy_group_offsets, "accepted": self._copy_accepted,
                 "audit": self._move_audit}
        for step in _STEPS:
            if step not in state.get("steps", ()):
                steps[step]()
                self._mark({"state": "step", "step": step}, identity)
        self._mark({"state": "done"}, identity)

    def _identity(self) -> dict[str, Any]:
        first = None
        if audit_db_path(self.data_dir).is_file():
            with SqliteAuditStore(audit_db_path(self.data_dir), create=False) as store:
                found = next(store.iter_records(), None)
                first = found.hash if found else None
        return {"data_dir": str(self.data_dir.resolve()), "audit_record_1": first}

    def _state(self, identity: dict[str, Any]) -> dict[str, Any]:
        """What earlier runs from this directory recorded: bases, finished steps, done."""
        if MIGRATION_TOPIC not in self.target.topics():
            return {}
        state: dict[str, Any] = {}
        offset, end = 0, self.target.end_offset(MIGRATION_TOPIC, 0)
        while offset < end:
            records = self.target.read(MIGRATION_TOPIC, 0, offset, _BATCH)
            if not records:
                break
            for record in records:
                mark = json.loads(record.value)
                if mark.get("source") != identity:
                    continue
                if mark["state"] == "started":
                    state = {"bases": mark["bases"], "steps": []}
                elif mark["state"] == "step" and state:
                    state["steps"].append(mark["step"])
                elif mark["state"] == "done" and state:
                    state["done"] = True
            offset = records[-1].offset + 1
        return state

    def _mark(self, mark: dict[str, Any], identity: dict[str, Any]) -> None:
        document = {**mark, "source": identity, "at_ms": time.time_ns() // 1_000_000}
        self.target.append(MIGRATION_TOPIC, [NewRecord(
            value=json.dumps(document, sort_keys=True).encode(), key=b"migration")])

    def _refuse_if_in_use(self) -> None:
        used = sorted(
            topic for topic in self.target.topics() if topic != MIGRATION_TOPIC and any(
                self.target.end_offset(topic, p) for p in range(self.target.partitions(topic)))
        )
        if used and not self.force:
            shown = ", ".join(used[:5]) + (" …" if len(used) > 5 else "")
            raise MigrationRefused(
                f"the target already holds records in {len(used)} topic(s) ({shown}); "
                "migrate into an empty topic prefix, or pass --force to add this data "
                "directory's records after them")

    def _target_ends(self) -> dict[str, list[int]]:
        existing = set(self.target.topics())
        return {
            name: [self.target.end_offset(name, p) if name in existing else 0
                   for p in range(partitions)]
            for name, partitions, _compacted, _retention in self._topic_shapes()
        }

    def _topic_shapes(self) -> list[tuple[str, int, int, int | None]]:
        return [(str(name), int(partitions), int(compacted), retention)
                for name, partitions, compacted, retention in _source_tables(
                    self._log_path, "SELECT name, partitions, compacted, retention_ms "
                                    "FROM topics ORDER BY name")]

    # -- 1. topics --------------------------------------------------------------------------

    def _metered(self, label: str) -> Callable[[int, int], None] | None:
        meter = self._meter
        return None if meter is None else lambda done, total: meter(label, done, total)

    def _copy_topics(self, source: SqliteEventLog, bases: dict[str, list[int]]) -> None:
        shapes = self._topic_shapes()
        self._to_move = sum(source.end_offset(name, partition)
                            for name, partitions, _compacted, _retention in shapes
                            for partition in range(partitions))
        for name, partitions, compacted, retention_ms in shapes:
            spec = TopicSpec(name, partitions=partitions, compacted=bool(compacted),
                             retention_ms=retention_ms)
            try:
                self.target.ensure_topic(spec)
            except TopicMismatchError as exc:
                raise MigrationRefused(str(exc)) from exc
            present = copied = 0
            for partition in range(partitions):
                base = bases.get(name, [0] * partitions)[partition]
                had, added = self._copy_partition(source, name, partition, base)
                present += had
                copied += added
            self.report.present[name], self.report.copied[name] = present, copied
            self._say(f"{name}: {copied} records copied"
                      + (f" ({present} were already there)" if present else ""))

    def _copy_partition(self, source: SqliteEventLog, topic: str, partition: int,
                        base: int) -> tuple[int, int]:
        present = self.target.end_offset(topic, partition) - base
        offsets = self._offsets[(topic, partition)] = OffsetMap(base)
        pending: list[NewRecord] = []
        offset = added = 0
        while records := source.read(topic, partition, offset, _BATCH):
            for record in records:
                if offsets.add(record.offset) >= present:
                    pending.append(NewRecord(value=record.value, key=record.key,
                                             headers=record.headers,
                                             timestamp_ms=record.timestamp_ms))
            offset = records[-1].offset + 1
            if pending:
                self._append_in_place(topic, partition, pending)
                added += len(pending)
                pending = []
            self._moved += len(records)
            if self._meter is not None:
                self._meter("copying topics", self._moved, self._to_move)
        if present > offsets.count:
            raise MigrationError(
                f"{topic}/{partition} in the target holds {present} records from this "
                f"migration but the data directory only {offsets.count}; was something "
                "else writing to the target?")
        return min(present, offsets.count), added

    def _append_in_place(self, topic: str, partition: int, records: list[NewRecord]) -> None:
        results = self.target.append(topic, records)
        if any(result.partition != partition for result in results):
            raise MigrationError(
                f"records of {topic} without a key landed on another partition than in the "
                "data directory; such a topic cannot be moved with its partitions")

    # -- 2. consumer groups -----------------------------------------------------------------

    def _copy_group_offsets(self) -> None:
        groups: dict[str, dict[tuple[str, int], int]] = {}
        for group, topic, partition, next_offset in _source_tables(
                self._log_path,
                "SELECT group_name, topic, partition, next_offset FROM group_offsets"):
            mapped = self._offsets.get((topic, partition))
            if mapped is not None:
                groups.setdefault(group, {})[(topic, partition)] = mapped.target(next_offset)
        for group, offsets in sorted(groups.items()):
            member = self.target.consumer(group, sorted({topic for topic, _ in offsets}))
            try:
                member.commit(offsets)
            finally:
                member.close()
            self.report.group_offsets[group] = len(offsets)
            self._say(f"consumer group {group}: committed offsets of {len(offsets)} "
                      "partitions")

    # -- 3. idempotency ---------------------------------------------------------------------

    def _copy_accepted(self) -> None:
        path = self.data_dir / "ingress.db"
        if not path.is_file():
            return
        self.target.ensure_topic(TopicSpec(ACCEPTED_TOPIC, partitions=ACCEPTED_PARTITIONS,
                                           compacted=True))
        rows = _source_tables(path, "SELECT source, event_id, topic, partition, offset "
                                    "FROM accepted")
        records = []
        for source, event_id, topic, partition, offset in rows:
            mapped = self._offsets.get((topic, partition))
            where = Accepted(topic, partition, mapped.target(offset) if mapped else offset)
            records.append(NewRecord(value=accepted_value(where),
                                     key=accepted_key(source, event_id)))
        for start in range(0, len(records), _BATCH):
            self.target.append(ACCEPTED_TOPIC, records[start:start + _BATCH])
        self.report.accepted = len(records)
        self._say(f"idempotency index: {len(records)} accepted events")

    # -- 4. audit ---------------------------------------------------------------------------

    def _move_audit(self) -> None:
        path = audit_db_path(self.data_dir)
        key_path = signing_public_key_path(self.data_dir)
        public_key = load_public_key(key_path) if key_path.is_file() else None
        if path.is_file():
            with SqliteAuditStore(path, create=False) as store:
                found = verify(store, public_key,
                               progress=self._metered("verifying the embedded audit chain"))
                if not found.ok:
                    raise MigrationRefused(
                        f"the embedded audit chain fails verification ({found.problem}); "
                        "it is not copied. Investigate with `handoff audit verify`")
                first = next(store.iter_records(), None)
                if first is not None:
                    chain = f"embedded-{first.hash[:12]}"
                    imported = import_chain(
                        self.target, chain, store.iter_records(), store.checkpoints(),
                        progress=self._metered("copying the audit chain"),
                        total=store.head()[0])
                    self.report.audit_chain = chain
                    self.report.audit_records = imported.records_added
                    self.report.audit_checkpoints = imported.checkpoints_added
                    self._say(f"audit chain {chain}: {imported.records_added} records and "
                              f"{imported.checkpoints_added} checkpoints copied"
                              + (f" ({imported.records_present} records were already there)"
                                 if imported.records_present else ""))
        self._verify_and_sign(public_key)

    def _verify_and_sign(self, public_key: Any) -> None:
        report = verify_kafka(self.target, public_key,
                              progress=self._metered("verifying the audit log in Kafka"))
        if not report.ok:
            raise MigrationError(f"the audit log in Kafka fails verification after the copy "
                                 f"({report.problem})")
        key_path = signing_key_path(self.data_dir)
        if report.head_position == 0 or not key_path.is_file():
            return
        signer = CheckpointSigner.load_or_create(key_path)
        at_ms = time.time_ns() // 1_000_000
        position, digest = report.head_position, report.heads_hash
        unnumbered = Checkpoint(0, position, digest, at_ms, signer.key_id,
                                signer.sign(position, digest, at_ms))
        (result,) = self.target.append(CHECKPOINTS_TOPIC,
                                       [NewRecord(value=checkpoint_value(unnumbered))])
        self.report.checkpoint = Checkpoint(result.offset + 1, position, digest, at_ms,
                                            signer.key_id, unnumbered.signature)
        chains = "chain" if report.chains == 1 else "chains"
        self._say(f"audit log in Kafka verified ({report.records_checked} records in "
                  f"{report.chains} {chains}) and signed at position {position}")

