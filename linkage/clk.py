"""Matching privacy-preserving encodings (CLKs) on the broker, with anonlink.

Agencies that may not send identifiers send a CLK per record (see
`connectors.linkage_encoding`): a 1024-bit Bloom filter keyed by a secret the broker
never holds. `ClkIndex` keeps the encodings it was given and finds, for a new one, the
stored encodings whose Sørensen-Dice similarity reaches a threshold. Blocking is
locality-sensitive hashing on bits: each of `bands` bands samples `bits_per_band` bit
positions (public, from `seed`), and only encodings agreeing on every sampled bit of at
least one band are compared. Similar encodings (dice 0.85 and up) share a band with
probability above 0.99 with the defaults; unrelated ones rarely do.

Evidence for a CLK match is the Dice similarity, never bits.
"""

from __future__ import annotations

import base64
import binascii
import random
from collections import defaultdict
from dataclasses import dataclass

from anonlink.similarities import dice_coefficient_accelerated
from bitarray import bitarray

from linkage.errors import LinkageError

CLK_BITS = 1024


class ClkError(LinkageError, ValueError):
    """An encoding is not a base64 CLK of the agreed length."""


@dataclass(frozen=True, slots=True)
class ClkMatch:
    record_key: str
    dice: float


@dataclass(frozen=True, slots=True)
class ClkThresholds:
    """Dice similarity at and above which encodings link, or go to review."""

    link: float = 0.9
    review: float = 0.85

    def __post_init__(self) -> None:
        if not 0.0 < self.review <= self.link <= 1.0:
            raise ClkError("CLK thresholds need 0 < review <= link <= 1")


def decode_clk(text: str, bits: int = CLK_BITS) -> bitarray:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ClkError("a CLK must be base64 text") from exc
    if len(raw) * 8 != bits:
        raise ClkError(f"a CLK must be {bits} bits; this one has {len(raw) * 8}")
    clk = bitarray()
    clk.frombytes(raw)
    return clk


class ClkIndex:
    """Encodings of one agreement (one schema and secret), with bit-sampling blocking."""

    def __init__(self, bands: int = 16, bits_per_band: int = 18, seed: int = 20261,
                 bits: int = CLK_BITS) -> None:
        rng = random.Random(seed)
        self.bits = bits
        self._bands = tuple(tuple(sorted(rng.sample(range(bits), bits_per_band)))
                            for _ in range(bands))
        self._buckets: list[dict[int, set[str]]] = [defaultdict(set) for _ in range(bands)]
        self._clks: dict[str, bitarray] = {}

    def __len__(self) -> int:
        return len(self._clks)

    def _band_keys(self, clk: bitarray) -> list[int]:
        keys = []
        for positions in self._bands:
            key = 0
            for p in positions:
                key = (key << 1) | clk[p]
            keys.append(key)
        return keys

    def add(self, record_key: str, clk_text: str) -> None:
        """Store (or replace) the encoding of one record."""
        clk = decode_clk(clk_text, self.bits)
        self.remove(record_key)
        self._clks[record_key] = clk
        for bucket, key in zip(self._buckets, self._band_keys(clk), strict=True):
            bucket[key].add(record_key)

    def remove(self, record_key: str) -> None:
        old = self._clks.pop(record_key, None)
        if old is not None:
            for bucket, key in zip(self._buckets, self._band_keys(old), strict=True):
                bucket[key].discard(record_key)

    def candidates(self, clk: bitarray) -> list[str]:
        found: set[str] = set()
        for bucket, key in zip(self._buckets, self._band_keys(clk), strict=True):
            found.update(bucket.get(key, ()))
        return sorted(found)

    def match(self, clk_text: str, threshold: float, limit: int = 5) -> tuple[ClkMatch, ...]:
        """Stored encodings with Dice similarity >= threshold, most similar first."""
        clk = decode_clk(clk_text, self.bits)
        keys = self.candidates(clk)
        if not keys:
            return ()
        sims, (_, right) = dice_coefficient_accelerated(
            [[clk], [self._clks[k] for k in keys]], threshold, limit)
        return tuple(ClkMatch(keys[j], float(s)) for s, j in zip(sims, right, strict=True))
