"""What a Kafka group member commits of the offsets handed to `commit_later` (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping

from kafka import errors as kafka_errors

from broker.log.kafka_commits import LaterCommits
from broker.log.port import TopicPartition

A, B = ("ingress", 0), ("ingress", 1)
OWNED = {A, B}


class Ended:
    def __init__(self) -> None:
        self.calls: list[tuple[dict[TopicPartition, int], Exception | None]] = []

    def __call__(self, offsets: Mapping[TopicPartition, int], error: Exception | None) -> None:
        self.calls.append((dict(offsets), error))


def test_the_latest_offset_of_each_partition_is_sent_once():
    later = LaterCommits(Ended())
    later.add({A: 3})
    later.add({A: 5, B: 2})

    assert later.take(OWNED) == {A: 5, B: 2}
    assert later.take(OWNED) == {}


def test_a_committed_position_never_goes_back():
    later = LaterCommits(Ended())
    later.add({A: 8})
    later.take(OWNED)
    later.add({A: 6})                       # handed over late: behind what was sent

    assert later.take(OWNED) == {}
    assert later.unsettled(OWNED, {B: 1}) == {A: 8, B: 1}


def test_offsets_of_partitions_no_longer_owned_are_never_sent():
    later = LaterCommits(Ended())
    later.add({A: 4, B: 4})

    assert later.take({B}) == {B: 4}
    assert later.unsettled({B}) == {B: 4}


def test_a_retriable_refusal_is_sent_again_and_a_rebalance_drops_the_offsets():
    ended = Ended()
    later = LaterCommits(ended)
    later.add({A: 4})
    sent = later.take(OWNED)
    later._ended(sent, None, kafka_errors.NodeNotReadyError())
    assert later.take(OWNED) == {A: 4}

    later._ended({A: 4}, None, kafka_errors.CommitFailedError())
    assert later.take(OWNED) == {}
    assert later.unsettled(OWNED) == {}
    assert ended.calls == []                # neither is the caller's error


def test_an_acknowledgement_settles_and_a_lasting_refusal_is_reported():
    ended = Ended()
    later = LaterCommits(ended)
    later.add({A: 4})
    later._ended(later.take(OWNED), None, object())   # kafka-python's response
    assert later.unsettled(OWNED) == {}

    later.add({A: 9})
    refusal = kafka_errors.TopicAuthorizationFailedError()
    later._ended(later.take(OWNED), None, refusal)
    assert ended.calls == [({A: 4}, None), ({A: 9}, refusal)]
    assert later.unsettled(OWNED) == {}
