"""Console sessions: found by their token only, ended by sign-out, age and idleness."""

from __future__ import annotations

from broker.auth import Principal, Role
from broker.console.sessions import Credential, SessionStore

AUDITOR = Principal("k-audit", "privacy-office", frozenset({Role.AUDITOR}))
KEY = Credential("key", digest="ab" * 32)


def test_a_session_is_found_by_its_token_and_nothing_else() -> None:
    store = SessionStore()
    token, session = store.open(AUDITOR, KEY, now_ms=0, lifetime_ms=60_000, idle_ms=30_000)
    assert store.find(token, 1_000) is not None
    assert store.find(token + "x", 1_000) is None
    assert store.find("a" * len(token), 1_000) is None
    assert session.csrf and session.csrf != token


def test_sign_out_ends_a_session_for_good() -> None:
    store = SessionStore()
    token, _ = store.open(AUDITOR, KEY, 0, 60_000, 30_000)
    assert store.end(token)
    assert store.find(token, 1) is None
    assert not store.end(token)


def test_a_session_ends_when_idle_and_at_its_lifetime_however_busy() -> None:
    store = SessionStore()
    idle, _ = store.open(AUDITOR, KEY, 0, 60_000, 10_000)
    assert store.find(idle, 10_001) is None
    busy, _ = store.open(AUDITOR, KEY, 0, 60_000, 10_000)
    for now in range(5_000, 60_000, 5_000):
        assert store.find(busy, now) is not None
    assert store.find(busy, 60_000) is None
