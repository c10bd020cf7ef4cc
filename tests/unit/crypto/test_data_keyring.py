"""Data keys: one per topic and period, reused across restarts, shredded for good,
re-wrapped under a new KEK."""

from __future__ import annotations

import os
from collections.abc import Iterable

import pytest

from broker.crypto import (
    DataKeyEntry,
    DataKeyring,
    DataKeyShreddedError,
    DataKeyUnavailableError,
    KekError,
    LocalKek,
)

HOUR_MS = 3_600_000


class MemoryKeyStore:
    """A `KeyStore` in memory; `changes` is per reader, as with the log-backed store."""

    def __init__(self) -> None:
        self.entries: list[DataKeyEntry] = []
        self.purges = 0

    def reader(self) -> MemoryKeyStore:
        view = MemoryKeyStore.__new__(MemoryKeyStore)
        view.entries, view.purges = self.entries, 0
        return view

    def put(self, entries: Iterable[DataKeyEntry]) -> None:
        self.entries.extend(entries)

    def changes(self) -> list[DataKeyEntry]:
        seen = getattr(self, "_seen", 0)
        self._seen = len(self.entries)
        return self.entries[seen:]

    def purge_replaced(self) -> int:
        self.purges += 1
        return 0


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def kek() -> LocalKek:
    return LocalKek(os.urandom(32))


def ring(store: MemoryKeyStore, kek: LocalKek, clock: Clock, **kw) -> DataKeyring:
    return DataKeyring(store.reader(), kek, period_ms=HOUR_MS, clock=clock, **kw)


def test_one_key_per_topic_and_period(kek):
    store, clock = MemoryKeyStore(), Clock(10 * HOUR_MS + 5)
    keys = ring(store, kek, clock)
    first, _ = keys.encryption_key("events.birth")
    clock.now += HOUR_MS - 10
    assert keys.encryption_key("events.birth")[0] == first
    assert keys.encryption_key("deliver.hv-births")[0] != first
    clock.now += 10
    assert keys.encryption_key("events.birth")[0] != first
    assert {e.topic for e in store.entries} == {"events.birth", "deliver.hv-births"}
    assert len(store.entries) == 3
    assert all(e.wrapped and e.kek_id == kek.kek_id for e in store.entries)


def test_a_restarted_process_reuses_the_period_key_and_reads_old_records(kek):
    store, clock = MemoryKeyStore(), Clock(10 * HOUR_MS)
    key_id, cipher = ring(store, kek, clock).encryption_key("events.birth")
    sealed = cipher.encrypt(b"n" * 12, b"payload", b"")
    again = ring(store, kek, clock)
    assert again.encryption_key("events.birth")[0] == key_id
    assert again.decryption_key(key_id).decrypt(b"n" * 12, sealed, b"") == b"payload"
    assert len(store.entries) == 1


def test_a_key_created_by_another_process_is_found_on_a_miss(kek):
    store, clock = MemoryKeyStore(), Clock(0)
    reader = ring(store, kek, clock)
    key_id, _ = ring(store, kek, clock).encryption_key("events.birth")
    assert reader.decryption_key(key_id) is not None
    with pytest.raises(DataKeyUnavailableError, match="not in the key store"):
        reader.decryption_key("dk-unknown")


def test_shredding_destroys_the_keys_of_expired_periods_only(kek):
    store, clock = MemoryKeyStore(), Clock(0)
    keys = ring(store, kek, clock)
    old, _ = keys.encryption_key("events.birth")
    clock.now = 2 * HOUR_MS
    recent, _ = keys.encryption_key("events.birth")
    other, _ = ring(store, kek, Clock(0)).encryption_key("events.referral")

    shredded = keys.shred_expired("events.birth", cutoff_ms=HOUR_MS)
    assert [t.key_id for t in shredded] == [old]
    with pytest.raises(DataKeyShreddedError):
        keys.decryption_key(old)
    assert keys.decryption_key(recent) is not None
    assert keys.decryption_key(other) is not None
    assert keys.has_shredded("events.birth") and not keys.has_shredded("events.referral")
    # The store now says the key is gone, for every process.
    assert store.entries[-1].shredded and store.entries[-1].wrapped is None
    with pytest.raises(DataKeyShreddedError):
        ring(store, kek, clock).decryption_key(old)


def test_another_process_learns_of_a_shred_on_refresh(kek):
    store, clock = MemoryKeyStore(), Clock(0)
    writer = ring(store, kek, clock)
    key_id, _ = writer.encryption_key("events.birth")
    reader = ring(store, kek, clock)
    assert reader.decryption_key(key_id) is not None
    ring(store, kek, clock).shred_expired("events.birth", cutoff_ms=HOUR_MS)
    reader.refresh()
    with pytest.raises(DataKeyShreddedError):
        reader.decryption_key(key_id)
    # The writer, once it refreshes, does not go on encrypting under the shredded key.
    writer.refresh()
    assert writer.encryption_key("events.birth")[0] != key_id


def test_rotation_rewraps_keys_so_the_old_kek_is_no_longer_needed(kek):
    store, clock = MemoryKeyStore(), Clock(0)
    key_id, cipher = ring(store, kek, clock).encryption_key("events.birth")
    sealed = cipher.encrypt(b"n" * 12, b"payload", b"")
    new = LocalKek(os.urandom(32))
    assert ring(store, kek, clock).rewrap(new) == 1

    only_new = ring(store, new, clock)
    assert only_new.decryption_key(key_id).decrypt(b"n" * 12, sealed, b"") == b"payload"
    assert only_new.needs_rewrap() == 0
    with pytest.raises(KekError, match=new.kek_id):
        ring(store, kek, clock)


def test_a_missing_kek_is_named_at_start(kek):
    store, clock = MemoryKeyStore(), Clock(0)
    ring(store, kek, clock).encryption_key("events.birth")
    stranger = LocalKek(os.urandom(32))
    with pytest.raises(KekError) as caught:
        ring(store, stranger, clock)
    assert kek.kek_id in str(caught.value) and stranger.kek_id in str(caught.value)


def test_the_retired_kek_unwraps_until_keys_are_rewrapped(kek):
    store, clock = MemoryKeyStore(), Clock(0)
    key_id, _ = ring(store, kek, clock).encryption_key("events.birth")
    new = LocalKek(os.urandom(32))
    keys = ring(store, new, clock, retired=[kek])
    assert keys.needs_rewrap() == 1
    assert keys.decryption_key(key_id) is not None
    # New keys are wrapped by the current KEK.
    clock.now = 5 * HOUR_MS
    fresh, _ = keys.encryption_key("events.birth")
    assert next(e for e in store.entries if e.key_id == fresh).kek_id == new.kek_id


def test_a_shred_is_final_even_if_a_stale_rewrap_follows(kek):
    store, clock = MemoryKeyStore(), Clock(0)
    key_id, _ = ring(store, kek, clock).encryption_key("events.birth")
    live = store.entries[0]
    ring(store, kek, clock).shred_expired("events.birth", cutoff_ms=HOUR_MS)
    store.put([live])   # a rotation that read the key before the shred landed
    with pytest.raises(DataKeyShreddedError):
        ring(store, kek, clock).decryption_key(key_id)
