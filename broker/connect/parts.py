"""What running connectors needs from the broker, built once by `broker.bootstrap`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from broker.connect.offsets import DeadLetterTopic, TopicOffsetStore
from broker.connect.status import ConnectorMetrics
from broker.delivery.feed import DeliveryFeed
from broker.ingest.publisher import Publisher
from broker.policy_holder import PolicyHolder


@dataclass(frozen=True)
class ConnectParts:
    publisher: Publisher
    """Sources publish through it, as their agency."""
    feed: DeliveryFeed
    """Sinks read their subscription's deliveries from it; it also resolves the view
    schema ids deliveries name (`ConnectorContext.schema`)."""
    policy: PolicyHolder
    offsets: TopicOffsetStore
    dead_letters: DeadLetterTopic
    metrics: ConnectorMetrics
    state_root: Path
    """Each connector gets `state_root/<name>/` as its private folder."""
