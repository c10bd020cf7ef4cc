"""Confluent wire format: magic byte 0, a 4-byte big-endian schema id, the Avro body.

Events are stored and delivered in this format so standard Kafka tooling can read them.
`WireCodec` looks schemas up in the registry by id; `encode_wire` and `decode_wire_body`
are the per-event fast path for callers that already hold a parsed schema.

Decoding is the boundary where hostile bytes meet the broker, so it promises three things:
every failure raises `DecodeError` and nothing else; the size is capped before anything is
read; and memory stays bounded. fastavro reads declared lengths through `BytesIO.read`,
which never allocates more than the bytes present, and every array item of a schema we
accept takes at least one byte, so item counts are bounded by the payload's length.
Schemas that could break that (recursive types, which fastavro's C reader follows until
the stack overflows, and arrays of zero-byte items) are refused by
`schemas.decoding_safety.decoding_hazards`. `WireCodec.decode` first tries a reader
compiled for the schema (`schemas.compiled_reader`), which takes only bodies in canonical
form and slices only within the payload; every other body goes to fastavro as above.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from fastavro import schemaless_reader, schemaless_writer

from schemas.compiled_reader import NOT_CANONICAL, compiled_reader
from schemas.compiled_writer import Unfit, compiled_writer
from schemas.decoding_safety import decoding_hazards
from schemas.errors import DecodeError, RecordValidationError, UnknownSchemaError
from schemas.jsonform import json_form

MAGIC_BYTE = 0
HEADER = struct.Struct(">BI")
HEADER_SIZE = HEADER.size
DEFAULT_MAX_BYTES = 1_048_576
MAX_SCHEMA_ID = 2**31 - 1  # Confluent ids are Java ints

# What a decoding failure means, by the exception fastavro raised. The exceptions' own
# messages are not used: some quote payload bytes.
_FAILURES: tuple[tuple[type[BaseException], str], ...] = (
    (EOFError, "payload is truncated or declares a length past its end"),
    (UnicodeDecodeError, "a string is not valid UTF-8"),
    (IndexError, "an enum or union index is out of range, or a number is malformed"),
    (OverflowError, "a number, date or time is out of range"),
    (MemoryError, "payload declares more data than can be held"),
)


def encode_wire(parsed_schema: Any, schema_id: int, record: Mapping[str, Any]) -> bytes:
    """Encode one record in the wire format with a schema already parsed by fastavro.

    Raises `RecordValidationError` naming the offending field paths when the record does
    not fit the schema. Values fastavro accepts loosely (an int out of 32-bit range, say)
    are not checked here; `WireCodec.encode(..., validate=True)` checks strictly.
    """
    buffer = io.BytesIO()
    buffer.write(HEADER.pack(MAGIC_BYTE, schema_id))
    try:
        schemaless_writer(buffer, parsed_schema, record)
    except (ValueError, TypeError, KeyError, AttributeError, ArithmeticError, IndexError) as exc:
        problems = json_form(parsed_schema).problems(record)
        raise RecordValidationError(
            problems or [("", f"record could not be encoded ({type(exc).__name__})")]
        ) from None  # fastavro's message quotes the value, which may be personal data
    return buffer.getvalue()


def read_header(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> int:
    """Check a payload's size and header and return its schema id. Raises `DecodeError`."""
    try:
        size = len(data)
    except TypeError:
        raise DecodeError("payload is not bytes") from None
    if size > max_bytes:
        raise DecodeError(f"payload is {size} bytes, over the {max_bytes}-byte limit")
    if size < HEADER_SIZE:
        raise DecodeError("payload is shorter than the 5-byte wire-format header")
    try:
        magic, schema_id = HEADER.unpack_from(data)
    except (struct.error, TypeError):
        raise DecodeError("payload is not bytes") from None
    if magic != MAGIC_BYTE:
        raise DecodeError("payload does not start with the wire-format magic byte 0")
    return int(schema_id)


def decode_wire_body(data: bytes, writer_schema: Any, reader_schema: Any = None) -> Any:
    """Decode the Avro body after the 5-byte header, with schemas parsed by fastavro.

    The header must already have been checked (`read_header`) and the schemas vetted
    (`decoding_hazards`). `reader_schema`, when given, resolves the record into that
    schema. The whole body must be consumed. Raises `DecodeError` only.
    """
    stream = io.BytesIO(data)  # shares the bytes object's buffer: no copy
    stream.seek(HEADER_SIZE)
    try:
        record = schemaless_reader(stream, writer_schema, reader_schema)
    # The decode boundary: fastavro signals malformed input with many exception types
    # (EOFError, IndexError, UnicodeDecodeError, OverflowError, SchemaResolutionError,
    # ...), and the contract is that hostile bytes only ever raise DecodeError.
    except Exception as exc:  # noqa: BLE001
        reason = next(
            (text for kind, text in _FAILURES if isinstance(exc, kind)),
            f"body is not valid Avro for this schema ({type(exc).__name__})",
        )
        # Not chained: fastavro's messages can quote payload bytes.
        raise DecodeError(reason) from None
    if stream.tell() != len(data):
        raise DecodeError("payload has trailing bytes after the record")
    return record


def body_reader(writer_schema: Any) -> Callable[[bytes], Any]:
    """`decode_wire_body(data, writer_schema)` as a function of the payload alone, the
    same records and the same errors: through a reader compiled for the schema where it
    takes the body (`schemas.compiled_reader`), by fastavro for every other body."""
    compiled = compiled_reader(writer_schema, HEADER_SIZE)
    if compiled is None:
        return lambda data: decode_wire_body(data, writer_schema)

    def read(data: bytes) -> Any:
        try:
            return compiled(data)
        except NOT_CANONICAL:
            # Not in canonical form: fastavro reads it or says why not.
            return decode_wire_body(data, writer_schema)

    return read


class ParsedSchemas(Protocol):
    """Where the codec finds a schema by its id (the `SchemaRegistry` is one)."""

    def parsed(self, schema_id: int) -> Any:
        """The schema with this id, parsed by fastavro; `UnknownSchemaError` if none."""
        ...


class WireCodec:
    """Encode and decode wire-format events with schemas from a `SchemaRegistry`.

    Parsed schemas are cached per id, so a call costs a dict lookup plus fastavro's work.
    """

    def __init__(self, registry: ParsedSchemas, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._registry = registry
        self.max_bytes = max_bytes
        self._schemas: dict[int, Any] = {}
        self._encoders: dict[int, Callable[[Mapping[str, Any]], bytes]] = {}
        self._decoders: dict[int, Callable[[bytes], Any]] = {}

    def _schema(self, schema_id: int) -> Any:
        """The parsed schema for an id, vetted for decoding. Raises `UnknownSchemaError`."""
        schema = self._schemas.get(schema_id)
        if schema is None:
            schema = self._registry.parsed(schema_id)
            hazards = decoding_hazards(schema)
            if hazards:
                raise UnknownSchemaError(
                    f"schema {schema_id} cannot be decoded safely: " + "; ".join(hazards)
                )
            self._schemas[schema_id] = schema
        return schema

    def encode(self, schema_id: int, record: Mapping[str, Any], *, validate: bool = False) -> bytes:
        """Encode a record with a registered schema.

        With `validate=True` the record is first checked strictly (integer ranges, enum
        symbols, every field), as `record_from_json` checks; records that came from
        `record_from_json` need no second check. Raises `RecordValidationError`, or
        `UnknownSchemaError` for an unknown id.
        """
        if not 0 <= schema_id <= MAX_SCHEMA_ID:
            raise UnknownSchemaError(f"schema id {schema_id} is out of range")
        schema = self._schema(schema_id)
        if validate:
            problems = json_form(schema).problems(record)
            if problems:
                raise RecordValidationError(problems)
        return encode_wire(schema, schema_id, record)

    def encoder(self, schema_id: int) -> Callable[[Mapping[str, Any]], bytes]:
        """`encode(schema_id, record)` as one function for the many records of one
        schema, writing the same bytes: compiled for the schema where
        `schemas.compiled_writer` can, and through fastavro for a schema, or a record,
        it leaves to fastavro (which raises as `encode` does). Kept per schema id."""
        found = self._encoders.get(schema_id)
        if found is not None:
            return found
        if not 0 <= schema_id <= MAX_SCHEMA_ID:
            raise UnknownSchemaError(f"schema id {schema_id} is out of range")
        schema = self._schema(schema_id)
        header = HEADER.pack(MAGIC_BYTE, schema_id)
        body = compiled_writer(schema)

        def encode(record: Mapping[str, Any]) -> bytes:
            if body is not None:
                try:
                    return header + body(record)
                except (Unfit, KeyError, TypeError, ValueError):
                    pass    # a value fastavro may take otherwise, or refuse as it does
            return encode_wire(schema, schema_id, record)

        self._encoders[schema_id] = encode
        return encode

    def decode(
        self,
        data: bytes,
        expected_schema_id: int | None = None,
        reader_schema_id: int | None = None,
    ) -> tuple[int, Any]:
        """Decode a wire-format payload into (schema id, record).

        `expected_schema_id` refuses payloads written with any other schema;
        `reader_schema_id` resolves the record into that (compatible) schema. Raises
        `DecodeError` for every failure, including an unknown schema id.
        """
        schema_id = read_header(data, self.max_bytes)
        if expected_schema_id is not None and schema_id != expected_schema_id:
            raise DecodeError(
                f"payload was written with schema {schema_id}, expected {expected_schema_id}"
            )
        writer = self._decoding_schema(schema_id)
        reader = None
        if reader_schema_id is not None and reader_schema_id != schema_id:
            reader = self._decoding_schema(reader_schema_id)
        else:
            read = self._decoders.get(schema_id)
            if read is None:
                read = self._decoders[schema_id] = body_reader(writer)
            return schema_id, read(data)
        return schema_id, decode_wire_body(data, writer, reader)

    def _decoding_schema(self, schema_id: int) -> Any:
        schema = self._schemas.get(schema_id)
        if schema is not None:
            return schema
        try:
            return self._schema(schema_id)
        except UnknownSchemaError as exc:
            raise DecodeError(str(exc)) from exc
