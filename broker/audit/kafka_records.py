"""How the audit log is laid out in Kafka topics, and how its records are read back.

Topics (port names; the Kafka backend puts the installation's prefix in front):

- `_audit`: one partition holding every record of every chain, in append order. A
  record's **position** is its offset + 1, the same in every process that reads the
  topic. Key: the chain id (UTF-8). Value: the record's canonical JSON line with `hash`,
  byte for byte what `handoff audit export --format jsonl` writes for it, except that a
  long end of the detail shared with other records may be cut out: then the header
  `handoff.audit.tail` names it (SHA-256 hex of its UTF-8 text) and
  `handoff.audit.tail_at` gives the byte index at which it goes back in.
- `_audit.tails`: those shared ends, key = their SHA-256 hex, value = the UTF-8 text.
- `_audit.checkpoints`: one partition of signed checkpoints; checkpoint number = offset
  + 1. Value: canonical JSON `{"at_ms", "hash", "key_id", "seq", "signature"}`, where
  `seq` is a position of `_audit` and `hash` the **heads digest** there (below). A
  checkpoint imported from an embedded store also names its `chain`; its `seq` and
  `hash` are then a record of that chain, as the embedded store signed them.

Each chain is hashed exactly as the embedded chain (`docs/audit.md`): seq 1, 2, 3 …,
`prev_hash` of record 1 is 32 zero bytes. The heads digest at a position is

    sha256(b"handoff-audit-heads-v1\\n" + canonical_json([[chain, seq, hash_hex], …]))

over every chain with a record at or before that position, sorted by chain id, each
with its last record up to there.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from broker.audit.errors import AuditFormatError
from broker.audit.records import AuditRecord, Checkpoint, StoredRow, canonical_json, encode_row
from broker.log.port import Headers

AUDIT_TOPIC = "_audit"
TAILS_TOPIC = "_audit.tails"
CHECKPOINTS_TOPIC = "_audit.checkpoints"
H_TAIL = "handoff.audit.tail"
H_TAIL_AT = "handoff.audit.tail_at"

_HEADS_DOMAIN = b"handoff-audit-heads-v1\n"
_DETAIL_KEY = b'"detail":'
_EVENT_ID_KEY = b',"event_id":'
_HASH_KEY = b'"hash":"'
_HASH_MEMBER_BYTES = len(_HASH_KEY) + 64 + 2
"""`"hash":"<64 hex>",` in a line; without it the line is what the hash covers."""
_KEYS = frozenset({
    "actor", "agreement", "at_ms", "decision_id", "event_id", "hash", "kind", "outcome",
    "prev_hash", "recipient", "seq", "source", "subject", "subscription",
})
"""The record's attributes other than `detail`."""
_HEX64 = re.compile(r"[0-9a-f]{64}")
_OPTIONAL_TEXT = ("subject", "recipient", "source", "agreement", "subscription", "outcome",
                  "event_id", "decision_id", "actor")


@dataclass(frozen=True, slots=True)
class ChainedAuditRecord(AuditRecord):
    """An audit record read from Kafka, where the log holds several chains.

    `seq` is the record's **position** in the `_audit` topic, which orders the records
    of every chain and is the same in every process: it is what queries page by
    (`after_seq`), as `seq` is on the embedded store. `chain` names the record's chain
    and `chain_seq` is its place there, the `seq` its hash covers; `prev_hash` and
    `hash` are its links in that chain. `to_json_line()` and `computed_hash()` use
    `chain_seq`, so they reproduce the chained record exactly.
    """

    chain: str = ""
    chain_seq: int = 0

    @property
    def position(self) -> int:
        """The record's position in the `_audit` topic (its `seq` here)."""
        return self.seq

    def to_row(self) -> StoredRow:
        """The record as its chain hashes it (`seq` = `chain_seq`)."""
        return (self.chain_seq, *AuditRecord.to_row(self)[1:])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the record's attributes plus `chain` and `chain_seq`."""
        values = AuditRecord.to_dict(self)
        values["chain"] = self.chain
        values["chain_seq"] = self.chain_seq
        return values


@dataclass(frozen=True, slots=True)
class ParsedLine:
    """A canonical record line taken apart: what verification and the index need."""

    row: StoredRow
    """The record in `COLUMNS` order; `detail` (index 12) is left empty."""
    detail: bytes
    """The detail's canonical JSON, UTF-8."""
    body: bytes
    """The bytes the record's hash covers (the line without its `hash`)."""

    @property
    def seq(self) -> int:
        return int(self.row[0])

    @property
    def prev_hash(self) -> bytes:
        return bytes(self.row[13])

    @property
    def hash(self) -> bytes:
        return bytes(self.row[14])


def _load_object(text: bytes) -> dict[str, Any]:
    try:
        value = json.loads(text.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise AuditFormatError("the record is not JSON") from exc
    if not isinstance(value, dict):
        raise AuditFormatError("the record is not a JSON object")
    return value


def _hex_hash(value: object, name: str) -> bytes:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise AuditFormatError(f"the record's {name} is not 64 lowercase hex digits")
    return bytes.fromhex(value)


def parse_line(line: bytes) -> ParsedLine:
    """Take a record's canonical JSON line (with `hash`) apart without parsing its detail.

    Only the attributes around the detail are parsed, and they must re-encode to exactly
    the bytes around it, so what is hashed is what an auditor's `json.dumps` produces.
    The detail must be a JSON object and is otherwise taken as stored, as the embedded
    verifier takes it. Raises `AuditFormatError` for anything else.
    """
    # `"detail":` and `,"event_id":` cannot occur inside a JSON string (the quotes would
    # be escaped), and the attributes before the detail are strings, numbers or null: so
    # the first `"detail":` is the attribute, and the last `,"event_id":` follows it.
    start = line.find(_DETAIL_KEY)
    end = line.rfind(_EVENT_ID_KEY)
    if start < 1 or end < start or line[start - 1:start] != b",":
        raise AuditFormatError("the record does not have the audit record layout")
    # Everything but the detail, as one small JSON object.
    values = _load_object(line[:start - 1] + line[end:])
    if values.keys() != _KEYS:
        raise AuditFormatError("the record does not have exactly the audit record attributes")
    detail = line[start + len(_DETAIL_KEY):end]
    if not (detail.startswith(b"{") and detail.endswith(b"}")):
        raise AuditFormatError("the record's detail is not a JSON object")
    for name in ("seq", "at_ms"):
        if type(values[name]) is not int or values[name] < 0:
            raise AuditFormatError(f"the record's {name} is not a non-negative integer")
    if not isinstance(values["kind"], str):
        raise AuditFormatError("the record's kind is not text")
    for name in _OPTIONAL_TEXT:
        if values[name] is not None and not isinstance(values[name], str):
            raise AuditFormatError(f"the record's {name} is not text")
    row = (
        values["seq"], values["kind"], values["at_ms"], values["subject"],
        values["recipient"], values["source"], values["agreement"], values["subscription"],
        values["outcome"], values["event_id"], values["decision_id"], values["actor"], "",
        _hex_hash(values["prev_hash"], "prev_hash"), _hex_hash(values["hash"], "hash"),
    )
    try:
        # The line around the detail must be exactly what the encoder writes; encoding it
        # with an empty detail keeps this cheap for large details.
        canonical = encode_row(row, with_hash=True, detail_bytes=b"")
    except UnicodeEncodeError as exc:
        raise AuditFormatError("the record holds text that is not valid Unicode") from exc
    cut = start + len(_DETAIL_KEY)
    if canonical != line[:cut] + line[end:]:
        raise AuditFormatError("the record is not in canonical form")
    # In canonical form the hash member directly follows the event id: remove it.
    member = line.index(_HASH_KEY, end)
    return ParsedLine(row, detail, line[:member] + line[member + _HASH_MEMBER_BYTES:])


def tail_reference(headers: Headers) -> tuple[str, int] | None:
    """(tail digest, byte index) when a record's value has its shared tail cut out."""
    digest = at = None
    for name, value in headers:
        if name == H_TAIL:
            digest = value.decode("ascii", "replace")
        elif name == H_TAIL_AT:
            at = value.decode("ascii", "replace")
    if digest is None:
        return None
    if at is None or not at.isdigit():
        raise AuditFormatError("the record's shared tail has no valid position")
    return digest, int(at)


def reassemble(value: bytes, reference: tuple[str, int] | None, tail: bytes | None) -> bytes:
    """The full record line: `value` with its shared tail put back (if it had one)."""
    if reference is None:
        return value
    at = reference[1]
    if tail is None:
        raise AuditFormatError("the record's detail refers to a missing shared part")
    if at > len(value):
        raise AuditFormatError("the record's shared tail has no valid position")
    return value[:at] + tail + value[at:]


def cut_tail(line: bytes, detail_head: bytes, tail: bytes) -> tuple[bytes, int]:
    """(value without `tail`, index where it belongs) for a line whose detail is
    `detail_head + tail`."""
    at = line.index(_DETAIL_KEY) + len(_DETAIL_KEY) + len(detail_head)
    return line[:at] + line[at + len(tail):], at


def tail_digest(tail: bytes) -> str:
    """The name of a shared tail: SHA-256 hex of its UTF-8 text."""
    return hashlib.sha256(tail).hexdigest()


def heads_digest(heads: Iterable[tuple[str, int, bytes]]) -> str:
    """The heads digest (hex) of (chain, seq, hash) triples; see the module docstring."""
    listed = sorted([chain, seq, digest.hex()] for chain, seq, digest in heads)
    return hashlib.sha256(_HEADS_DOMAIN + canonical_json(listed).encode("utf-8")).hexdigest()


def checkpoint_value(checkpoint: Checkpoint, chain: str | None = None) -> bytes:
    """The value of a checkpoint in `_audit.checkpoints` (its number is its offset + 1)."""
    document: dict[str, Any] = {
        "at_ms": checkpoint.at_ms, "hash": checkpoint.hash, "key_id": checkpoint.key_id,
        "seq": checkpoint.seq, "signature": checkpoint.signature.hex(),
    }
    if chain is not None:
        document["chain"] = chain
    return canonical_json(document).encode("utf-8")


def read_checkpoint(number: int, value: bytes) -> tuple[Checkpoint, str | None]:
    """A checkpoint and, for one imported from an embedded store, the chain it names."""
    document = _load_object(value)
    chain = document.pop("chain", None)
    if chain is not None and not isinstance(chain, str):
        raise AuditFormatError(f"checkpoint {number}: chain must be text")
    if set(document) != {"at_ms", "hash", "key_id", "seq", "signature"}:
        raise AuditFormatError(f"checkpoint {number}: not a checkpoint")
    return Checkpoint.from_dict({**document, "number": number}), chain


def legacy_checkpoints(
    checkpoints: Iterable[tuple[Checkpoint, str | None]],
) -> Mapping[tuple[str, int], list[Checkpoint]]:
    """Checkpoints that name a chain, by (chain, seq)."""
    found: dict[tuple[str, int], list[Checkpoint]] = {}
    for checkpoint, chain in checkpoints:
        if chain is not None:
            found.setdefault((chain, checkpoint.seq), []).append(checkpoint)
    return found
