"""Events as Avro in the Confluent wire format, with the schema from the broker's
registry: byte 0, the 4-byte id of the version, the Avro body. The JSON form of an event
is converted as the broker converts it (`schemas.jsonform`), so both formats take the
same input."""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass

import fastavro

from handoff.client.results import Json
from schemas.jsonform import record_from_json


@dataclass(frozen=True)
class WriterSchema:
    """A registered version of an event type, ready to write with."""

    schema_id: int
    schema: dict[str, Json]
    parsed: dict[str, Json]

    @classmethod
    def from_registry(cls, body: Json) -> WriterSchema:
        if not isinstance(body, Mapping):
            raise ValueError("the registry's answer is not a JSON object")
        schema = json.loads(str(body["schema"]))
        if not isinstance(schema, dict):
            raise ValueError("an event schema is an Avro record")
        parsed = fastavro.parse_schema(schema)
        assert isinstance(parsed, dict)    # a record schema parses to a dict
        return cls(int(str(body["id"])), schema, parsed)

    def encode(self, event: Mapping[str, Json]) -> bytes:
        """The event in the wire format. Raises `schemas.errors.RecordValidationError`
        naming each invalid field, before anything is sent."""
        record = record_from_json(self.schema, dict(event))
        out = io.BytesIO()
        out.write(struct.pack(">bI", 0, self.schema_id))
        fastavro.schemaless_writer(out, self.parsed, record)
        return out.getvalue()
