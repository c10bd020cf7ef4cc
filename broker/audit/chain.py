"""Verification of the embedded audit store: its chain and its signed checkpoints.

`verify` (and `SqliteAuditVerifier`, the `AuditVerifier` of the embedded store)
re-walks every record in seq order, recomputes each hash from the record's content,
checks that seqs run 1, 2, 3 … without gaps and that every record links to the one
before, that the columns kept beside the hashed content for lookups still fit it, and
checks every checkpoint against the chain (and its signature, given the pinned public
key). It stops at the first problem and names it.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from broker.audit import record_counts
from broker.audit.checkpoints import public_key_id, signature_valid
from broker.audit.records import GENESIS_HASH, Checkpoint
from broker.audit.sqlite_chain import ChainSnapshot
from broker.audit.sqlite_store import SqliteAuditStore
from broker.audit.store import ExportedCheckpoint, ProgressCallback
from broker.errors import AuditError

# How far from its slot a moved record is looked for, to say "out of order" rather than
# "content changed". Only runs once a mismatch is found.
_MOVED_RECORD_WINDOW = 16
_PROGRESS_EVERY = 20_000


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of a verification. `problem` names the first bad record or checkpoint."""

    ok: bool
    records_checked: int
    """Records found sound (before the first problem, if any)."""
    first_bad_seq: int | None
    problem: str | None
    checkpoints_checked: int
    """Checkpoints found sound."""
    head_seq: int = 0
    head_hash: str = GENESIS_HASH.hex()
    signatures_checked: bool = False
    """Whether checkpoint signatures were verified (a public key was given)."""

    def summary(self) -> str:
        """One line for people: `ok: 12034 records, 12 checkpoints, head sha256:…`."""
        if not self.ok:
            return f"FAILED: {self.problem}"
        unsigned = "" if self.signatures_checked or not self.checkpoints_checked else (
            " (signatures not checked: no public key)"
        )
        return (
            f"ok: {self.records_checked} records, {self.checkpoints_checked} checkpoints"
            f"{unsigned}, head sha256:{self.head_hash}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ok": self.ok, "records_checked": self.records_checked,
            "first_bad_seq": self.first_bad_seq, "problem": self.problem,
            "checkpoints_checked": self.checkpoints_checked,
            "signatures_checked": self.signatures_checked,
            "head_seq": self.head_seq, "head_hash": self.head_hash,
        }


class _ChainBroken(AuditError):
    """The first problem found; internal to `verify`, which turns it into a report."""

    def __init__(self, seq: int, problem: str, records_checked: int | None = None) -> None:
        super().__init__(problem)
        self.seq = seq
        self.problem = problem
        self.records_checked = max(0, seq - 1) if records_checked is None else records_checked


def _merge_checkpoints(
    stored: list[Checkpoint], exported: Iterable[Checkpoint]
) -> list[Checkpoint]:
    by_number = {checkpoint.number: checkpoint for checkpoint in stored}
    for checkpoint in exported:
        known = by_number.setdefault(checkpoint.number, checkpoint)
        if known != checkpoint:
            raise _ChainBroken(
                checkpoint.seq,
                f"checkpoint {checkpoint.number} at record {checkpoint.seq}: the stored copy "
                "differs from the exported copy",
            )
    merged = [by_number[number] for number in sorted(by_number)]
    for expected, checkpoint in enumerate(merged, start=1):
        if checkpoint.number != expected:
            raise _ChainBroken(
                checkpoint.seq,
                f"checkpoint {expected}: missing (checkpoint numbers jump from "
                f"{expected - 1} to {checkpoint.number})",
            )
    for earlier, later in itertools.pairwise(merged):
        if later.seq < earlier.seq:
            raise _ChainBroken(
                later.seq,
                f"checkpoint {later.number} at record {later.seq}: covers less than "
                f"checkpoint {earlier.number} at record {earlier.seq} (reordered)",
            )
    return merged


def _check_signature(checkpoint: Checkpoint, public_key: Ed25519PublicKey, pinned: str) -> None:
    if signature_valid(checkpoint, public_key):
        return
    where = f"checkpoint {checkpoint.number} at record {checkpoint.seq}"
    if checkpoint.key_id != pinned:
        raise _ChainBroken(
            checkpoint.seq,
            f"{where}: signature invalid (signed by key {checkpoint.key_id}, "
            f"not the pinned key {pinned})",
            checkpoint.seq,
        )
    raise _ChainBroken(checkpoint.seq, f"{where}: signature invalid", checkpoint.seq)


def _diagnose_mismatch(seq: int, prev_hash: bytes, stored: bytes, body: bytes) -> str:
    """Say whether a record that fails its hash was moved here or edited in place."""
    marker = f',"seq":{seq},"source":'.encode()
    cut = body.rfind(marker)
    if cut >= 0:
        head, tail = body[:cut], body[cut + len(marker):]
        for distance in range(1, _MOVED_RECORD_WINDOW + 1):
            for candidate in (seq - distance, seq + distance):
                if candidate < 1:
                    continue
                moved = head + f',"seq":{candidate},"source":'.encode() + tail
                if hashlib.sha256(prev_hash + moved).digest() == stored:
                    return f"record {seq}: out of order (holds record {candidate}; reordered)"
    return f"record {seq}: hash mismatch (content changed)"


def _walk(
    snapshot: ChainSnapshot, total: int, checkpoints: list[Checkpoint],
    public_key: Ed25519PublicKey | None, progress: ProgressCallback | None,
) -> tuple[int, bytes, int]:
    pinned = public_key_id(public_key) if public_key is not None else ""
    pending = iter(checkpoints)
    checkpoint = next(pending, None)
    next_checkpoint_seq = checkpoint.seq if checkpoint is not None else -1
    checked_checkpoints = 0
    expected = 1
    prev = GENESIS_HASH
    sha256 = hashlib.sha256
    for seq, prev_hash, stored, body, altered in snapshot.links():
        if seq != expected:
            if expected == 1:
                raise _ChainBroken(1, f"record 1: missing (chain starts at record {seq})")
            raise _ChainBroken(
                expected,
                f"record {expected}: missing (sequence jumps from {expected - 1} to {seq})",
            )
        if sha256(prev_hash + body).digest() != stored:
            raise _ChainBroken(seq, _diagnose_mismatch(seq, prev_hash, stored, body))
        if prev_hash != prev:
            raise _ChainBroken(
                seq,
                f"record {seq}: broken link (prev_hash is not the hash of record {seq - 1}; "
                "records removed, inserted or reordered)",
            )
        if altered is not None:
            raise _ChainBroken(seq, f"record {seq}: {altered}")
        while seq == next_checkpoint_seq:
            assert checkpoint is not None
            if checkpoint.hash != stored.hex():
                raise _ChainBroken(
                    seq,
                    f"checkpoint {checkpoint.number} at record {seq}: signed hash does not "
                    "match the chain (records rewritten)",
                    records_checked=seq,
                )
            if public_key is not None:
                _check_signature(checkpoint, public_key, pinned)
            checked_checkpoints += 1
            checkpoint = next(pending, None)
            next_checkpoint_seq = checkpoint.seq if checkpoint is not None else -1
        prev = stored
        expected += 1
        if progress is not None and seq % _PROGRESS_EVERY == 0:
            progress(seq, max(total, seq))
    last = expected - 1
    if progress is not None:
        progress(last, max(total, last))
    if checkpoint is not None:
        raise _ChainBroken(
            last + 1,
            f"chain ends at record {last} but checkpoint {checkpoint.number} covers record "
            f"{checkpoint.seq} (truncated)",
            last,
        )
    problem = (record_counts.first_difference(snapshot.counted, snapshot.stored_counts())
               or snapshot.plans_problem())
    if problem is not None:
        raise _ChainBroken(0, problem, last)
    return last, prev, checked_checkpoints


def verify(
    store_or_path: SqliteAuditStore | Path | str,
    public_key: Ed25519PublicKey | None = None,
    *,
    exported_checkpoints: Iterable[Checkpoint] = (),
    progress: ProgressCallback | None = None,
) -> VerifyReport:
    """Re-walk the chain and its checkpoints; report the first problem found.

    Without `public_key` checkpoints are still checked against the chain, but their
    signatures are not. `exported_checkpoints` (kept outside the broker) are checked as
    well, which catches checkpoints deleted from the store together with the records they
    covered. Opens and closes the store when given a path; raises `AuditStoreNotFoundError`
    when there is no store there.
    """
    if isinstance(store_or_path, (str, Path)):
        with SqliteAuditStore(store_or_path, create=False) as sqlite_store:
            return verify(sqlite_store, public_key, exported_checkpoints=exported_checkpoints,
                          progress=progress)
    store = store_or_path
    signed = public_key is not None
    # Checkpoints are read before the records: records are append-only, so every
    # checkpoint read here covers records the later read will see.
    stored_checkpoints = store.checkpoints()
    checkpoints: list[Checkpoint] = []
    try:
        checkpoints = _merge_checkpoints(stored_checkpoints, exported_checkpoints)
        total = store.head()[0] if progress is not None else 0
        with store.chain_snapshot() as snapshot:
            last, head, checked = _walk(snapshot, total, checkpoints, public_key, progress)
    except _ChainBroken as failure:
        return VerifyReport(
            ok=False,
            records_checked=failure.records_checked,
            first_bad_seq=failure.seq or None,
            problem=failure.problem,
            checkpoints_checked=sum(1 for item in checkpoints
                                    if item.seq < (failure.seq or failure.records_checked + 1)),
            signatures_checked=signed,
        )
    return VerifyReport(
        ok=True,
        records_checked=last,
        first_bad_seq=None,
        problem=None,
        checkpoints_checked=checked,
        head_seq=last,
        head_hash=head.hex(),
        signatures_checked=signed,
    )


class SqliteAuditVerifier:
    """The `AuditVerifier` of the embedded store (see `verify`)."""

    def __init__(self, store: SqliteAuditStore) -> None:
        self._store = store

    def verify(
        self,
        public_key: Ed25519PublicKey | None = None,
        *,
        exported_checkpoints: Sequence[ExportedCheckpoint] = (),
        progress: ProgressCallback | None = None,
    ) -> VerifyReport:
        """Re-walk the chain and checkpoints; report the first problem found. A chain
        named by an exported checkpoint is ignored: the embedded store has one."""
        return verify(self._store, public_key,
                      exported_checkpoints=[checkpoint for checkpoint, _ in exported_checkpoints],
                      progress=progress)
