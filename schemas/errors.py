"""Error types shared by every Handoff package.

`HandoffError` is the root of every error Handoff raises on purpose. Each package adds
subclasses; `retriable` tells a caller whether trying again later can succeed.
"""

from __future__ import annotations


class HandoffError(Exception):
    """Root of every error Handoff raises deliberately."""

    retriable: bool = False


class SchemaError(HandoffError, ValueError):
    """An event schema is invalid, unknown, or breaks the registry's rules."""


class UnknownSchemaError(SchemaError, LookupError):
    """No schema is registered under that subject, version or id."""


class IncompatibleSchemaError(SchemaError):
    """A new schema version breaks the subject's compatibility level."""


class DecodeError(HandoffError, ValueError):
    """Bytes could not be decoded as a Handoff event.

    The only error raised for malformed, truncated, oversized or hostile payloads; the
    message names the problem, never the payload's content.
    """


class RecordValidationError(SchemaError):
    """A record does not match its Avro schema. `problems` lists (field path, message)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{path or '<record>'}: {msg}" for path, msg in problems))


class UnknownSubjectError(UnknownSchemaError):
    """No subject of that name (or every version of it was deleted)."""


class UnknownVersionError(UnknownSchemaError):
    """The subject has no such version."""


class UnknownSchemaIdError(UnknownSchemaError):
    """No schema has that id, or the subject holds no version with that schema."""
