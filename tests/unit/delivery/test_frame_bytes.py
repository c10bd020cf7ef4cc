"""What subscribers receive is pinned to the byte: the SSE text, the pull body and the
webhook body of a delivery, for views with every Avro type a view can carry, equal what
the straightforward path gives (the reference below: decode with fastavro, convert with
`record_to_json`, build the envelope dict, `json.dumps`)."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import uuid
from decimal import Decimal
from typing import Any

import pytest

import broker.delivery.feed as feed_module
from broker.delivery.cursor import Cursor
from broker.delivery.envelope import DeliveryEnvelope, delivery_headers
from broker.delivery.feed import DeliveryFeed, iso_ms
from broker.delivery.frames import json_page, render
from broker.delivery.webhooks import _body
from broker.log.port import NewRecord, TopicSpec
from broker.topics import delivery_topic
from schemas.jsonform import record_to_json
from schemas.registry import SchemaRegistry
from schemas.store import InMemoryRegistryStore
from schemas.wire import WireCodec
from tests.unit.broker.fakes import MemoryEventLog

SUBSCRIPTION = "every-type"
UTC = dt.UTC

ADDRESS = {"type": "record", "name": "Address", "fields": [
    {"name": "street", "type": ["null", "string"], "default": None},
    {"name": "moved_in", "type": ["null", {"type": "int", "logicalType": "date"}]},
]}
VIEW = {"type": "record", "name": "EveryType", "namespace": "test.views", "fields": [
    {"name": "event_id", "type": "string"},
    {"name": "occurred_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "seen_micros", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "local_millis", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
    {"name": "local_micros", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
    {"name": "born", "type": {"type": "int", "logicalType": "date"}},
    {"name": "at_millis", "type": {"type": "int", "logicalType": "time-millis"}},
    {"name": "at_micros", "type": {"type": "long", "logicalType": "time-micros"}},
    {"name": "maybe_ts", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}]},
    {"name": "maybe_date", "type": ["null", {"type": "int", "logicalType": "date"}]},
    {"name": "ref", "type": {"type": "string", "logicalType": "uuid"}},
    {"name": "count", "type": "int"},
    {"name": "big", "type": "long"},
    {"name": "ratio", "type": "float"},
    {"name": "score", "type": "double"},
    {"name": "flag", "type": "boolean"},
    {"name": "maybe_flag", "type": ["null", "boolean"]},
    {"name": "sex", "type": {"type": "enum", "name": "Sex", "symbols": ["FEMALE", "MALE"]}},
    {"name": "maybe_enum", "type": ["null", {"type": "enum", "name": "Level",
                                             "symbols": ["LOW", "HIGH"]}]},
    {"name": "blob", "type": "bytes"},
    {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 4}},
    {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9,
                                "scale": 2}},
    {"name": "fixed_amount", "type": {"type": "fixed", "name": "Money", "size": 8,
                                      "logicalType": "decimal", "precision": 12,
                                      "scale": 3}},
    {"name": "home", "type": ADDRESS},
    {"name": "previous", "type": {"type": "array", "items": "Address"}},
    {"name": "maybe_home", "type": ["null", "Address"], "default": None},
    {"name": "visits", "type": {"type": "array", "items": {"type": "int",
                                                          "logicalType": "date"}}},
    {"name": "names", "type": {"type": "array", "items": "string"}},
    {"name": "codes", "type": {"type": "map", "values": "string"}},
    {"name": "stamps", "type": {"type": "map", "values": {"type": "long",
                                                         "logicalType": "timestamp-millis"}}},
    {"name": "either", "type": ["null", "string", "long",
                                {"type": "int", "logicalType": "date"}]},
    {"name": "note", "type": ["null", "string"], "default": None},
]}

TEXTS = ["Zoë Ångström", "quote \" back \\ slash", "line\nbreak\ttab\x01", "</script>",
         "emoji 👶🏽", "", "plain"]
STAMPS_MS = [0, -1, -500, 1, 999, 1_796_344_486_802, 253_402_300_799_999, -62_135_596_800_000,
             1_700_000_000_123, 951_782_400_000]


def view_record(i: int) -> dict[str, Any]:
    ms = STAMPS_MS[i % len(STAMPS_MS)]
    when = dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(milliseconds=ms)
    text = TEXTS[i % len(TEXTS)]
    return {
        "event_id": str(uuid.UUID(int=i)),
        "occurred_at": when,
        "seen_micros": when + dt.timedelta(microseconds=i * 7 % 1000),
        "local_millis": when.replace(tzinfo=None),
        "local_micros": when.replace(tzinfo=None) + dt.timedelta(microseconds=i % 1000),
        "born": dt.date(1, 1, 1) + dt.timedelta(days=i * 997 % 3_000_000),
        "at_millis": dt.time(i % 24, i % 60, 59, (i * 1000) % 1_000_000),
        "at_micros": dt.time(23, 59, i % 60, i * 13 % 1_000_000),
        "maybe_ts": None if i % 2 else when,
        "maybe_date": None if i % 3 else dt.date(2024, 2, 29),
        "ref": uuid.UUID(int=i * 7919),
        "count": [0, -1, 2**31 - 1, -(2**31), 42][i % 5],
        "big": [2**63 - 1, -(2**63), 0, 10**15][i % 4],
        "ratio": [0.1, -0.0, 1.5e30, float("inf"), math.nan][i % 5],
        "score": [0.1, 1e300, -1e-300, 2.0, float("-inf"), math.nan, 123456789.125][i % 7],
        "flag": bool(i % 2),
        "maybe_flag": [None, True, False][i % 3],
        "sex": ["FEMALE", "MALE"][i % 2],
        "maybe_enum": [None, "LOW", "HIGH"][i % 3],
        "blob": bytes(range(i % 7)) + text.encode(),
        "digest": bytes([i % 256, 0, 255, 10]),
        "amount": Decimal(i * 12345 - 50000).scaleb(-2),
        "fixed_amount": Decimal(-i * 1001).scaleb(-3),
        "home": {"street": text if i % 2 else None, "moved_in": None if i % 2 else dt.date(
            2020, 1, 1 + i % 28)},
        "previous": [{"street": t, "moved_in": dt.date(1999, 12, 31)} for t in TEXTS[: i % 3]],
        "maybe_home": None if i % 2 else {"street": "1 Elm", "moved_in": None},
        "visits": [dt.date(2025, 1, 1) + dt.timedelta(days=d) for d in range(i % 4)],
        "names": TEXTS[: i % 4],
        "codes": {t: t for t in TEXTS[: i % 3]},
        "stamps": {"a": when, "ü": when} if i % 2 else {},
        "either": [None, text, 2**40, dt.date(2023, 6, 30)][i % 4],
        "note": None if i % 5 == 0 else text,
    }


def envelope(i: int) -> DeliveryEnvelope:
    withheld = [(), ("child.ssn", "mother.birth_date"), ("x",)][i % 3]
    obligations = [(), ({"type": "retain_no_longer_than", "days": 30},),
                   ({"type": "notify", "to": "Zoë", "nested": {"k": [1, 2.5, None, True]}},
                    {"type": "purpose", "purpose": "care"})][i % 3]
    ingested = STAMPS_MS[(i + 3) % len(STAMPS_MS)]
    return DeliveryEnvelope(
        event_id=str(uuid.UUID(int=i)), decision_id=f"{i:032x}",
        event_type=["birth", "every_type", "ré\"f"][i % 3],
        source=["county-general", "hôpital \\ 1", ""][i % 3],
        occurred_at_ms=STAMPS_MS[i % len(STAMPS_MS)],
        ingested_at_ms=ingested + i if abs(ingested) < 10**13 else ingested,
        withheld=withheld, obligations=obligations)


def reference_iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def reference_doc(codec: WireCodec, record: Any, cursor: str) -> dict[str, Any]:
    """The delivery's JSON document as the straightforward path builds it."""
    h = dict(record.headers)
    schema_id, view = codec.decode(record.value)
    return {
        "event_id": h["handoff.event_id"].decode(),
        "decision_id": h["handoff.decision_id"].decode(),
        "event_type": h["handoff.event_type"].decode(),
        "source": h["handoff.source"].decode(),
        "occurred_at": reference_iso(int(h["handoff.occurred_at"])),
        "ingested_at": reference_iso(int(h["handoff.ingested_at"])),
        "schema_id": schema_id,
        "data": record_to_json(VIEW, view),
        "withheld": list(json.loads(h["handoff.withheld"])),
        "obligations": list(json.loads(h["handoff.obligations"])),
        "cursor": cursor,
    }


def same_json(got: dict[str, Any], expected: dict[str, Any]) -> bool:
    """Equal as JSON text (NaN is not equal to itself as a value)."""
    return json.dumps(got, ensure_ascii=False) == json.dumps(expected, ensure_ascii=False)


@pytest.fixture()
def delivered() -> tuple[DeliveryFeed, WireCodec, MemoryEventLog, int]:
    return deliver_all()


def deliver_all() -> tuple[DeliveryFeed, WireCodec, MemoryEventLog, int]:
    registry = SchemaRegistry(InMemoryRegistryStore())
    schema_id = registry.register("every-type-view", VIEW).schema_id
    codec = WireCodec(registry)
    log = MemoryEventLog()
    topic = delivery_topic(SUBSCRIPTION)
    log.ensure_topic(TopicSpec(topic, partitions=3))
    for i in range(60):
        e = envelope(i)
        # The router writes the lists with json.dumps' default separators.
        headers = delivery_headers(
            e.event_id, e.decision_id, e.event_type, e.source, e.occurred_at_ms,
            e.ingested_at_ms, json.dumps(list(e.withheld)).encode(),
            json.dumps(list(e.obligations)).encode())
        log.append(topic, [NewRecord(value=codec.encode(schema_id, view_record(i)),
                                     key=str(i).encode(), headers=headers)])
    return DeliveryFeed(log, codec, registry), codec, log, 60


def test_frames_pulls_and_webhook_bodies_match_the_reference_byte_for_byte(
        delivered: tuple[DeliveryFeed, WireCodec, MemoryEventLog, int]) -> None:
    feed, codec, log, count = delivered
    cursor = Cursor.start(3)
    frames = render(cursor, feed.read_steps(SUBSCRIPTION, cursor, 1000))
    assert len(frames) == count
    records = {(r.partition, r.offset): r for r in log.records(delivery_topic(SUBSCRIPTION))}
    for f in frames:
        d = f.delivery
        record = next(r for (p, o), r in records.items()
                      if f.after.offsets[p] == o + 1 and f.before.offsets[p] == o)
        doc = reference_doc(codec, record, str(f.after))
        body = json.dumps(doc, separators=(",", ":"))
        assert f.body == body
        assert f.sse == f"id: {f.after}\nevent: {doc['event_type']}\ndata: {body}\n\n"
        assert same_json(d.to_json(), doc)
        assert _body(d)[0] == json.dumps(doc, separators=(",", ":"),
                                         ensure_ascii=False).encode()
    page = json.loads(json_page(frames, frames[-1].after))
    assert page["next"] == str(frames[-1].after)
    assert [e["cursor"] for e in page["events"]] == [str(f.after) for f in frames]


def test_a_decoded_delivery_equals_the_reference(
        delivered: tuple[DeliveryFeed, WireCodec, MemoryEventLog, int]) -> None:
    feed, codec, log, _ = delivered
    for record in log.records(delivery_topic(SUBSCRIPTION)):
        assert same_json(feed.decode(record, "c").to_json(), reference_doc(codec, record, "c"))



# Event 7 of the fixture as the straightforward path rendered it, before delivery
# rendered frames any other way.
GOLDEN_SSE = (
    'id: 3.2.3\nevent: every_type\ndata: {"event_id":"00000000-0000-0000-0000-000000000'
    '007","decision_id":"00000000000000000000000000000007","event_type":"every_type",'
    '"source":"h\\u00f4pital \\\\ 1","occurred_at":"0001-01-01T00:00:00.000Z",'
    '"ingested_at":"1970-01-01T00:00:00.007Z","schema_id":650388967,'
    '"data":{"event_id":"00000000-0000-0000-0000-000000000007",'
    '"occurred_at":"0001-01-01T00:00:00.000Z",'
    '"seen_micros":"0001-01-01T00:00:00.000049Z",'
    '"local_millis":"0001-01-01T00:00:00.000",'
    '"local_micros":"0001-01-01T00:00:00.000007","born":"0020-02-10",'
    '"at_millis":"07:07:59.007","at_micros":"23:59:07.000091","maybe_ts":null,'
    '"maybe_date":null,"ref":"00000000-0000-0000-0000-00000000d889",'
    '"count":2147483647,"big":1000000000000000,"ratio":1.4999999470133356e+30,'
    '"score":0.1,"flag":true,"maybe_flag":true,"sex":"MALE","maybe_enum":"LOW",'
    '"blob":"Wm/DqyDDhW5nc3Ryw7Zt","digest":"BwD/Cg==","amount":"364.15",'
    '"fixed_amount":"-7.007","home":{"street":"Zo\\u00eb \\u00c5ngstr\\u00f6m",'
    '"moved_in":null},"previous":[{"street":"Zo\\u00eb \\u00c5ngstr\\u00f6m",'
    '"moved_in":"1999-12-31"}],"maybe_home":null,"visits":["2025-01-01","2025-01-02",'
    '"2025-01-03"],"names":["Zo\\u00eb \\u00c5ngstr\\u00f6m","quote \\" back \\\\ slash",'
    '"line\\nbreak\\ttab\\u0001"],'
    '"codes":{"Zo\\u00eb \\u00c5ngstr\\u00f6m":"Zo\\u00eb \\u00c5ngstr\\u00f6m"},'
    '"stamps":{"a":"0001-01-01T00:00:00.000Z","\\u00fc":"0001-01-01T00:00:00.000Z"},'
    '"either":"2023-06-30","note":"Zo\\u00eb \\u00c5ngstr\\u00f6m"},'
    '"withheld":["child.ssn","mother.birth_date"],'
    '"obligations":[{"type":"retain_no_longer_than","days":30}],"cursor":"3.2.3"}\n\n'
)


def test_one_frame_is_pinned_to_the_text_subscribers_got_before(
        delivered: tuple[DeliveryFeed, WireCodec, MemoryEventLog, int]) -> None:
    feed, _, _, _ = delivered
    frames = render(Cursor.start(3), feed.read_steps(SUBSCRIPTION, Cursor.start(3), 1000))
    seventh = next(f for f in frames if f.delivery.envelope.event_id.endswith("-000000000007"))
    assert seventh.sse == GOLDEN_SSE


def test_envelope_times_are_the_text_the_datetime_path_gives() -> None:
    """`iso_ms` takes a second's text from its cache within the range where the float
    path is exact, and falls back to that path outside it."""
    rng = random.Random(16)
    edge = feed_module._EXACT_MS
    samples = [rng.randrange(-edge, edge) for _ in range(20_000)] + [
        rng.randrange(-5_000_000_000, 5_000_000_000) for _ in range(5_000)] + [
        -edge - 1, -edge, -edge + 1, edge - 1, edge, edge + 1, *STAMPS_MS]
    assert [iso_ms(ms) for ms in samples] == [reference_iso(ms) for ms in samples]
