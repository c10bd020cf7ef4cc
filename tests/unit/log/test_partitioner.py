"""Keys must land on the partition Kafka would choose, so moving to Kafka keeps per-key
order. Vectors come from Kafka's own tests (UtilsTest.testMurmur2) and kafka-python's
(test_partitioner.py, checked there against the Java client)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.errors import LogError
from broker.log.partitioner import murmur2, partition_for


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_murmur2_matches_the_java_client(data, expected):
    assert murmur2(data) == expected


@pytest.mark.parametrize(
    "key, expected",
    [
        (b"", 681),
        (b"a", 524),
        (b"ab", 434),
        (b"abc", 107),
        (b"123456789", 566),
        (b"\x00 ", 742),
    ],
)
def test_partition_matches_kafkas_default_partitioner(key, expected):
    assert partition_for(key, 1000) == expected


def test_bytes_outside_ascii_hash_like_java():
    # Java reads bytes as signed and masks them; values from kafka-python, which does the
    # same. Five bytes also exercise the tail that does not fill a 4-byte block.
    assert murmur2(b"\xa4\xff\x80\x81\xfe") == 487072513
    assert partition_for(b"\x81" * 1000, 7) == 0


def test_unkeyed_records_go_round_robin():
    assert [partition_for(None, 3, n) for n in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    assert {partition_for(None, 1, n) for n in range(5)} == {0}


def test_a_topic_without_partitions_is_refused():
    with pytest.raises(LogError):
        partition_for(b"key", 0)


@given(key=st.binary(max_size=64), partitions=st.integers(min_value=1, max_value=500))
def test_partition_agrees_with_kafka_python(key, partitions):
    kafka_default = pytest.importorskip("kafka.partitioner.default")
    expected = (kafka_default.murmur2(key) & 0x7FFFFFFF) % partitions
    assert partition_for(key, partitions) == expected
