"""Dates held as strings: how a schema tags them, and the check every published value
passes.

State feeds often carry dates as ISO 8601 strings. A string field is a date when its type
says so, with the logical type `{"type": "string", "logicalType": "date"}` (not an Avro
logical type: Avro readers keep the plain string) or a `format` attribute
(`{"type": "string", "format": "date"}`), or when the field itself carries
`"format": "date"` (handy for a nullable `["null", "string"]`). Such a field accepts only
`YYYY-MM-DD` calendar dates, and policy can generalise it to the month or year like an
Avro `date`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from schemas.jsonvalues import DATE_STRING_EXPECTED, Problems, parse_iso_date

if TYPE_CHECKING:
    from schemas.catalog import EventSchema

DATE = "date"
DATE_STRING_TYPE: Mapping[str, str] = {"type": "string", "logicalType": DATE}


def is_date_string_type(avro_type: Any) -> bool:
    """A (non-union) string type tagged as a date."""
    return (isinstance(avro_type, Mapping) and avro_type.get("type") == "string"
            and (avro_type.get("logicalType") == DATE or avro_type.get("format") == DATE))


def field_is_date(spec: Mapping[str, Any]) -> bool:
    """Whether a record field's own attributes tag it as a date (`"format": "date"`)."""
    return spec.get("format") == DATE


def as_date_string(avro_type: Any) -> Any:
    """The field type with its string branches tagged as dates (for a field that carries
    `"format": "date"`)."""
    if avro_type == "string":
        return dict(DATE_STRING_TYPE)
    if isinstance(avro_type, list):
        return [as_date_string(branch) for branch in avro_type]
    if isinstance(avro_type, Mapping) and avro_type.get("type") == "string":
        return {**avro_type, "logicalType": DATE}
    return avro_type


def date_string_problems(schema: EventSchema, record: Mapping[str, Any]) -> Problems:
    """(path, message) for every date-tagged string field of `record` (as fastavro reads
    it) that does not hold an ISO 8601 date. The message never quotes the value."""
    problems: Problems = []
    for info in schema.fields:
        if info.base_type != "string" or info.logical_type != DATE:
            continue
        value: Any = record
        for part in info.parts:
            value = value.get(part) if isinstance(value, Mapping) else None
            if value is None:
                break
        if value is not None and not (isinstance(value, str) and parse_iso_date(value)):
            problems.append((info.path, DATE_STRING_EXPECTED))
    return problems
