"""What the audit log stores, and the exact bytes its hash chain is computed over.

Every record is hashed as `sha256(prev_hash || canonical_bytes(record without "hash"))`,
where `prev_hash` is the previous record's 32-byte hash (32 zero bytes for record 1) and
the canonical bytes are the record as JSON: keys sorted, no whitespace, UTF-8, non-ASCII
characters unescaped (`json.dumps(..., sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`), hashes written as lowercase hex. `docs/audit.md` states the same
algorithm for auditors who re-implement it.

The encoder below writes that JSON from a fixed template instead of building a dict per
record: verification re-encodes every record, and the template is several times faster
than `json.dumps` of a dict. A unit test holds the two byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from json.encoder import encode_basestring
from typing import Any

from broker.audit.errors import AuditEntryError, AuditFormatError

GENESIS_HASH = bytes(32)
"""The `prev_hash` of record 1."""

SUBJECT_PSEUDONYM_PATTERN = re.compile(r"sp_[0-9a-f]{32}")
_KIND_PATTERN = re.compile(r"[a-z][a-z0-9_.]{0,63}")
_CHECKPOINT_DOMAIN = b"handoff-audit-checkpoint-v1\n"

COLUMNS = (
    "seq", "kind", "at_ms", "subject", "recipient", "source", "agreement", "subscription",
    "outcome", "event_id", "decision_id", "actor", "detail", "prev_hash", "hash",
)
"""Column order of a stored row: `detail` is canonical JSON text, hashes are 32 bytes."""

StoredRow = tuple[Any, ...]
"""One record in `COLUMNS` order, as the store keeps it."""

# Keys in sorted order: the detail sits between "decision_id" and "event_id"; the
# optional "hash" slot is filled only for exported lines.
_HEAD = '{"actor":%s,"agreement":%s,"at_ms":%d,"decision_id":%s,"detail":'
_TAIL = (
    ',"event_id":%s,%s"kind":%s,"outcome":%s,"prev_hash":"%s","recipient":%s,"seq":%d,'
    '"source":%s,"subject":%s,"subscription":%s}'
)


class AuditKind(StrEnum):
    """Kinds of audit entry the broker writes. Other lowercase kinds are accepted too."""

    DECISION = "decision"
    PUBLISH_REFUSED = "publish_refused"
    POLICY_LOADED = "policy_loaded"
    CONSENT_CHANGE = "consent_change"
    ACCESS_REFUSED = "access_refused"
    DELIVERY_DEAD_LETTERED = "delivery_dead_lettered"
    RECORD_QUARANTINED = "record_quarantined"


def canonical_json(value: Any) -> str:
    """Encode a JSON-ready value the way the audit chain hashes it."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


class CanonicalDetail(Mapping[str, Any]):
    """Detail handed over already encoded, parsed only if someone reads it.

    `text` must be a JSON object encoded with sorted keys and no whitespace, i.e.
    `json.dumps(value, sort_keys=True, separators=(",", ":"))`, with or without
    `ensure_ascii` (`Decision.canonical_json()` is such a text). Appending it skips
    re-encoding the detail, the dominant cost of an append for a large decision. The
    store also returns stored detail in this form, so exports need no re-encoding.
    """

    __slots__ = ("_parsed", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._parsed: dict[str, Any] | None = None

    def _value(self) -> dict[str, Any]:
        if self._parsed is None:
            self._parsed = json.loads(self.text)
        return self._parsed

    def __getitem__(self, key: str) -> Any:
        return self._value()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._value())

    def __len__(self) -> int:
        return len(self._value())

    def __repr__(self) -> str:
        return f"CanonicalDetail({self.text!r})"


def canonical_detail(kind: str, detail: Mapping[str, Any]) -> str:
    """Encode an entry's detail, refusing anything that is not plain JSON."""
    # The class's own ancestry, not `isinstance`: a Mapping's check runs in Python (abc).
    if CanonicalDetail in type(detail).__mro__:
        text: str = detail.text  # type: ignore[attr-defined]  # (no cast: a call per row)
        if not (text[:1] == "{" and text[-1:] == "}"):
            raise AuditEntryError(f"detail of a {kind!r} entry is not a JSON object")
        # A backslash first: one character is found by a plain memory scan, several times
        # faster than the two-character search, and most details hold no escape at all.
        if "\\" not in text or "\\u" not in text:
            return text
        # \u escapes: either ensure_ascii output or control characters. Re-encode so
        # the stored form is the one auditors reproduce (non-ASCII written as UTF-8).
        try:
            detail = json.loads(text)
        except ValueError as exc:
            raise AuditEntryError(f"detail of a {kind!r} entry is not valid JSON") from exc
    try:
        return canonical_json(dict(detail))
    except (TypeError, ValueError) as exc:
        # json's messages name types ("Object of type date ..."), never values.
        raise AuditEntryError(f"detail of a {kind!r} entry is not JSON-ready: {exc}") from exc


def prepared_detail(entry: AuditEntry) -> tuple[str, bytes]:
    """(canonical text, its UTF-8 bytes) of an entry's detail, as every store writes it."""
    text = canonical_detail(entry.kind, entry.detail)
    try:
        return text, text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise AuditEntryError(
            f"detail of a {entry.kind!r} entry is not valid Unicode text") from exc


def _quoted(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def encode_row(
    row: StoredRow, *, with_hash: bool = False, detail_bytes: bytes | None = None
) -> bytes:
    """Canonical bytes of a row: what is hashed, or (with_hash) an exported line.

    The row's detail is canonical JSON text, unless `detail_bytes` gives it UTF-8 encoded
    already. Columns after the 15 of `COLUMNS` are ignored; the hash may be absent
    unless `with_hash`.
    """
    (seq, kind, at_ms, subject, recipient, source, agreement, subscription, outcome,
     event_id, decision_id, actor, detail, prev_hash) = row[:14]
    hash_ = row[14] if with_hash else None
    head = _HEAD % (_quoted(actor), _quoted(agreement), at_ms, _quoted(decision_id))
    tail = _TAIL % (
        _quoted(event_id), "" if hash_ is None else f'"hash":"{hash_.hex()}",', _quoted(kind),
        _quoted(outcome), prev_hash.hex(), _quoted(recipient), seq, _quoted(source),
        _quoted(subject), _quoted(subscription),
    )
    if detail_bytes is None:
        detail_bytes = detail.encode("utf-8")
    return head.encode("utf-8") + detail_bytes + tail.encode("utf-8")


def chain_hash(prev_hash: bytes, body: bytes) -> bytes:
    """The hash of a record whose canonical bytes (without hash) are `body`."""
    return hashlib.sha256(prev_hash + body).digest()


def _check_optional_str(name: str, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise AuditEntryError(f"audit entry {name} must be a string or None")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise AuditEntryError(f"audit entry {name} is not valid Unicode text") from exc


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One thing to record, as a caller submits it; the store gives it a seq and hashes.

    `subject` must be a subject pseudonym (`SubjectPseudonymizer.pseudonym`), never a raw
    identifier. `detail` is JSON-ready and holds no field values: for decisions it is
    `Decision.to_dict()` (field paths, reasons, rule ids, consent ids, legal basis).
    """

    kind: str
    at_ms: int
    subject: str | None = None
    recipient: str | None = None
    source: str | None = None
    agreement: str | None = None
    subscription: str | None = None
    outcome: str | None = None
    event_id: str | None = None
    decision_id: str | None = None
    actor: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or not _KIND_PATTERN.fullmatch(str(self.kind)):
            raise AuditEntryError(
                "audit entry kind must be a lowercase word such as 'decision'"
            )
        # Store the plain value so an AuditKind member and its string encode alike.
        object.__setattr__(self, "kind", str(self.kind))
        if type(self.at_ms) is not int or self.at_ms < 0:
            raise AuditEntryError("audit entry at_ms must be a non-negative integer")
        if self.subject is not None and (
            not isinstance(self.subject, str)
            or not SUBJECT_PSEUDONYM_PATTERN.fullmatch(self.subject)
        ):
            raise AuditEntryError(
                "audit entry subject must be a subject pseudonym ('sp_' + 32 hex digits), "
                "never a raw identifier"
            )
        for name in ("recipient", "source", "agreement", "subscription", "outcome",
                     "event_id", "decision_id", "actor"):
            _check_optional_str(name, getattr(self, name))
        if not isinstance(self.detail, Mapping):
            raise AuditEntryError("audit entry detail must be a mapping")


_new_entry = object.__new__
(_set_kind, _set_at, _set_subject, _set_recipient, _set_source, _set_agreement,
 _set_subscription, _set_outcome, _set_event, _set_decision, _set_actor, _set_detail) = (
    AuditEntry.__dict__[name].__set__ for name in (
        "kind", "at_ms", "subject", "recipient", "source", "agreement", "subscription",
        "outcome", "event_id", "decision_id", "actor", "detail"))


def compiled_entry(
    kind: str, at_ms: int, subject: str | None, recipient: str | None, source: str | None,
    agreement: str | None, subscription: str | None, outcome: str | None,
    event_id: str | None, decision_id: str | None, actor: str | None,
    detail: Mapping[str, Any],
) -> AuditEntry:
    """An entry made of values the broker compiled itself, without the checks
    `AuditEntry()` makes of what callers hand in (they cost as much again as building
    the entry; `bench/audit_plans_bench.py`): the router's decisions, whose subject
    comes from the pseudonymizer, whose names come from the loaded bundle and whose ids
    are decoded event strings. Entries from anywhere else use `AuditEntry(...)`."""
    entry = _new_entry(AuditEntry)
    _set_kind(entry, kind)
    _set_at(entry, at_ms)
    _set_subject(entry, subject)
    _set_recipient(entry, recipient)
    _set_source(entry, source)
    _set_agreement(entry, agreement)
    _set_subscription(entry, subscription)
    _set_outcome(entry, outcome)
    _set_event(entry, event_id)
    _set_decision(entry, decision_id)
    _set_actor(entry, actor)
    _set_detail(entry, detail)
    return entry


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """A stored audit entry: its place in the chain (`seq`), and the chain hashes (hex).

    `detail` is a read-only mapping; records read from a store parse it only when it is
    first read. Use `to_dict()` (or `dict(record.detail)`) for a JSON-ready copy.
    """

    seq: int
    kind: str
    at_ms: int
    subject: str | None
    recipient: str | None
    source: str | None
    agreement: str | None
    subscription: str | None
    outcome: str | None
    event_id: str | None
    decision_id: str | None
    actor: str | None
    detail: Mapping[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def from_row(cls, row: StoredRow, detail: Mapping[str, Any] | None = None) -> AuditRecord:
        """Build from a row whose detail is canonical JSON text (parsed lazily), or use
        `detail` when the caller has it already."""
        values = list(row)
        values[12] = CanonicalDetail(row[12]) if detail is None else detail
        values[13] = row[13].hex()
        values[14] = row[14].hex()
        return cls(*values)

    def to_row(self) -> StoredRow:
        """This record in `COLUMNS` order, detail canonicalised, hashes as bytes."""
        try:
            prev_hash, hash_ = bytes.fromhex(self.prev_hash), bytes.fromhex(self.hash)
        except ValueError as exc:
            raise AuditFormatError(f"record {self.seq}: hashes must be hex") from exc
        return (
            self.seq, self.kind, self.at_ms, self.subject, self.recipient, self.source,
            self.agreement, self.subscription, self.outcome, self.event_id,
            self.decision_id, self.actor, canonical_detail(self.kind, self.detail),
            prev_hash, hash_,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as exported (hashes in hex)."""
        values = {name: getattr(self, name) for name in COLUMNS}
        values["detail"] = dict(self.detail)
        return values

    def to_json_line(self) -> str:
        """The canonical JSON line of this record, `hash` included."""
        return encode_row(self.to_row(), with_hash=True).decode("utf-8")

    def computed_hash(self) -> str:
        """Recompute this record's hash from its content and `prev_hash` (hex)."""
        row = self.to_row()
        return chain_hash(row[13], encode_row(row)).hex()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditRecord:
        """Read back an exported record (`to_dict` or a parsed JSON line)."""
        if set(data) != set(COLUMNS):
            raise AuditFormatError(
                "an audit record has exactly these keys: " + ", ".join(sorted(COLUMNS))
            )
        for name in ("seq", "at_ms"):
            if type(data[name]) is not int:
                raise AuditFormatError(f"an audit record's {name} must be an integer")
        return cls(*(data[name] for name in COLUMNS))


def checkpoint_message(seq: int, hash_hex: str, at_ms: int) -> bytes:
    """The bytes a checkpoint signature covers: a domain tag, then canonical JSON."""
    return _CHECKPOINT_DOMAIN + canonical_json(
        {"at_ms": at_ms, "hash": hash_hex, "seq": seq}
    ).encode("utf-8")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement that the chain's record `seq` has hash `hash` (hex) at `at_ms`."""

    number: int
    seq: int
    hash: str
    at_ms: int
    key_id: str
    signature: bytes

    def message(self) -> bytes:
        """The bytes `signature` signs."""
        return checkpoint_message(self.seq, self.hash, self.at_ms)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for storage outside the broker (signature in hex)."""
        return {
            "number": self.number, "seq": self.seq, "hash": self.hash, "at_ms": self.at_ms,
            "key_id": self.key_id, "signature": self.signature.hex(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        """Read back an exported checkpoint."""
        try:
            checkpoint = cls(
                number=int(data["number"]), seq=int(data["seq"]), hash=str(data["hash"]),
                at_ms=int(data["at_ms"]), key_id=str(data["key_id"]),
                signature=bytes.fromhex(str(data["signature"])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AuditFormatError(
                "a checkpoint needs number, seq, hash, at_ms, key_id and a hex signature"
            ) from exc
        if not re.fullmatch(r"[0-9a-f]{64}", checkpoint.hash):
            raise AuditFormatError(f"checkpoint {checkpoint.number}: hash must be 64 hex")
        return checkpoint
