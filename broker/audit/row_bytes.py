"""The canonical bytes of rows written in batches, with what rows of one plan share
quoted once.

`encode_row` (broker.audit.records) quotes all ten string columns of every row. In a
router batch most of them repeat: a decision's kind, outcome, recipient, source,
agreement and subscription (and its actor, none) follow from the plan it was decided
by, so three rows per event share a handful of combinations. `RowBytes` keeps, per
combination, the whole record template with those columns already quoted, and fills in
per row only what varies: seq, time, ids, subject, detail and previous hash. The bytes
are `encode_row`'s, to the byte (a unit test holds the two equal); only the work differs.
`chained` also gives the exported line with its hash (`encode_row(..., with_hash=True)`),
which the Kafka audit store writes, from the same two halves; `hash_of` the chain hash
alone, from both halves joined once per combination, which the embedded store's write
loop takes per row.
"""

from __future__ import annotations

from hashlib import sha256
from json.encoder import encode_basestring

from broker.audit.records import StoredRow

_KEPT = 4096
"""Templates a `RowBytes` keeps; emptied when full, then filled again."""

Shared = tuple[str, str | None, str | None, str | None, str | None, str | None, str | None]
"""(kind, outcome, recipient, source, agreement, subscription, actor) of a row."""


def _quoted(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def _literal(value: str | None) -> str:
    """A column quoted once, as it stands in a %-template (its own % doubled)."""
    return _quoted(value).replace("%", "%%")


def _template(shared: Shared) -> tuple[str, str]:
    """The two halves of a row's canonical bytes: up to and including the event id's
    comma, where an exported line has its "hash" member, and the rest."""
    kind, outcome, recipient, source, agreement, subscription, actor = shared
    # Keys in sorted order, as `encode_row` writes them (the detail between
    # "decision_id" and "event_id"; "hash", in an exported line, right after "event_id").
    return (
        f'{{"actor":{_literal(actor)},"agreement":{_literal(agreement)},"at_ms":%d,'
        '"decision_id":%s,"detail":%s,"event_id":%s,',
        f'"kind":{_literal(kind)},'
        f'"outcome":{_literal(outcome)},"prev_hash":"%s","recipient":{_literal(recipient)},'
        f'"seq":%d,"source":{_literal(source)},"subject":%s,'
        f'"subscription":{_literal(subscription)}}}'
    )


class RowBytes:
    """`encode_row(row)` for rows whose plan-given columns repeat. Not thread-safe: a
    store calls it under its write lock."""

    __slots__ = ("_templates", "_wholes")

    def __init__(self) -> None:
        self._templates: dict[Shared, tuple[str, str]] = {}
        self._wholes: dict[Shared, str] = {}

    def encode(self, row: StoredRow, detail: str | None = None) -> bytes:
        """The canonical bytes of `row` (in `COLUMNS` order, its hash not needed), what
        its hash is computed over; `detail` is the whole detail text when the row holds
        only its head (`encode_row(row, detail_bytes=detail.encode())`)."""
        head, tail = self._halves(row, detail)
        return (head + tail).encode("utf-8")

    def chained(self, row: StoredRow, detail: str | None = None) -> tuple[bytes, bytes]:
        """(hash, exported line) of `row` (as for `encode`): the hash chained onto the
        row's `prev_hash`, `chain_hash(prev_hash, encode(row, detail))`, and the line
        with it, `encode_row((*row, hash), with_hash=True, ...)`."""
        head, tail = self._halves(row, detail)
        head_bytes, tail_bytes = head.encode("utf-8"), tail.encode("utf-8")
        digest = sha256(row[13] + head_bytes + tail_bytes).digest()
        return digest, b"".join((head_bytes, b'"hash":"', digest.hex().encode("ascii"),
                                 b'",', tail_bytes))

    def hash_of(self, row: StoredRow, detail: str) -> bytes:
        """`chain_hash(row[13], encode(row, detail))` for a row of exactly the 14 hashed
        columns, in one pass: the record's whole template (both halves joined) filled in
        once, with no intermediate halves. What a store's write loop calls per row."""
        (seq, kind, at_ms, subject, recipient, source, agreement, subscription, outcome,
         event_id, decision_id, actor, _stored, prev_hash) = row
        template = self._wholes.get(
            (kind, outcome, recipient, source, agreement, subscription, actor))
        if template is None:
            template = self._whole(
                (kind, outcome, recipient, source, agreement, subscription, actor))
        return sha256(prev_hash + (template % (
            at_ms, "null" if decision_id is None else encode_basestring(decision_id), detail,
            "null" if event_id is None else encode_basestring(event_id), prev_hash.hex(),
            seq, "null" if subject is None else encode_basestring(subject),
        )).encode("utf-8")).digest()

    def _whole(self, shared: Shared) -> str:
        if len(self._wholes) >= _KEPT:
            self._wholes.clear()
        head, tail = self._template_of(shared)
        whole = self._wholes[shared] = head + tail
        return whole

    def _template_of(self, shared: Shared) -> tuple[str, str]:
        template = self._templates.get(shared)
        if template is None:
            if len(self._templates) >= _KEPT:
                self._templates.clear()
            template = self._templates[shared] = _template(shared)
        return template

    def _halves(self, row: StoredRow, detail: str | None) -> tuple[str, str]:
        (seq, kind, at_ms, subject, recipient, source, agreement, subscription, outcome,
         event_id, decision_id, actor, stored, prev_hash) = row[:14]
        head, tail = self._template_of(
            (kind, outcome, recipient, source, agreement, subscription, actor))
        return (head % (at_ms, _quoted(decision_id), stored if detail is None else detail,
                        _quoted(event_id)),
                tail % (prev_hash.hex(), seq, _quoted(subject)))
