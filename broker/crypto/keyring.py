"""Data keys: one per topic and period, created on demand, unwrapped on first use,
re-wrapped when the KEK rotates, and shredded when their period passes retention."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.crypto.errors import DataKeyUnavailableError, KekError
from broker.crypto.kek import KeyEncryptionKey
from broker.crypto.keystore import DataKeyEntry, KeyStore

DEFAULT_PERIOD_MS = 86_400_000
REFRESH_SECONDS = 5.0
"""How often a process looks for keys created or shredded by another process."""


class DataKeyShreddedError(DataKeyUnavailableError):
    """The data key was destroyed by retention: its records can no longer be read."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class TopicKeys:
    """How many data keys a topic has, for `handoff encryption status`."""

    topic: str
    live: int
    shredded: int
    oldest_live_period_ms: int | None
    kek_ids: tuple[str, ...]


class DataKeyring:
    """Hands out the data key to encrypt a topic's records now, and the key a stored
    record names to decrypt it.

    Thread-safe. Keys are created lazily: the first append to a topic in a period
    creates that period's key and stores it (wrapped) before any record uses it, so a
    record never refers to a key that is not durable. Periods are aligned to the Unix
    epoch (whole UTC days by default).
    """

    def __init__(
        self,
        store: KeyStore,
        kek: KeyEncryptionKey,
        retired: Sequence[KeyEncryptionKey] = (),
        period_ms: int = DEFAULT_PERIOD_MS,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        if period_ms < 1:
            raise KekError("the data-key period must be at least 1 ms")
        self._store = store
        self._kek = kek
        self._keks = {k.kek_id: k for k in (*retired, kek)}
        self._period_ms = period_ms
        self._clock = clock
        self._entries: dict[str, DataKeyEntry] = {}
        self._ciphers: dict[str, AESGCM] = {}
        self._current: dict[str, tuple[DataKeyEntry, AESGCM]] = {}
        self._shredded_topics: set[str] = set()
        self._lock = threading.RLock()
        self._refresh_due = 0.0
        self.refresh()
        self._check_keks()

    @property
    def kek_id(self) -> str:
        return self._kek.kek_id

    # -- reading the store ---------------------------------------------------------------

    def refresh(self) -> None:
        """Take in keys created, re-wrapped or shredded since the last look."""
        with self._lock:
            for entry in self._store.changes():
                self._apply(entry)
            self._refresh_due = time.monotonic() + REFRESH_SECONDS

    def maybe_refresh(self) -> None:
        """`refresh`, at most every few seconds: how a shred by another process reaches
        this one."""
        if time.monotonic() >= self._refresh_due:
            self.refresh()

    def _apply(self, entry: DataKeyEntry) -> None:
        previous = self._entries.get(entry.key_id)
        self._entries[entry.key_id] = entry
        if entry.shredded:
            self._ciphers.pop(entry.key_id, None)
            self._shredded_topics.add(entry.topic)
            current = self._current.get(entry.topic)
            if current is not None and current[0].key_id == entry.key_id:
                del self._current[entry.topic]
        elif previous is not None and previous.shredded:
            # A shred is final, even if a stale re-wrap of the key arrives after it.
            self._entries[entry.key_id] = previous

    def _check_keks(self) -> None:
        unknown = sorted({e.kek_id or "?" for e in self._entries.values()
                          if not e.shredded and e.kek_id not in self._keks})
        if unknown:
            raise KekError(
                f"data keys are wrapped by {', '.join(unknown)}, but the configured "
                f"key-encryption key is {self._kek.kek_id}; configure that KEK as "
                "encryption.kek_file (or as encryption.previous_kek_file while rotating)"
            )

    # -- encrypting ----------------------------------------------------------------------

    def encryption_key(self, topic: str) -> tuple[str, AESGCM]:
        """The id and cipher of the key for records appended to `topic` now."""
        now = self._clock()
        current = self._current.get(topic)
        if current is not None and current[0].period_start_ms <= now < current[0].period_end_ms:
            return current[0].key_id, current[1]
        with self._lock:
            start = now - now % self._period_ms
            entry = self._reusable(topic, start)
            if entry is None:
                entry = self._create(topic, start, now)
            cipher = self._cipher(entry)
            self._current[topic] = (entry, cipher)
            return entry.key_id, cipher

    def has_key_now(self, topic: str) -> bool:
        """Whether `encryption_key(topic)` would answer without storing a new key."""
        now = self._clock()
        current = self._current.get(topic)
        return current is not None and \
            current[0].period_start_ms <= now < current[0].period_end_ms

    def _reusable(self, topic: str, start: int) -> DataKeyEntry | None:
        # A key of this period stored earlier (by this process before a restart, or by
        # another), wrapped by the current KEK: reuse it rather than add another.
        for entry in self._entries.values():
            if (entry.topic == topic and entry.period_start_ms == start
                    and not entry.shredded and entry.kek_id == self._kek.kek_id):
                return entry
        return None

    def _create(self, topic: str, start: int, now: int) -> DataKeyEntry:
        material = AESGCM.generate_key(bit_length=256)
        draft = DataKeyEntry(key_id="dk-" + secrets.token_hex(8), topic=topic,
                             period_start_ms=start, period_end_ms=start + self._period_ms,
                             created_ms=now)
        entry = DataKeyEntry(draft.key_id, topic, start, draft.period_end_ms, now,
                             kek_id=self._kek.kek_id,
                             wrapped=self._kek.wrap(material, draft.wrap_context()))
        self._store.put([entry])
        self._entries[entry.key_id] = entry
        self._ciphers[entry.key_id] = AESGCM(material)
        return entry

    # -- decrypting ----------------------------------------------------------------------

    def decryption_key(self, key_id: str) -> AESGCM:
        """The cipher of the key a stored record names. Raises `DataKeyShreddedError`
        for a shredded key and `DataKeyUnavailableError` for one that cannot be found
        or unwrapped."""
        cipher = self._ciphers.get(key_id)
        if cipher is not None:
            return cipher
        entry = self._entries.get(key_id)
        if entry is None:
            self.refresh()
            entry = self._entries.get(key_id)
            if entry is None:
                raise DataKeyUnavailableError(f"data key {key_id} is not in the key store")
        with self._lock:
            return self._cipher(entry)

    def _cipher(self, entry: DataKeyEntry) -> AESGCM:
        cipher = self._ciphers.get(entry.key_id)
        if cipher is not None:
            return cipher
        if entry.shredded:
            raise DataKeyShreddedError(f"data key {entry.key_id} of {entry.topic} was "
                                       "shredded by retention")
        kek = self._keks.get(entry.kek_id or "")
        if kek is None or entry.wrapped is None:
            raise DataKeyUnavailableError(
                f"data key {entry.key_id} is wrapped by {entry.kek_id}, which is not configured")
        cipher = AESGCM(kek.unwrap(entry.wrapped, entry.wrap_context()))
        self._ciphers[entry.key_id] = cipher
        return cipher

    def is_shredded(self, key_id: str) -> bool:
        entry = self._entries.get(key_id)
        return entry is not None and entry.shredded

    def has_shredded(self, topic: str) -> bool:
        """Whether any key of `topic` was shredded (so some of its records are unreadable)."""
        return topic in self._shredded_topics

    # -- retention and rotation ----------------------------------------------------------

    def shred_expired(self, topic: str, cutoff_ms: int) -> list[DataKeyEntry]:
        """Destroy the keys of `topic` whose period ended at or before `cutoff_ms`;
        returns the tombstones stored. Their records can never be decrypted again."""
        with self._lock:
            self.refresh()
            now = self._clock()
            victims = [e.tombstone(now) for e in self._entries.values()
                       if e.topic == topic and not e.shredded and e.period_end_ms <= cutoff_ms]
            if victims:
                self._store.put(victims)
                for tombstone in victims:
                    self._apply(tombstone)
                self._store.purge_replaced()
            return victims

    def rewrap(self, new_kek: KeyEncryptionKey) -> int:
        """Wrap every live data key under `new_kek` instead, store the new wrappings and
        switch to `new_kek`. Records are not touched. Returns how many keys moved."""
        with self._lock:
            self.refresh()
            self._keks[new_kek.kek_id] = new_kek
            moved: list[DataKeyEntry] = []
            for entry in self._entries.values():
                if entry.shredded or entry.kek_id == new_kek.kek_id:
                    continue
                old = self._keks.get(entry.kek_id or "")
                if old is None or entry.wrapped is None:
                    raise KekError(f"data key {entry.key_id} is wrapped by {entry.kek_id}, "
                                   "which is not configured; give it as the old KEK")
                material = old.unwrap(entry.wrapped, entry.wrap_context())
                moved.append(DataKeyEntry(
                    entry.key_id, entry.topic, entry.period_start_ms, entry.period_end_ms,
                    entry.created_ms, kek_id=new_kek.kek_id,
                    wrapped=new_kek.wrap(material, entry.wrap_context())))
            self._store.put(moved)
            for entry in moved:
                self._entries[entry.key_id] = entry
            self._kek = new_kek
            self._current.clear()
            self._store.purge_replaced()
            return len(moved)

    def needs_rewrap(self) -> int:
        """How many live keys are wrapped by a KEK other than the current one."""
        return sum(1 for e in self._entries.values()
                   if not e.shredded and e.kek_id != self._kek.kek_id)

    def summary(self, topics: Iterable[str] | None = None) -> list[TopicKeys]:
        """Key counts per topic (no key material)."""
        wanted = set(topics) if topics is not None else None
        by_topic: dict[str, list[DataKeyEntry]] = {}
        for entry in self._entries.values():
            if wanted is None or entry.topic in wanted:
                by_topic.setdefault(entry.topic, []).append(entry)
        out = []
        for topic, entries in sorted(by_topic.items()):
            live = [e for e in entries if not e.shredded]
            out.append(TopicKeys(
                topic, len(live), len(entries) - len(live),
                min((e.period_start_ms for e in live), default=None),
                tuple(sorted({e.kek_id or "?" for e in live}))))
        return out
