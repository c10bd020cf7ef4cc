"""What the Kafka event log's appends keep beyond the port contract: kafka-python's request
size limit, and records' partitions, offsets and order across topics, whichever way the
records reach the producer.

Runs against the session's Tansu broker (tests/kafka_broker.py); topic names are unique
per test because the broker is shared.
"""

from __future__ import annotations

import logging

import pytest

from broker.errors import LogError
from broker.log import NewRecord, TopicSpec, kafka_producer, partition_for
from tests.integration.log.conftest import unique

pytestmark = pytest.mark.slow


def test_a_record_larger_than_a_request_is_refused_and_the_log_goes_on(open_log):
    # kafka-python's producer sends at most 1 MiB in one request.
    topic = unique("deliver.hv-births")
    log, reader = open_log(), open_log()
    log.ensure_topic(TopicSpec(topic))

    with pytest.raises(LogError):
        log.append(topic, [NewRecord(b"x" * (1024 * 1024 + 1))])
    log.append(topic, [NewRecord(b"y" * 1000 * 1000), NewRecord(b"z")])

    assert [len(r.value) for r in reader.read(topic, 0, 0, 5)] == [1000 * 1000, 1]


@pytest.mark.parametrize("producer_path", ["batches", "send"])
def test_records_keep_their_order_across_topics_in_one_append(open_log, producer_path,
                                                              monkeypatch, caplog):
    # "send": a kafka-python whose producer lacks the batches the log hands records to;
    # the log says so once, when it opens.
    if producer_path == "send":
        monkeypatch.setattr(kafka_producer, "_can_hand", lambda producer, accumulator: False)
    first, second = unique("deliver.hv-births"), unique("deliver.eval-births")
    with caplog.at_level(logging.INFO, logger=kafka_producer.__name__):
        log = open_log()
    reader = open_log()
    said = [r.getMessage() for r in caplog.records if r.name == kafka_producer.__name__]
    assert any("one by one through KafkaProducer.send" in m for m in said) == (
        producer_path == "send")
    log.ensure_topic(TopicSpec(first, partitions=2))
    log.ensure_topic(TopicSpec(second))
    keyed = [NewRecord(str(n).encode(), key=f"subject-{n % 5}".encode()) for n in range(40)]

    results = log.append_all([(first, keyed[:20]), (second, keyed[:3]), (first, keyed[20:])])

    read = {p: reader.read(first, p, 0, 100) for p in (0, 1)}
    for record, result in zip(keyed, results[0] + results[2], strict=True):
        assert result.partition == partition_for(record.key or b"", 2)
        assert read[result.partition][result.offset].value == record.value
    assert [r.value for r in reader.read(second, 0, 0, 5)] == [b"0", b"1", b"2"]
