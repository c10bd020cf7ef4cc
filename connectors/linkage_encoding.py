"""Privacy-preserving linkage encodings (CLKs) made on the agency's side.

An agency that may not send identifiers to the broker sends, instead, a cryptographic
long-term key (CLK): a 1024-bit Bloom filter of its record's identifying fields, made
with clkhash under a linkage schema and a secret that the agencies of one agreement share
and the broker never holds. The broker compares encodings (Sørensen-Dice similarity) and
learns how similar two encodings are, not the names behind them.

Both sides of an agreement must encode with the same schema, the same secret and the same
normalisation: this helper normalises exactly as the broker's linkage does (case,
diacritics, punctuation, nicknames to their formal form) before encoding.

    encoder = ClkEncoder.from_secret_file(Path("/run/secrets/cw-vr-linkage"))
    clk = encoder.encode(identity_record)   # base64 text, safe to publish in an event

clkhash pins an old `cryptography`; install it with `pip install --no-deps clkhash`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from clkhash.clk import hash_chunk
from clkhash.key_derivation import generate_key_lists
from clkhash.schema import Schema, from_json_dict

from connectors.errors import ConnectorError
from linkage.identity import IdentityRecord, normalise

DEFAULT_SCHEMA = "handoff-clk-v1.json"
MIN_SECRET_BYTES = 32


class EncodingError(ConnectorError, ValueError):
    """The linkage schema or secret is unusable; the message says what to fix."""


def load_schema(name: str = DEFAULT_SCHEMA, path: Path | None = None) -> Schema:
    """A clkhash (v3) linkage schema: the shipped one by name, or an agreement's own file."""
    try:
        text = (path.read_text("utf-8") if path is not None else
                resources.files("connectors").joinpath("linkage_schemas", name)
                .read_text("utf-8"))
        return from_json_dict(json.loads(text))
    except (OSError, ValueError) as exc:
        raise EncodingError(f"linkage schema {path or name} cannot be used: "
                            f"{exc.__class__.__name__}") from exc


def clk_fields(record: IdentityRecord) -> tuple[str, ...]:
    """The values the shipped schema encodes, normalised, in its feature order."""
    identity = normalise(record)
    return (identity.given_formal or "", identity.family or "", identity.dob or "",
            identity.sex or "", identity.zip or "")


@dataclass(frozen=True)
class ClkEncoder:
    """Makes CLKs for one agreement (one schema, one secret). Keys are derived once."""

    schema: Schema
    keys: tuple[tuple[bytes, ...], ...]

    @classmethod
    def create(cls, secret: bytes, schema: Schema | None = None) -> ClkEncoder:
        if len(secret) < MIN_SECRET_BYTES:
            raise EncodingError(f"the linkage secret must be at least {MIN_SECRET_BYTES} "
                                f"random bytes")
        schema = schema or load_schema()
        keys = generate_key_lists(
            secret, len(schema.fields), key_size=schema.kdf_key_size, salt=schema.kdf_salt,
            info=schema.kdf_info, kdf=schema.kdf_type, hash_algo=schema.kdf_hash)
        return cls(schema, tuple(tuple(k) for k in keys))

    @classmethod
    def from_secret_file(cls, path: Path, schema: Schema | None = None) -> ClkEncoder:
        try:
            secret = path.read_bytes().strip()
        except OSError as exc:
            raise EncodingError(f"linkage secret file {path} cannot be read: "
                                f"{exc.strerror}") from exc
        return cls.create(secret, schema)

    def encode_fields(self, rows: Sequence[Sequence[str]]) -> list[str]:
        """CLKs (base64) of already normalised rows in the schema's field order."""
        clks, _ = hash_chunk(rows, self.keys, self.schema, validate_data=True)
        return [base64.b64encode(clk.tobytes()).decode("ascii") for clk in clks]

    def encode(self, record: IdentityRecord) -> str:
        """The CLK of one identity record (base64 text)."""
        return self.encode_fields([clk_fields(record)])[0]
