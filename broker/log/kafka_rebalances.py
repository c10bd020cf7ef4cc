"""Telling a Kafka group member which partitions a rebalance took and gave."""

from __future__ import annotations

from collections.abc import Callable

from kafka import TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener

Moved = Callable[[set[TopicPartition]], None]


class RebalanceCallbacks(ConsumerRebalanceListener):
    """A kafka-python rebalance listener that calls `revoked` with the partitions a
    member lost and `assigned` with those it gained (kafka-python calls it from within
    a poll, possibly on its own thread)."""

    def __init__(self, revoked: Moved, assigned: Moved) -> None:
        self._revoked = revoked
        self._assigned = assigned

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._revoked(set(revoked))

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._assigned(set(assigned))
