"""Verification of the audit log on Kafka: every chain, every checkpoint, from the topics.

`verify_kafka` reads `_audit` from its first offset (the layout is described in
`broker.audit.kafka_records`) and checks, record by record in topic order:

- positions run 1, 2, 3 … (nothing was removed from the topic);
- each record is a well-formed canonical line whose shared tail, if any, exists;
- per chain, seqs run 1, 2, 3 …, every hash matches the record's content, and every
  `prev_hash` is the hash of the chain's record before;
- at each checkpoint's position, the digest of every chain's head is the one signed
  (and the signature is valid under the pinned key); an imported embedded checkpoint
  must match its chain's record instead;
- no checkpoint covers more than the log holds (truncation), and checkpoint numbers
  have no gaps.

It stops at the first problem and names it the way the embedded verifier does, with
the chain in front: `chain router-3f2a… record 57: hash mismatch (content changed)`.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from broker.audit.chain import _diagnose_mismatch
from broker.audit.checkpoints import public_key_id, signature_valid
from broker.audit.errors import AuditFormatError, AuditStoreNotFoundError
from broker.audit.kafka_index_check import IndexCheck, IndexMismatch
from broker.audit.kafka_records import (
    AUDIT_TOPIC,
    CHECKPOINTS_TOPIC,
    TAILS_TOPIC,
    ParsedLine,
    heads_digest,
    parse_line,
    read_checkpoint,
    reassemble,
    tail_reference,
)
from broker.audit.plans import PlanWitness
from broker.audit.records import GENESIS_HASH, Checkpoint
from broker.audit.store import ExportedCheckpoint, ProgressCallback
from broker.errors import AuditError
from broker.log.port import EventLog, LogRecord

_PAGE = 5000
_PROGRESS_EVERY = 5000
_MOVED_RECORD_WINDOW = 64
"""How many following records are searched for a missing one, to say "out of order"
rather than "missing". Only runs once a problem is found."""


@dataclass(frozen=True, slots=True)
class KafkaVerifyReport:
    """The outcome of verifying the audit log on Kafka."""

    ok: bool
    records_checked: int
    """Records found sound (before the first problem, if any)."""
    chains: int
    checkpoints_checked: int
    signatures_checked: bool
    problem: str | None = None
    first_bad_chain: str | None = None
    first_bad_seq: int | None = None
    first_bad_position: int | None = None
    head_position: int = 0
    heads_hash: str = GENESIS_HASH.hex()
    index: str | None = None
    """The local index file found to match the log, when one was checked."""

    def summary(self) -> str:
        """One line for people: `ok: 12034 records in 3 chains, 12 checkpoints, …`."""
        if not self.ok:
            return f"FAILED: {self.problem}"
        unsigned = "" if self.signatures_checked or not self.checkpoints_checked else (
            " (signatures not checked: no public key)"
        )
        chains = "chain" if self.chains == 1 else "chains"
        index = "" if self.index is None else f"; index {self.index} matches"
        return (
            f"ok: {self.records_checked} records in {self.chains} {chains}, "
            f"{self.checkpoints_checked} checkpoints{unsigned}, "
            f"heads sha256:{self.heads_hash} at position {self.head_position}{index}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


class _Broken(AuditError):
    def __init__(self, problem: str, *, chain: str | None = None, seq: int | None = None,
                 position: int | None = None) -> None:
        super().__init__(problem)
        self.problem, self.chain, self.seq, self.position = problem, chain, seq, position


def _read_all(event_log: EventLog, topic: str) -> list[LogRecord]:
    found: list[LogRecord] = []
    end = event_log.end_offset(topic, 0)
    offset = 0
    while offset < end:
        page = event_log.read(topic, 0, offset, _PAGE)
        if not page:
            break
        found.extend(page)
        offset = page[-1].offset + 1
    return found


def _load_tails(event_log: EventLog) -> dict[str, bytes]:
    tails: dict[str, bytes] = {}
    for record in _read_all(event_log, TAILS_TOPIC):
        name = (record.key or b"").decode("ascii", "replace")
        if hashlib.sha256(record.value).hexdigest() != name:
            raise _Broken(f"shared detail part {name[:16]}… (offset {record.offset} of "
                          f"{TAILS_TOPIC}): content does not match its digest (changed)")
        tails[name] = record.value
    return tails


def _load_checkpoints(
    event_log: EventLog, exported: Iterable[tuple[Checkpoint, str | None]]
) -> list[tuple[Checkpoint, str | None]]:
    by_number: dict[int, tuple[Checkpoint, str | None]] = {}
    for record in _read_all(event_log, CHECKPOINTS_TOPIC):
        number = record.offset + 1
        try:
            by_number[number] = read_checkpoint(number, record.value)
        except AuditFormatError as exc:
            raise _Broken(f"checkpoint {number}: not a checkpoint ({exc})") from exc
    for checkpoint, chain in exported:
        known = by_number.setdefault(checkpoint.number, (checkpoint, chain))
        if known[0] != checkpoint or (chain is not None and known[1] != chain):
            raise _Broken(f"checkpoint {checkpoint.number}: the stored copy differs from "
                          "the exported copy")
    merged = [by_number[number] for number in sorted(by_number)]
    for expected, (checkpoint, _chain) in enumerate(merged, start=1):
        if checkpoint.number != expected:
            raise _Broken(f"checkpoint {expected}: missing (checkpoint numbers jump from "
                          f"{expected - 1} to {checkpoint.number})")
        if checkpoint.seq < 1:
            raise _Broken(f"checkpoint {expected}: covers nothing (position {checkpoint.seq})")
    return merged


class _Walk:
    """One pass over `_audit`, holding every chain's head."""

    def __init__(self, event_log: EventLog, tails: dict[str, bytes],
                 checkpoints: list[tuple[Checkpoint, str | None]],
                 public_key: Ed25519PublicKey | None,
                 progress: ProgressCallback | None = None,
                 index: IndexCheck | None = None) -> None:
        self._log = event_log
        self._progress = progress
        self._index = index
        self._tails = tails
        self._public_key = public_key
        self._pinned = public_key_id(public_key) if public_key is not None else ""
        self._by_position = sorted(
            (cp for cp, chain in checkpoints if chain is None), key=lambda cp: (cp.seq, cp.number))
        self._by_record: dict[tuple[str, int], list[Checkpoint]] = {}
        for checkpoint, chain in checkpoints:
            if chain is not None:
                self._by_record.setdefault((chain, checkpoint.seq), []).append(checkpoint)
        self.heads: dict[str, tuple[int, bytes]] = {}
        self._plans = PlanWitness()
        self.position = 0
        self.records = 0
        self.checkpoints = 0
        self._next_checkpoint = 0
        self._buffer: deque[LogRecord] = deque()
        self._end = event_log.end_offset(AUDIT_TOPIC, 0)
        self._offset = 0

    # -- reading with look-ahead ----------------------------------------------------------

    def _fill(self, count: int) -> bool:
        while len(self._buffer) < count and self._offset < self._end:
            page = self._log.read(AUDIT_TOPIC, 0, self._offset, _PAGE)
            if not page:
                break
            self._buffer.extend(page)
            self._offset = page[-1].offset + 1
        return len(self._buffer) >= count

    def run(self) -> None:
        while self._fill(1):
            record = self._buffer.popleft()
            position = record.offset + 1
            if position != self.position + 1:
                raise _Broken(
                    f"position {self.position + 1}: missing (the audit topic jumps from "
                    f"position {self.position} to {position})", position=self.position + 1)
            self.position = position
            self._check_record(record)
            self.records += 1
            self._check_heads_checkpoints()
            if self._progress is not None and position % _PROGRESS_EVERY == 0:
                self._progress(position, max(self._end, position))
        self._check_nothing_left()
        if self._progress is not None:
            self._progress(self.position, max(self._end, self.position))

    # -- records --------------------------------------------------------------------------

    def _parse(
        self, record: LogRecord, chain: str
    ) -> tuple[ParsedLine, tuple[str, int] | None, bytes | None]:
        """The record's line taken apart, and the shared tail it names (if any)."""
        where = f"record at position {record.offset + 1} (chain {chain})"
        try:
            reference = tail_reference(record.headers)
            tail = None if reference is None else self._tails.get(reference[0])
            if reference is not None and tail is None:
                raise _Broken(f"{where}: its detail refers to a missing shared part (removed)",
                              chain=chain, position=record.offset + 1)
            return parse_line(reassemble(record.value, reference, tail)), reference, tail
        except AuditFormatError as exc:
            raise _Broken(f"{where}: not a well-formed audit record ({exc})",
                          chain=chain, position=record.offset + 1) from exc

    def _check_record(self, record: LogRecord) -> None:
        position = record.offset + 1
        chain = (record.key or b"").decode("utf-8", "replace")
        if not chain:
            raise _Broken(f"record at position {position}: names no chain (no key)",
                          position=position)
        parsed, reference, tail = self._parse(record, chain)
        seq = parsed.seq
        last_seq, last_hash = self.heads.get(chain, (0, GENESIS_HASH))
        expected = last_seq + 1

        def broken(problem: str, at: int = seq) -> _Broken:
            return _Broken(f"chain {chain} {problem}", chain=chain, seq=at, position=position)

        if seq < expected:
            raise broken(f"record {seq}: appears twice (again at position {position}; "
                         "forged, or written by a second writer)")
        if seq > expected:
            if self._comes_later(chain, expected):
                raise broken(f"record {expected}: out of order (holds record {seq}; "
                             "reordered)", expected)
            if expected == 1:
                raise broken(f"record 1: missing (chain starts at record {seq})", 1)
            raise broken(f"record {expected}: missing (sequence jumps from {last_seq} to "
                         f"{seq})", expected)
        if hashlib.sha256(parsed.prev_hash + parsed.body).digest() != parsed.hash:
            raise broken(_diagnose_mismatch(seq, parsed.prev_hash, parsed.hash, parsed.body))
        if parsed.prev_hash != last_hash:
            raise broken(f"record {seq}: broken link (prev_hash is not the hash of record "
                         f"{seq - 1}; records removed, inserted or reordered)")
        plan_problem = self._plans.check(chain, parsed.row[1], parsed.detail)
        if plan_problem is not None:
            raise broken(f"record {seq}: {plan_problem}")
        self.heads[chain] = (seq, parsed.hash)
        if self._index is not None:
            self._index.record(record, chain, parsed, reference, tail, self.heads)
        for checkpoint in self._by_record.pop((chain, seq), ()):
            if checkpoint.hash != parsed.hash.hex():
                raise broken(f"checkpoint {checkpoint.number} at record {seq}: signed hash "
                             "does not match the chain (records rewritten)")
            self._check_signature(checkpoint, f"chain {chain} record {seq}", chain)

    def _comes_later(self, chain: str, seq: int) -> bool:
        self._fill(_MOVED_RECORD_WINDOW)
        for candidate in list(self._buffer)[:_MOVED_RECORD_WINDOW]:
            if (candidate.key or b"").decode("utf-8", "replace") != chain:
                continue
            try:
                if self._parse(candidate, chain)[0].seq == seq:
                    return True
            except _Broken:
                continue
        return False

    # -- checkpoints ----------------------------------------------------------------------

    def _check_signature(self, checkpoint: Checkpoint, where: str, chain: str | None) -> None:
        self.checkpoints += 1
        if self._public_key is None or signature_valid(checkpoint, self._public_key):
            return
        self.checkpoints -= 1
        problem = f"checkpoint {checkpoint.number} at {where}: signature invalid"
        if checkpoint.key_id != self._pinned:
            problem += (f" (signed by key {checkpoint.key_id}, not the pinned key "
                        f"{self._pinned})")
        raise _Broken(problem, chain=chain, seq=checkpoint.seq if chain else None,
                      position=None if chain else checkpoint.seq)

    def digest(self) -> str:
        """The heads digest of every chain as walked so far."""
        return heads_digest((chain, seq, digest) for chain, (seq, digest) in self.heads.items())

    def _check_heads_checkpoints(self) -> None:
        pending = self._by_position
        while (self._next_checkpoint < len(pending)
               and pending[self._next_checkpoint].seq == self.position):
            checkpoint = pending[self._next_checkpoint]
            if checkpoint.hash != self.digest():
                raise _Broken(
                    f"checkpoint {checkpoint.number} at position {self.position}: signed heads "
                    "do not match the chains (records rewritten)", position=self.position)
            self._check_signature(checkpoint, f"position {self.position}", None)
            self._next_checkpoint += 1

    def _check_nothing_left(self) -> None:
        if self._next_checkpoint < len(self._by_position):
            checkpoint = self._by_position[self._next_checkpoint]
            raise _Broken(
                f"audit log ends at position {self.position} but checkpoint "
                f"{checkpoint.number} covers position {checkpoint.seq} (truncated)",
                position=self.position + 1)
        for (chain, seq), checkpoints in sorted(self._by_record.items()):
            last = self.heads.get(chain, (0, GENESIS_HASH))[0]
            raise _Broken(
                f"chain {chain} ends at record {last} but checkpoint {checkpoints[0].number} "
                f"covers record {seq} (truncated)", chain=chain, seq=last + 1)


def verify_kafka(
    event_log: EventLog,
    public_key: Ed25519PublicKey | None = None,
    *,
    exported_checkpoints: Iterable[tuple[Checkpoint, str | None]] = (),
    progress: ProgressCallback | None = None,
    index: Path | None = None,
) -> KafkaVerifyReport:
    """Re-walk every chain and checkpoint in Kafka; report the first problem found.

    `exported_checkpoints` are (checkpoint, chain or None) kept outside the broker, as
    `handoff audit checkpoints --kafka` writes them. `index` is a process's local index
    file, checked against the log as it is walked (`broker.audit.kafka_index_check`).
    Raises `AuditStoreNotFoundError` when the log has no audit topics or `index` names no
    file, and `LogError` when Kafka cannot be read.
    """
    if AUDIT_TOPIC not in event_log.topics():
        raise AuditStoreNotFoundError(f"no audit log in {event_log!r} (no {AUDIT_TOPIC} topic)")
    signed = public_key is not None
    walk: _Walk | None = None
    check: IndexCheck | None = None
    try:
        # The index first: what it read, Kafka holds by the time Kafka is read below.
        check = IndexCheck(index) if index is not None else None
        # Checkpoints before records: records are append-only, so the walk sees what
        # they cover.
        checkpoints = _load_checkpoints(event_log, exported_checkpoints)
        tails = _load_tails(event_log)
        walk = _Walk(event_log, tails, checkpoints, public_key, progress, check)
        walk.run()
        if check is not None:
            check.finish(walk.position, {cp.number: (cp, chain) for cp, chain in checkpoints})
    except (_Broken, IndexMismatch) as failure:
        return KafkaVerifyReport(
            ok=False, records_checked=walk.records if walk else 0,
            chains=len(walk.heads) if walk else 0,
            checkpoints_checked=walk.checkpoints if walk else 0, signatures_checked=signed,
            problem=failure.problem, first_bad_chain=failure.chain, first_bad_seq=failure.seq,
            first_bad_position=failure.position,
        )
    finally:
        if check is not None:
            check.close()
    return KafkaVerifyReport(
        ok=True, records_checked=walk.records, chains=len(walk.heads),
        checkpoints_checked=walk.checkpoints, signatures_checked=signed,
        head_position=walk.position,
        heads_hash=walk.digest() if walk.position else GENESIS_HASH.hex(),
        index=None if index is None else str(index),
    )


class KafkaAuditVerifier:
    """The `AuditVerifier` of the audit log on Kafka (see `verify_kafka`): the chains and
    checkpoints in Kafka and, given `index`, a process's local index of them."""

    def __init__(self, event_log: EventLog, index: Path | None = None) -> None:
        self._log = event_log
        self._index = index

    def verify(
        self,
        public_key: Ed25519PublicKey | None = None,
        *,
        exported_checkpoints: Sequence[ExportedCheckpoint] = (),
        progress: ProgressCallback | None = None,
    ) -> KafkaVerifyReport:
        """Re-walk every chain and checkpoint in Kafka; report the first problem found."""
        return verify_kafka(self._log, public_key, exported_checkpoints=exported_checkpoints,
                            progress=progress, index=self._index)
