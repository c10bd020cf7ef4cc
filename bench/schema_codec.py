"""Per-event cost of the wire codec and the JSON form, against plain fastavro.

For every built-in event schema, times encoding and decoding its example in the wire
format (module functions and `WireCodec`), the JSON conversions in both directions, and
a hand-written fastavro loop doing the same encode or decode, then prints microseconds
per call and the ratio to the hand-written loop. Best of several rounds, to damp noise
from other processes on the machine.

    python bench/schema_codec.py [--calls N] [--rounds R]
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections.abc import Callable
from typing import Any

import fastavro

from schemas.catalog import EventSchema, SchemaCatalog
from schemas.jsonform import json_form, record_from_json, record_to_json
from schemas.registry import SchemaRegistry
from schemas.store import InMemoryRegistryStore
from schemas.wire import WireCodec, decode_wire_body, encode_wire


def best_micros(call: Callable[[], Any], calls: int, rounds: int) -> float:
    """Fastest round's time per call, in microseconds."""
    call()
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter() - started) / calls)
    return best * 1e6


def measure_event(
    event_type: str, event: EventSchema, registry: SchemaRegistry, calls: int, rounds: int
) -> None:
    """Print one row per operation for one event type."""
    codec = WireCodec(registry)
    schema_id = registry.register(f"events.{event_type}-value", event.schema).schema_id
    parsed = registry.parsed(schema_id)
    schema_json = registry.by_id(schema_id).as_json()
    record = record_from_json(schema_json, event.example)
    data = codec.encode(schema_id, record)
    example = json.loads(json.dumps(event.example))
    form = json_form(schema_json)
    encoder = codec.encoder(schema_id)

    def plain_encode() -> bytes:
        buffer = io.BytesIO()
        buffer.write(data[:5])
        fastavro.schemaless_writer(buffer, parsed, record)
        return buffer.getvalue()

    def plain_decode() -> Any:
        stream = io.BytesIO(data)
        stream.seek(5)
        return fastavro.schemaless_reader(stream, parsed)

    encode_base = best_micros(plain_encode, calls, rounds)
    decode_base = best_micros(plain_decode, calls, rounds)
    rows: list[tuple[str, Callable[[], Any], float | None]] = [
        ("fastavro encode (hand-written)", plain_encode, None),
        ("encode_wire", lambda: encode_wire(parsed, schema_id, record), encode_base),
        ("WireCodec.encode", lambda: codec.encode(schema_id, record), encode_base),
        ("WireCodec.encoder (compiled)", lambda: encoder(record), encode_base),
        (
            "WireCodec.encode(validate=True)",
            lambda: codec.encode(schema_id, record, validate=True),
            encode_base,
        ),
        ("fastavro decode (hand-written)", plain_decode, None),
        ("decode_wire_body", lambda: decode_wire_body(data, parsed), decode_base),
        ("WireCodec.decode", lambda: codec.decode(data), decode_base),
        ("record_to_json", lambda: record_to_json(schema_json, record), None),
        ("JsonForm.to_json", lambda: form.to_json(record), None),
        ("record_from_json", lambda: record_from_json(schema_json, example), None),
    ]
    for label, call, base in rows:
        micros = best_micros(call, calls, rounds)
        ratio = f"{micros / base:.2f}" if base else "-"
        print(f"{event_type:<11}{label:<34}{micros:>9.2f}{ratio:>12}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    catalog = SchemaCatalog.load()
    registry = SchemaRegistry(InMemoryRegistryStore())
    # Warm the interpreter and CPU before the first figure that matters.
    best_micros(lambda: sum(range(200)), args.calls, args.rounds)
    print(f"{'event':<11}{'operation':<34}{'us/call':>9}{'x fastavro':>12}")
    for event_type in catalog.event_types():
        measure_event(event_type, catalog.get(event_type), registry, args.calls, args.rounds)


if __name__ == "__main__":
    main()
