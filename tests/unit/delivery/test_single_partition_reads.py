"""Reading one partition's deliveries gives each with the cursor just past it, from any
cursor, with any limit, and up to `until`."""

from __future__ import annotations

from broker.delivery.cursor import Cursor
from broker.delivery.feed import DeliveryFeed
from broker.log.port import NewRecord, TopicSpec
from broker.topics import delivery_topic
from schemas.registry import SchemaRegistry
from schemas.store import InMemoryRegistryStore
from schemas.wire import WireCodec
from tests.unit.broker.fakes import MemoryEventLog
from tests.unit.delivery.test_frame_bytes import envelope
from tests.unit.delivery.test_view_text import FLOATLESS, SUBSCRIPTION, floatless_record


def test_a_single_partition_reads_with_the_cursor_after_each_record() -> None:
    registry = SchemaRegistry(InMemoryRegistryStore())
    schema_id = registry.register("floatless-view", FLOATLESS).schema_id
    codec = WireCodec(registry)
    log = MemoryEventLog()
    topic = delivery_topic(SUBSCRIPTION)
    log.ensure_topic(TopicSpec(topic, partitions=1))
    for i in range(12):
        log.append(topic, [NewRecord(value=codec.encode(schema_id, floatless_record(i)),
                                     key=str(i).encode(), headers=envelope(i).headers())])
    feed = DeliveryFeed(log, codec, registry)
    for start, limit, until in [(0, 100, None), (3, 4, None), (5, 100, Cursor((9,))),
                                (11, 5, None), (12, 5, None)]:
        steps = feed.read_steps(SUBSCRIPTION, Cursor((start,)), limit, until)
        end = min(12 if until is None else until.offsets[0], start + limit)
        assert [c for c, _ in steps] == [Cursor((o + 1,)) for o in range(start, end)]
        assert [d.cursor for _, d in steps] == [str(o + 1) for o in range(start, end)]
        assert [d.envelope.event_id for _, d in steps] == [
            envelope(o).event_id for o in range(start, end)]
