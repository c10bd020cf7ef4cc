"""The JSON converter of an Avro union, shared by the validating JSON form and the
delivery path's in-place conversion: a value read by fastavro takes the first non-null
branch whose Python type it has."""

from __future__ import annotations

from typing import Any

from schemas.jsonvalues import ToJson, python_type_test


def union_to_json(options: list[tuple[Any, ToJson | None]]) -> ToJson | None:
    """The converter of a union from (branch schema, its converter or None) per non-null
    branch, in order; None when no branch needs converting."""
    if all(converter is None for _, converter in options):
        return None
    if len(options) == 1:
        single = options[0][1]
        assert single is not None
        return lambda v: None if v is None else single(v)
    tests = [(python_type_test(branch), converter) for branch, converter in options]

    def convert(value: Any) -> Any:
        for test, converter in tests:
            if test(value):
                return value if converter is None else converter(value)
        return value

    return convert
