"""A view's JSON text is the standard library's compact text to the byte, whichever
encoder writes it (`broker.delivery.view_text`): for views with and without floats, with
any character in their strings."""

from __future__ import annotations

import json
import random
from typing import Any

from broker.delivery.cursor import Cursor
from broker.delivery.feed import DeliveryFeed
from broker.delivery.view_text import compact, view_text
from broker.log.port import NewRecord, TopicSpec
from broker.topics import delivery_topic
from schemas.jsonform import record_to_json
from schemas.registry import SchemaRegistry
from schemas.store import InMemoryRegistryStore
from schemas.wire import WireCodec
from tests.unit.broker.fakes import MemoryEventLog
from tests.unit.delivery.test_frame_bytes import VIEW, envelope, view_record

FLOAT_FIELDS = {"ratio", "score"}
FLOATLESS = {**VIEW, "name": "Floatless",
             "fields": [f for f in VIEW["fields"] if f["name"] not in FLOAT_FIELDS]}
SUBSCRIPTION = "floatless"


def reference(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def floatless_record(i: int) -> dict[str, Any]:
    return {k: v for k, v in view_record(i).items() if k not in FLOAT_FIELDS}


def texts(seed: int, count: int) -> list[str]:
    """Strings of ASCII (controls and DEL included), Latin, astral characters and lone
    surrogates."""
    rng = random.Random(seed)
    alphabet = [chr(c) for c in range(0x80)] + ["é", "\u2028", "👶", "\ud800", "\udfff"]
    out = ["", "plain ascii", "del \x7f", "nul \x00", 'quote " back \\ slash </script>']
    for _ in range(count):
        out.append("".join(rng.choice(alphabet[:0x80] if rng.random() < 0.7 else alphabet)
                           for _ in range(rng.randrange(1, 12))))
    return out


def test_views_without_floats_get_the_standard_text_for_any_string() -> None:
    text = view_text(FLOATLESS)
    for i in range(60):
        value = record_to_json(FLOATLESS, floatless_record(i))
        assert text(value) == reference(value)
    for s in texts(16, 2_000):
        value = {"s": s, "list": [s, 1, None, True], "nested": {s: s}}
        assert text(value) == reference(value)


def test_views_with_floats_anywhere_take_the_standard_encoder() -> None:
    assert view_text(VIEW) is compact
    in_union = {"type": "record", "name": "U", "fields": [
        {"name": "x", "type": ["null", {"type": "array", "items": "double"}]}]}
    assert view_text(in_union) is compact
    value = {"x": [1e16, 1e-05, 0.1, float("nan"), -0.0]}
    assert view_text(in_union)(value) == reference(value)


def test_integers_beyond_64_bits_fall_back_to_the_standard_encoder() -> None:
    value = {"n": 2**70, "m": -(2**64)}
    assert view_text(FLOATLESS)(value) == reference(value)


def feed_of(name: str, schema: dict[str, Any], records: list[dict[str, Any]]) -> DeliveryFeed:
    """A feed over deliveries of `records` (views under `schema`, registered as `name`)
    to `SUBSCRIPTION`, in one partition, the i-th with `envelope(i)`."""
    registry = SchemaRegistry(InMemoryRegistryStore())
    schema_id = registry.register(name, schema).schema_id
    codec = WireCodec(registry)
    log = MemoryEventLog()
    topic = delivery_topic(SUBSCRIPTION)
    log.ensure_topic(TopicSpec(topic, partitions=1))
    log.append(topic, [NewRecord(value=codec.encode(schema_id, r), key=str(i).encode(),
                                 headers=envelope(i).headers())
                       for i, r in enumerate(records)])
    return DeliveryFeed(log, codec, registry)


def floatless_feed(count: int) -> DeliveryFeed:
    """A feed over `count` deliveries of the floatless view, the i-th `floatless_record(i)`."""
    return feed_of("floatless-view", FLOATLESS, [floatless_record(i) for i in range(count)])


def test_a_delivery_carries_its_view_as_the_standard_text() -> None:
    steps = floatless_feed(40).read_steps(SUBSCRIPTION, Cursor.start(1), 100)
    assert len(steps) == 40
    for _, delivery in steps:
        assert delivery.data_json == reference(delivery.data)
        assert json.loads(delivery.data_json) == delivery.data


COMPILED_FIELDS = {"event_id", "occurred_at", "seen_micros", "born", "maybe_ts",
                   "maybe_date", "count", "big", "flag", "maybe_flag", "sex", "maybe_enum"}
COMPILED = {**VIEW, "name": "Compiled",
            "fields": [f for f in VIEW["fields"] if f["name"] in COMPILED_FIELDS]}


def test_a_view_read_straight_to_text_carries_the_same_text_and_values() -> None:
    """A view of the shapes the compiled JSON reader takes is read from its Avro bytes
    to its text with no record in between; subscribers get the same text, and webhooks
    and sinks the same values, as from decoding it."""
    records = [{k: v for k, v in view_record(i).items() if k in COMPILED_FIELDS}
               for i in range(40)]
    feed = feed_of("compiled-view", COMPILED, records)
    steps = feed.read_steps(SUBSCRIPTION, Cursor.start(1), 100)
    assert len(steps) == 40
    for (_, delivery), record in zip(steps, records, strict=True):
        expected = record_to_json(COMPILED, record)
        assert delivery.decoded is None   # read straight to text
        assert delivery.data_json == reference(expected)
        assert delivery.data == expected
