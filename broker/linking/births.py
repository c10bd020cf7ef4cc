"""Birth match: births checked against child welfare's restricted list of parents.

The list is the `watch_list_entry` events the agency named in `birth_match.watch_list_from`
publishes (ADD / REMOVE, each entry as identifying fields or as a CLK under the birth
match CLK agreement). It is held in memory apart from the person index, so its entries
never link to anyone's records, and rebuilt from its topic at start; entries from any
other agency are ignored. No agreement or subscription may name the type (the bundle
check refuses it), so the entries reach no one.

For each birth from an agency in `births_from`, the mother (the subject that keys the
birth) is checked by identity and, when the birth carries one, by CLK. Each match
becomes a `birth_match` record for the router to decide and deliver under the
agreement; a birth that matches nothing produces nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from broker.log.port import EventLog
from broker.topics import H_INGEST_SOURCE, ingress_topic
from linkage.birth_match import BirthMatch, BirthParent, WatchEntry, WatchList
from linkage.clk import ClkError, ClkThresholds
from linkage.errors import LinkageError
from linkage.identity import AgencyId, IdentityRecord
from linkage.scoring import CompiledModel, weight_from_probability
from linkage.subjects import value_at
from policy.linkage_terms import WATCH_LIST_EVENT_TYPE, BirthMatchTerms
from schemas.errors import DecodeError
from schemas.wire import WireCodec

log = logging.getLogger("handoff.linkage")

BIRTH_MATCH_NAMESPACE = uuid.UUID("6f1d2c3b-5a4e-4b7c-9d8e-0f1a2b3c4d5e")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_REASONS = {"PRIOR_TPR": "prior_tpr", "OPEN_CASE": "open_case"}


@dataclass(frozen=True, slots=True)
class _Entry:
    entry: WatchEntry
    subject_id: str
    identity: IdentityRecord | None
    clk: str | None


def _identity(owner: str, record: Mapping[str, Any]) -> IdentityRecord | None:
    parent = record.get("parent")
    if not isinstance(parent, Mapping):
        return None
    birth_date = parent.get("birth_date")
    return IdentityRecord(
        AgencyId(owner, "watch", str(record["entry_id"])),
        given_name=parent.get("first_name"), family_name=parent.get("last_name"),
        birth_date=birth_date if isinstance(birth_date, dt.date) else None,
        sex=parent.get("sex"), street_address=parent.get("street_address"),
        zip=parent.get("zip"), phone=parent.get("phone"))


class WatchListFeed:
    """The restricted list, kept in step with its topic."""

    def __init__(self, event_log: EventLog, codec: WireCodec, model: CompiledModel) -> None:
        self._log = event_log
        self._codec = codec
        self._model = model
        self._topic = ingress_topic(WATCH_LIST_EVENT_TYPE)
        self._positions: dict[int, int] = {}
        self._entries: dict[str, _Entry] = {}
        self._terms: BirthMatchTerms | None = None
        self._list: WatchList | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def use_model(self, model: CompiledModel) -> None:
        with self._lock:
            self._model = model
            self._list = None

    def catch_up(self, terms: BirthMatchTerms) -> int:
        """Apply the entries appended since the last call; returns how many."""
        with self._lock:
            if terms != self._terms:
                self._terms, self._list = terms, None
            applied = 0
            # One request for every partition's end (on Kafka, one per partition was a round
            # trip each, before every router batch).
            for partition, end in enumerate(self._log.end_offsets(self._topic)):
                position = self._positions.get(partition, 0)
                while position < end:
                    records = self._log.read(self._topic, partition, position, 1000)
                    if not records:
                        break
                    for record in records:
                        source = record.header(H_INGEST_SOURCE)
                        if source is None or source.decode() != terms.watch_list_from:
                            continue
                        try:
                            _, entry = self._codec.decode(record.value)
                        except DecodeError:
                            log.warning("skipped an undecodable watch list entry at "
                                        "partition %d offset %d", partition, record.offset)
                            continue
                        self._apply(entry, source.decode())
                        applied += 1
                    position = records[-1].offset + 1
                self._positions[partition] = position
            return applied

    def _apply(self, record: Mapping[str, Any], owner: str) -> None:
        entry_id = str(record["entry_id"])
        if record["action"] == "REMOVE":
            self._entries.pop(entry_id, None)
            if self._list is not None:
                self._list.remove(entry_id)
            return
        entry = _Entry(WatchEntry(entry_id, _REASONS[str(record["reason"])]),  # type: ignore[arg-type]
                       str(record["subject_id"]), _identity(owner, record),
                       record.get("clk"))
        self._entries[entry_id] = entry
        if self._list is not None:
            self._add(self._list, entry)

    def _add(self, watch: WatchList, entry: _Entry) -> None:
        try:
            if entry.identity is not None:
                watch.add_identity(entry.entry, entry.identity)
            elif entry.clk is not None:
                watch.add_clk(entry.entry, entry.clk)
        except (LinkageError, ClkError) as exc:
            # The entry stays listed (a later ADD may fix it) but cannot match.
            log.warning("a watch list entry cannot be matched: %s", type(exc).__name__)

    def _watch_list(self, terms: BirthMatchTerms) -> WatchList:
        if self._list is None:
            watch = WatchList(self._model, weight_from_probability(terms.link_probability),
                              ClkThresholds(link=terms.clk_dice,
                                            review=min(terms.clk_dice, 0.85)))
            for entry in self._entries.values():
                self._add(watch, entry)
            self._list = watch
        return self._list

    def match(self, terms: BirthMatchTerms, birth: Mapping[str, Any],
              mother: IdentityRecord | None) -> tuple[tuple[BirthMatch, str], ...]:
        """The entries the birth's mother matches, each with the entry's subject id."""
        clk = value_at(birth, terms.mother_clk_field) if terms.clk_agreement else None
        if mother is None and not isinstance(clk, str):
            return ()
        parent = BirthParent("mother", identity=mother,
                             clk=clk if isinstance(clk, str) else None)
        with self._lock:
            watch = self._watch_list(terms)
            try:
                found = watch.match_birth([parent])
            except (LinkageError, ClkError) as exc:
                log.warning("a birth could not be checked for birth match: %s",
                            type(exc).__name__)
                return ()
            return tuple((m, self._entries[m.entry.entry_id].subject_id) for m in found
                         if m.entry.entry_id in self._entries)


def birth_match_record(match: BirthMatch, entry_subject: str, birth: Mapping[str, Any],
                       matched_at_ms: int) -> dict[str, Any]:
    """The `birth_match` event for one match (fastavro form): the minimum necessary.
    Its event id is derived from the birth and the entry, so replays repeat it."""
    birth_event_id = str(birth["event_id"])
    child = birth.get("child") or {}
    return {
        "event_id": str(uuid.uuid5(BIRTH_MATCH_NAMESPACE,
                                   f"{birth_event_id}|{match.entry.entry_id}|{match.role}")),
        "occurred_at": _EPOCH + dt.timedelta(milliseconds=matched_at_ms),
        "subject_id": entry_subject,
        "entry_id": match.entry.entry_id,
        "reason": match.entry.reason.upper(),
        "parent_role": match.role.upper(),
        "birth_event_id": birth_event_id,
        "child_birth_date": child.get("birth_date"),
        "hospital_id": str(birth.get("hospital_id")),
        "match_method": match.method.upper(),
        "match_score": round(float(match.score), 4),
    }
