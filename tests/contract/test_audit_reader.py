"""The audit-reader contract: what every backend of `AuditReader` guarantees to the
queries, exports, the accounting of disclosures and the compliance console.

Written only against the ports (broker/audit/store.py); audit_backends.py runs it on the
embedded store and on Kafka. Records are written through one store and read through
another, as an API process reads what the router wrote.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.audit import (
    AuditAppender,
    AuditEntry,
    AuditFilter,
    AuditQueryError,
    AuditReader,
    AuditStore,
    CheckpointLog,
    CheckpointSigner,
)
from broker.audit.store import MAX_PAGE
from tests.contract.audit_backends import (  # noqa: F401  (audit_backend fixture)
    PSEUDONYMS,
    START_MS,
    AuditBackend,
    audit_backend_fixture,
    decision,
)
from tests.kafka_broker import kafka_broker  # noqa: F401  (session fixture)

TO_HOTLINE = {"recipient": "cw-hotline", "agreement": "cg-cw-match",
              "subscription": "cw-birth-match"}


def varied(n: int) -> AuditEntry:
    """Decision n of 40: every fourth to the hotline, odd ones from vital records, every
    fifth denied; about five people."""
    return decision(
        n, f"MPI-{n % 5}", **(TO_HOTLINE if n % 4 == 3 else {}),
        source="vital-records" if n % 2 else "county-general",
        outcome="deny" if n % 5 == 0 else "permit",
    )


@pytest.fixture
def written(audit_backend: AuditBackend) -> list[AuditEntry]:
    """40 varied decisions, written in two batches by a writer process: the first as the
    router writes (`record`, nothing returned), the second with `append`, so every test
    below reads both ways back the same."""
    entries = [varied(n) for n in range(40)]
    writer = audit_backend.open()
    writer.record(entries[:25])
    assert [r.event_id for r in writer.append(entries[25:])] == [
        e.event_id for e in entries[25:]]
    return entries


@pytest.fixture
def reader(audit_backend: AuditBackend, written: list[AuditEntry]) -> AuditStore:
    """Another process's store onto the same log."""
    return audit_backend.open()


def event_ids(records) -> list[str]:
    return [record.event_id for record in records]


def test_a_store_offers_every_port(audit_backend):
    store = audit_backend.open()
    for port in (AuditStore, AuditAppender, AuditReader, CheckpointLog):
        assert isinstance(store, port)


FILTERS = [
    ({}, lambda n: True),
    ({"recipient": "cw-hotline"}, lambda n: n % 4 == 3),
    ({"agreement": "cg-hv-births"}, lambda n: n % 4 != 3),
    ({"subscription": "cw-birth-match"}, lambda n: n % 4 == 3),
    ({"source": "vital-records"}, lambda n: n % 2 == 1),
    ({"outcome": "deny"}, lambda n: n % 5 == 0),
    ({"kind": "decision"}, lambda n: True),
    ({"kind": "consent_change"}, lambda n: False),
    ({"subject": PSEUDONYMS.pseudonym("MPI-2")}, lambda n: n % 5 == 2),
    ({"since_ms": START_MS + 10_000}, lambda n: n >= 10),
    ({"until_ms": START_MS + 10_000}, lambda n: n < 10),
    ({"since_ms": START_MS + 5_000, "until_ms": START_MS + 15_000}, lambda n: 5 <= n < 15),
    ({"recipient": "hv-nfp", "outcome": "deny"}, lambda n: n % 4 != 3 and n % 5 == 0),
    ({"kind": "decision", "outcome": "permit", "recipient": "cw-hotline",
      "since_ms": START_MS + 20_000}, lambda n: n % 4 == 3 and n % 5 and n >= 20),
    ({"subject": PSEUDONYMS.pseudonym("MPI-3"), "recipient": "cw-hotline"},
     lambda n: n % 5 == 3 and n % 4 == 3),
]


@pytest.mark.parametrize(("filters", "selected"), FILTERS,
                         ids=[",".join(f) or "everything" for f, _ in FILTERS])
def test_one_filter_selects_the_same_records_in_pages_streams_and_counts(
    reader, filters, selected
):
    where = AuditFilter(**filters)
    expected = [f"ev-{n}" for n in range(40) if selected(n)]

    page = reader.page(where, limit=1000)
    assert event_ids(page.records) == expected
    assert not page.more
    assert event_ids(reader.iter_records(where)) == expected
    assert [(count.group, count.count) for count in reader.count(where)] == [((), len(expected))]


def test_pages_follow_a_cursor_through_every_record_once(reader):
    where = AuditFilter(recipient="hv-nfp")
    seen, cursor, pages = [], None, 0
    while True:
        page = reader.page(where, cursor=cursor, limit=7)
        seen += event_ids(page.records)
        pages += 1
        cursor = page.cursor
        if not page.more:
            break
    assert seen == [f"ev-{n}" for n in range(40) if n % 4 != 3]
    assert pages == 5                        # 30 records, 7 a page
    assert reader.page(where, cursor=cursor, limit=7).records == ()


def test_newest_first_pages_run_backwards(reader):
    first = reader.page(AuditFilter(outcome="permit"), limit=10, newest_first=True)
    second = reader.page(AuditFilter(outcome="permit"), cursor=first.cursor, limit=10,
                         newest_first=True)
    permitted = [f"ev-{n}" for n in range(40) if n % 5]
    assert event_ids(first.records + second.records) == permitted[::-1][:20]
    assert first.more and second.more


def test_a_cursor_from_one_process_pages_on_in_another(audit_backend, reader):
    first = reader.page(AuditFilter(), limit=15)
    elsewhere = audit_backend.open()
    rest = elsewhere.page(AuditFilter(), cursor=first.cursor, limit=100)
    assert event_ids(first.records + rest.records) == [f"ev-{n}" for n in range(40)]
    assert [r.seq for r in first.records] == [r.seq for r in elsewhere.page(
        AuditFilter(), limit=15).records]


def test_records_appended_between_pages_are_neither_skipped_nor_repeated(audit_backend, reader):
    first = reader.page(AuditFilter(), limit=30)
    audit_backend.open().append([varied(n) for n in range(40, 45)])
    rest = reader.page(AuditFilter(), cursor=first.cursor, limit=100)
    assert event_ids(first.records + rest.records) == [f"ev-{n}" for n in range(45)]


def test_pages_run_in_time_order_and_streams_in_seq_order(audit_backend):
    # A replay records an old event's decision after newer ones; two share an instant.
    audit_backend.open().append(
        [decision(5), decision(9), decision(2), decision(9, event_id="ev-9b")])
    reader = audit_backend.open()
    assert event_ids(reader.page(AuditFilter(), limit=10).records) == [
        "ev-2", "ev-5", "ev-9", "ev-9b"]
    assert event_ids(reader.page(AuditFilter(), limit=10, newest_first=True).records) == [
        "ev-9b", "ev-9", "ev-5", "ev-2"]
    streamed = list(reader.iter_records())
    assert event_ids(streamed) == ["ev-5", "ev-9", "ev-2", "ev-9b"]
    assert [r.seq for r in streamed] == sorted(r.seq for r in streamed)
    assert len({r.seq for r in streamed}) == 4
    page = reader.page(AuditFilter(), limit=2)
    assert event_ids(reader.page(AuditFilter(), cursor=page.cursor, limit=2).records) == [
        "ev-9", "ev-9b"]


def test_a_stream_resumes_after_a_seq(reader):
    records = list(reader.iter_records())
    assert event_ids(reader.iter_records(after=records[29].seq)) == [
        f"ev-{n}" for n in range(30, 40)]
    assert event_ids(reader.iter_records(AuditFilter(outcome="deny"), after=records[9].seq)) == [
        f"ev-{n}" for n in range(10, 40, 5)]


def test_records_carry_what_was_appended(audit_backend):
    appended = audit_backend.open().append([decision(1), decision(2, outcome="deny")])
    (found, _) = audit_backend.open().page(AuditFilter(), limit=10).records
    assert found.seq == appended[0].seq
    assert (found.hash, found.prev_hash) == (appended[0].hash, appended[0].prev_hash)
    assert found.computed_hash() == found.hash
    assert dict(found.detail) == decision(1).detail
    for name in ("kind", "at_ms", "subject", "recipient", "source", "agreement",
                 "subscription", "outcome", "event_id", "decision_id", "actor"):
        assert getattr(found, name) == getattr(decision(1), name)


def test_counts_by_outcome_per_agreement_for_a_period(reader):
    counted = reader.count(
        AuditFilter(kind="decision", since_ms=START_MS + 10_000, until_ms=START_MS + 30_000),
        by=("agreement", "outcome"))
    expected = Counter(
        ("cg-cw-match" if n % 4 == 3 else "cg-hv-births", "deny" if n % 5 == 0 else "permit")
        for n in range(10, 30))
    assert [(count.group, count.count) for count in counted] == sorted(expected.items())


def test_counts_by_any_attribute_in_a_stable_order(reader, audit_backend):
    audit_backend.open().append([AuditEntry(kind="policy_loaded", at_ms=START_MS,
                                            outcome="loaded", actor="broker")])
    counted = reader.count(AuditFilter(), by=("kind", "recipient"))
    assert [(count.group, count.count) for count in counted] == [
        (("decision", "cw-hotline"), 10), (("decision", "hv-nfp"), 30),
        (("policy_loaded", None), 1)]
    by_source = reader.count(AuditFilter(subject=PSEUDONYMS.pseudonym("MPI-1")), by=("source",))
    assert [(count.group, count.count) for count in by_source] == [
        (("county-general",), 4), (("vital-records",), 4)]


def test_the_accounting_of_disclosures_lists_permitted_decisions_about_one_person(
    audit_backend, reader
):
    person = PSEUDONYMS.pseudonym("MPI-1")
    audit_backend.open().append([
        AuditEntry(kind="consent_change", at_ms=START_MS + 3, subject=person,
                   outcome="granted", detail={"consent_id": "consent-17"}),
        decision(1, "MPI-1", at_ms=START_MS + 500),     # decided late, about an older event
    ])
    found = reader.disclosures(AuditFilter(subject=person))
    # n % 5 == 1 is never denied; ev-1 is there twice: once in time order.
    assert [d.event_id for d in found] == ["ev-1", "ev-1", *(f"ev-{n}" for n in range(6, 40, 5))]
    assert [d.at_ms for d in found] == sorted(d.at_ms for d in found)
    first = found[0]
    assert first.purpose == "care_coordination"
    assert first.legal_basis == ("cg-hv-births", "45 CFR 164.506(c)(4)")
    assert first.consent_ids == ("consent-17",)
    assert first.data_disclosed[:2] == ("mother.field_1", "mother.field_2")
    in_period = reader.disclosures(AuditFilter(subject=person, since_ms=START_MS + 10_000,
                                               until_ms=START_MS + 30_000))
    assert [d.event_id for d in in_period] == ["ev-11", "ev-16", "ev-21", "ev-26"]
    to_hotline = reader.disclosures(AuditFilter(subject=person, recipient="cw-hotline"))
    assert [d.event_id for d in to_hotline] == ["ev-11", "ev-31"]
    consents = reader.page(AuditFilter(subject=person, kind="consent_change"), limit=10)
    assert [dict(r.detail) for r in consents.records] == [{"consent_id": "consent-17"}]


def test_a_person_never_disclosed_has_an_empty_accounting(reader):
    assert reader.disclosures(AuditFilter(subject=PSEUDONYMS.pseudonym("MPI-none"))) == []


def test_the_head_and_checkpoints_are_read_as_signed(audit_backend, reader):
    signer = CheckpointSigner(Ed25519PrivateKey.generate())
    assert reader.latest_checkpoint() is None
    checkpoint = signer.checkpoint(reader)
    assert checkpoint is not None
    assert (checkpoint.seq, checkpoint.hash) == reader.head()
    other = audit_backend.open()
    assert other.checkpoints() == [checkpoint]
    assert other.latest_checkpoint() == checkpoint
    other.append([varied(50)])
    assert other.head()[0] > checkpoint.seq


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.page(AuditFilter(), limit=0), "limit"),
        (lambda r: r.page(AuditFilter(), limit=MAX_PAGE + 1), "limit"),
        (lambda r: r.page(AuditFilter(), cursor=10**9), "names no record"),
        (lambda r: r.page(AuditFilter(), cursor=-1), "cursor"),
        (lambda r: r.count(AuditFilter(), by=("detail",)), "cannot count by 'detail'"),
        (lambda r: r.count(AuditFilter(), by=("kind", "kind")), "twice"),
        (lambda r: r.disclosures(AuditFilter(recipient="hv-nfp")), "one subject"),
        (lambda r: r.disclosures(AuditFilter(subject=PSEUDONYMS.pseudonym("x"),
                                             outcome="deny")), "outcome"),
        (lambda r: AuditFilter(since_ms=10, until_ms=5), "ends before it starts"),
        (lambda r: AuditFilter(since_ms="yesterday"), "integer"),
    ],
    ids=["limit 0", "limit too big", "unknown cursor", "negative cursor", "count by detail",
         "count by twice", "disclosures without subject", "disclosures of denials",
         "inverted range", "text time"],
)
def test_invalid_reads_are_refused_naming_the_problem(reader, call, message):
    with pytest.raises(AuditQueryError, match=message):
        call(reader)


DAY = 86_400_000


def spread(n: int) -> AuditEntry:
    """Decision n of 60, eight hours apart (20 days), attributes varying as `varied`."""
    return dataclasses.replace(varied(n % 40), at_ms=START_MS + n * DAY // 3,
                               event_id=f"ev-{n}")


PERIODS = [
    {},
    {"since_ms": START_MS + 2 * DAY},
    {"until_ms": START_MS + 7 * DAY + 1},
    {"since_ms": START_MS + DAY // 2, "until_ms": START_MS + 9 * DAY + DAY // 3},
    {"since_ms": START_MS + 3 * DAY - 1, "until_ms": START_MS + 3 * DAY + 5},
    {"since_ms": START_MS + 4 * DAY, "until_ms": START_MS + 6 * DAY},
]
COUNTS_BY = [(), ("outcome",), ("agreement", "outcome"), ("kind", "recipient", "source"),
             ("subscription",)]


@pytest.mark.parametrize("by", COUNTS_BY, ids=[",".join(b) or "total" for b in COUNTS_BY])
def test_counts_over_any_period_agree_with_the_records(audit_backend, by):
    audit_backend.open().append([spread(n) for n in range(60)])
    reader = audit_backend.open()
    records = list(reader.iter_records())
    for period in PERIODS:
        for extra in ({}, {"recipient": "hv-nfp"}, {"outcome": "deny", "kind": "decision"},
                      {"subject": PSEUDONYMS.pseudonym("MPI-2")}):
            where = AuditFilter(**period, **extra)
            expected = Counter(tuple(getattr(r, name) for name in by)
                               for r in records if where.matches(r))
            counted = {count.group: count.count for count in reader.count(where, by)}
            if not by:
                expected[()] += 0
            assert counted == dict(expected), (period, extra)
