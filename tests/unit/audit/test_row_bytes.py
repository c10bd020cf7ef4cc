"""Rows chained in batches are hashed over exactly the bytes an auditor re-computes."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from broker.audit.records import AuditRecord, canonical_detail, chain_hash, encode_row
from broker.audit.row_bytes import RowBytes

TEXTS = st.one_of(
    st.none(),
    st.sampled_from(["decision", "permit", "%s", "100%", "%%d %(x)s", 'q"uote\\', "Zoë 👶",
                     "\u2028", ""]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12),
)
ROWS = st.tuples(
    st.integers(0, 2**62), st.sampled_from(["decision", "decision_plan", "record_%d"]),
    st.integers(0, 2**62), TEXTS, TEXTS, TEXTS, TEXTS, TEXTS, TEXTS, TEXTS, TEXTS, TEXTS,
    st.dictionaries(st.text(max_size=4), TEXTS, max_size=3),
    st.binary(min_size=32, max_size=32),
)


@given(st.lists(ROWS, min_size=1, max_size=6))
def test_batched_row_bytes_equal_the_documented_canonical_json(rows):
    """Values with `%`, quotes, controls and non-ASCII, repeated across rows in any mix:
    the template kept per repeated part gives each row the bytes `encode_row` gives it,
    which are the documented JSON of the record."""
    encoder = RowBytes()
    for values in [*rows, *rows]:  # the second time round, from kept templates
        detail = canonical_detail("decision", values[12])
        row = (*values[:12], detail, values[13])
        expected = encode_row(row)
        assert encoder.encode(row) == expected
        record = AuditRecord.from_row((*row, bytes(32)))
        without_hash = {k: v for k, v in record.to_dict().items() if k != "hash"}
        assert expected == json.dumps(without_hash, sort_keys=True, separators=(",", ":"),
                                      ensure_ascii=False).encode("utf-8")


def test_a_row_holding_only_its_detail_head_is_hashed_over_the_whole_detail():
    whole = canonical_detail("decision", {"a": "x" * 40, "z": "shared tail"})
    row = (3, "decision", 5, None, "r", "s", "a", "sub", "permit", "e", "d", None,
           whole[:10], bytes(32))
    assert RowBytes().encode(row, whole) == encode_row(
        (*row[:12], whole, row[13]), detail_bytes=whole.encode("utf-8"))


@given(st.lists(ROWS, min_size=1, max_size=6))
def test_chained_rows_give_the_hash_and_the_exported_line_an_auditor_recomputes(rows):
    """What the Kafka audit store writes: each row's hash over its canonical bytes, and
    its exported line with that hash, the bytes `encode_row(with_hash=True)` gives."""
    encoder = RowBytes()
    for values in [*rows, *rows]:
        detail = canonical_detail("decision", values[12])
        row = (*values[:12], "", values[13])
        whole = (*values[:12], detail, values[13])
        digest, line = encoder.chained(row, detail)
        assert digest == chain_hash(values[13], encode_row(whole))
        assert line == encode_row((*whole, digest), with_hash=True)


@given(st.lists(ROWS, min_size=1, max_size=6))
def test_a_row_hashed_in_one_pass_chains_as_an_auditor_recomputes(rows):
    """What the embedded store's write loop hashes: a row holding its detail's head is
    hashed over the whole detail, as `chain_hash` over `encode_row` of the whole row."""
    encoder = RowBytes()
    for values in [*rows, *rows]:
        detail = canonical_detail("decision", values[12])
        head = (*values[:12], detail[:7], values[13])
        whole = (*values[:12], detail, values[13])
        assert encoder.hash_of(head, detail) == chain_hash(values[13], encode_row(whole))
