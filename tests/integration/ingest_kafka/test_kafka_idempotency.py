"""Idempotent publishing on Kafka: an accepted (agency, event_id) is remembered across
restarts and across API processes, so a re-sent event gets its original answer."""

from __future__ import annotations

import threading
import uuid

import pytest

from broker.errors import LogUnavailableError
from broker.ingest.group_commit import GroupCommitter
from broker.ingest.idempotency import Accepted
from broker.ingest.kafka_idempotency import ACCEPTED_TOPIC, KafkaIdempotencyIndex
from broker.log.kafka import KafkaEventLog
from broker.log.port import NewRecord, TopicSpec
from tests.waiting import eventually


@pytest.fixture
def open_log(kafka_broker):
    prefix = f"t{uuid.uuid4().hex[:10]}."
    opened: list[KafkaEventLog] = []

    def opener() -> KafkaEventLog:
        log = KafkaEventLog(kafka_broker.bootstrap_servers, topic_prefix=prefix)
        opened.append(log)
        return log

    yield opener
    for log in opened:
        log.close()


def test_an_accepted_event_is_found_after_a_restart_without_the_cache(open_log, tmp_path):
    index = KafkaIdempotencyIndex(open_log(), tmp_path / "a.db")
    index.remember("county-general", {"ev-1": Accepted("events.birth", 2, 17),
                                      "ev-2": Accepted("events.birth", 0, 4)})
    index.close()
    # Another machine, or the cache deleted: rebuilt from the topic.
    elsewhere = KafkaIdempotencyIndex(open_log(), tmp_path / "b.db")
    try:
        assert elsewhere.lookup("county-general", ["ev-1", "ev-2", "ev-3"]) == {
            "ev-1": Accepted("events.birth", 2, 17), "ev-2": Accepted("events.birth", 0, 4)}
        # Event ids are per agency.
        assert elsewhere.lookup("vital-records", ["ev-1"]) == {}
    finally:
        elsewhere.close()


def found_within(index: KafkaIdempotencyIndex, source: str, event_id: str,
                 seconds: float = 10.0) -> bool:
    return bool(eventually(lambda: index.lookup(source, [event_id]), timeout=seconds,
                           interval=0.01, message=f"{event_id} was never found"))


def test_an_event_accepted_by_one_api_process_is_a_duplicate_at_another(open_log, tmp_path):
    logs = [open_log(), open_log()]
    for log in logs:
        log.ensure_topic(TopicSpec("events.birth", partitions=2))
    indexes = [KafkaIdempotencyIndex(log, tmp_path / f"{n}.db") for n, log in enumerate(logs)]
    committers = [GroupCommitter(log, index) for log, index in zip(logs, indexes, strict=True)]
    try:
        record = NewRecord(value=b"birth", key=b"MPI-1")
        first = committers[0].submit("county-general", "events.birth", ["ev-9"],
                                     [record]).result(30)
        # The other process learns of it from the topic, in the background (a re-send
        # after a timeout comes seconds later).
        assert found_within(indexes[1], "county-general", "ev-9")
        again = committers[1].submit("county-general", "events.birth", ["ev-9"],
                                     [record]).result(30)
        assert first[0].duplicate is False
        assert again[0].duplicate is True
        assert (again[0].partition, again[0].offset) == (first[0].partition, first[0].offset)
        assert sum(logs[0].end_offset("events.birth", p) for p in range(2)) == 1
    finally:
        for committer in committers:
            committer.close()
        for index in indexes:
            index.close()


def test_a_reopened_cache_keeps_its_entries_and_skips_foreign_records(open_log, tmp_path):
    log = open_log()
    index = KafkaIdempotencyIndex(log, tmp_path / "cache.db")
    index.remember("county-general", {f"ev-{n}": Accepted("events.birth", 0, n)
                                      for n in range(50)})
    index.catch_up()
    index.close()
    reopened = KafkaIdempotencyIndex(log, tmp_path / "cache.db")
    try:
        # Records that are not index entries are skipped, not fatal.
        log.append(ACCEPTED_TOPIC, [NewRecord(value=b"not json", key=b"junk")])
        found = reopened.lookup("county-general", [f"ev-{n}" for n in range(60)])
        assert found == {f"ev-{n}": Accepted("events.birth", 0, n) for n in range(50)}
    finally:
        reopened.close()


class AcceptedTopicDown:
    """An event log whose `_accepted` topic refuses appends, as a cluster that lost it."""

    def __init__(self, inner: KafkaEventLog) -> None:
        self._inner = inner

    def append(self, topic: str, records):
        if topic == ACCEPTED_TOPIC:
            raise LogUnavailableError("Kafka went away (test)")
        return self._inner.append(topic, records)

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


@pytest.mark.slow
def test_publishing_goes_on_when_the_index_cannot_be_written_to_kafka(open_log, tmp_path,
                                                                       caplog):
    log = AcceptedTopicDown(open_log())
    log.ensure_topic(TopicSpec("events.birth", partitions=2))
    index = KafkaIdempotencyIndex(log, tmp_path / "cache.db")  # type: ignore[arg-type]
    committer = GroupCommitter(log, index)  # type: ignore[arg-type]
    try:
        record = NewRecord(value=b"birth", key=b"MPI-1")
        first = committer.submit("county-general", "events.birth", ["ev-1"],
                                 [record]).result(30)
        again = committer.submit("county-general", "events.birth", ["ev-1"],
                                 [record]).result(30)
    finally:
        committer.close()
        index.close()     # waits for the writer, which gives up after its retries

    assert first[0].duplicate is False
    # This process still recognises the re-send; the failure is logged without ids.
    assert again[0].duplicate is True
    assert "could not record 1 accepted events in _accepted" in caplog.text
    assert "ev-1" not in caplog.text


class CallsFromThisThread:
    """An event log that counts the requests made from the thread that built it."""

    def __init__(self, inner: KafkaEventLog) -> None:
        self._inner = inner
        self._thread = threading.get_ident()
        self.requests = 0
        self.names: list[str] = []

    def __getattr__(self, name: str):
        attribute = getattr(self._inner, name)
        if name not in {"read", "end_offset", "end_offsets", "append"}:
            return attribute

        def counted(*args, **kwargs):
            if threading.get_ident() == self._thread:
                self.requests += 1
                self.names.append(name)
            return attribute(*args, **kwargs)

        return counted


@pytest.mark.slow
def test_publishing_asks_kafka_nothing_while_the_index_is_followed(open_log, tmp_path):
    # Every group commit used to ask Kafka for `_accepted`'s ends and read back what was
    # appended since, its own records included: most of the committer's time on Kafka.
    other = KafkaIdempotencyIndex(open_log(), tmp_path / "other.db")
    other.remember("county-general", {"ev-0": Accepted("events.birth", 0, 0)})
    log = CallsFromThisThread(open_log())
    index = KafkaIdempotencyIndex(log, tmp_path / "cache.db")  # type: ignore[arg-type]
    try:
        assert found_within(index, "county-general", "ev-0")

        def answered_from_the_cache() -> bool:
            # Until the follower has confirmed the cache current, lookups read for
            # themselves.
            log.requests = 0
            index.lookup("county-general", ["ev-0"])
            return log.requests == 0

        eventually(answered_from_the_cache, message="the follower never caught up")
        log.requests = 0
        for n in range(1, 50):
            assert index.lookup("county-general", [f"ev-{n}"]) == {}
            index.remember("county-general", {f"ev-{n}": Accepted("events.birth", 0, n)})
            assert index.lookup("county-general", [f"ev-{n}"]) == {
                f"ev-{n}": Accepted("events.birth", 0, n)}
        assert log.requests == 0, log.names
    finally:
        index.close()
        other.close()
    # The writer thread still got them into Kafka, for other processes and restarts.
    rebuilt = KafkaIdempotencyIndex(open_log(), tmp_path / "rebuilt.db")
    try:
        assert len(rebuilt.lookup("county-general", [f"ev-{n}" for n in range(50)])) == 50
    finally:
        rebuilt.close()
