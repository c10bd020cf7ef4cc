"""Birth match: a new birth's parents checked against child welfare's restricted list.

Child welfare keeps a list of parents with a prior termination of parental rights or an
open case, as identities or as CLKs (when it may not share identifiers). For each birth,
`WatchList.match_birth` returns the entries a parent matches at or above the link
threshold, each with its evidence; a birth that matches nothing returns nothing, so the
caller has nothing to send (and must send nothing).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from linkage.blocking import blocking_keys
from linkage.clk import ClkIndex, ClkThresholds
from linkage.errors import LinkageError
from linkage.identity import IdentityRecord, NormalisedIdentity, normalise
from linkage.scoring import CompiledModel, FieldEvidence

ParentRole = Literal["mother", "father"]
WatchReason = Literal["prior_tpr", "open_case"]


@dataclass(frozen=True, slots=True)
class WatchEntry:
    entry_id: str
    """Child welfare's own reference for the entry (opaque to the broker)."""
    reason: WatchReason


@dataclass(frozen=True, slots=True)
class BirthParent:
    """A parent named on a birth record: identifying fields, or a CLK, or both."""

    role: ParentRole
    identity: IdentityRecord | None = None
    clk: str | None = None


@dataclass(frozen=True, slots=True)
class BirthMatch:
    role: ParentRole
    entry: WatchEntry
    method: Literal["identity", "clk"]
    score: float
    """Match weight (identity) or Dice similarity (clk)."""
    evidence: tuple[FieldEvidence, ...]


class WatchList:
    """Child welfare's restricted list, held apart from the person index."""

    def __init__(self, model: CompiledModel, link_weight: float,
                 clk_thresholds: ClkThresholds | None = None,
                 clk_index: ClkIndex | None = None) -> None:
        self._model = model
        self._link_weight = link_weight
        self._clk_link = (clk_thresholds or ClkThresholds()).link
        self._entries: dict[str, WatchEntry] = {}
        self._identities: dict[str, NormalisedIdentity] = {}
        self._blocks: dict[str, set[str]] = defaultdict(set)
        self._clks = clk_index or ClkIndex()

    def __len__(self) -> int:
        return len(self._entries)

    def add_identity(self, entry: WatchEntry, record: IdentityRecord) -> None:
        self.remove(entry.entry_id)
        identity = normalise(record)
        self._entries[entry.entry_id] = entry
        self._identities[entry.entry_id] = identity
        for key in blocking_keys(identity):
            self._blocks[key].add(entry.entry_id)

    def add_clk(self, entry: WatchEntry, clk: str) -> None:
        self.remove(entry.entry_id)
        self._clks.add(entry.entry_id, clk)
        self._entries[entry.entry_id] = entry

    def remove(self, entry_id: str) -> None:
        if self._entries.pop(entry_id, None) is None:
            return
        identity = self._identities.pop(entry_id, None)
        if identity is not None:
            for key in blocking_keys(identity):
                self._blocks[key].discard(entry_id)
        self._clks.remove(entry_id)

    def match_birth(self, parents: Sequence[BirthParent]) -> tuple[BirthMatch, ...]:
        """Entries the birth's parents match; empty when none does."""
        matches: list[BirthMatch] = []
        for parent in parents:
            if parent.identity is None and parent.clk is None:
                raise LinkageError(f"the {parent.role} has neither identity nor CLK")
            found: dict[str, BirthMatch] = {}
            if parent.identity is not None:
                identity = normalise(parent.identity)
                entry_ids = {e for key in blocking_keys(identity)
                             for e in self._blocks.get(key, ())}
                for entry_id in sorted(entry_ids):
                    score = self._model.score(identity, self._identities[entry_id])
                    if score.match_weight >= self._link_weight:
                        found[entry_id] = BirthMatch(
                            parent.role, self._entries[entry_id], "identity",
                            score.match_weight, score.evidence)
            if parent.clk is not None:
                for match in self._clks.match(parent.clk, self._clk_link):
                    if match.record_key not in found:
                        found[match.record_key] = BirthMatch(
                            parent.role, self._entries[match.record_key], "clk", match.dice,
                            (FieldEvidence("clk", "dice similarity", match.dice),))
            matches.extend(sorted(found.values(), key=lambda m: -m.score))
        return tuple(matches)
