"""Ledger-store adapters the referral contract suites run against.

`ledger_store_factory` yields a `LedgerStoreFactory` per adapter. Calling it opens a
handle; after `close`, calling it again reopens the same data where the adapter is
durable (`durable` is False for the in-memory store, which the durability tests skip).
To add an adapter: add it to `_ADAPTERS`; the tests do not change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from broker.referral_store import SqliteLedgerStore
from referrals.store import InMemoryLedgerStore, LedgerStore


@dataclass
class LedgerStoreFactory:
    name: str
    durable: bool
    open_store: Callable[[], LedgerStore]
    path: Path | None = None
    opened: list[LedgerStore] = field(default_factory=list)

    def __call__(self) -> LedgerStore:
        store = self.open_store()
        self.opened.append(store)
        return store

    def close_all(self) -> None:
        for store in self.opened:
            store.close()


def _memory(tmp_path: Path) -> LedgerStoreFactory:
    store = InMemoryLedgerStore()
    return LedgerStoreFactory("memory", False, lambda: store)


def _sqlite(tmp_path: Path) -> LedgerStoreFactory:
    path = tmp_path / "data" / "referrals.db"
    return LedgerStoreFactory("sqlite", True, lambda: SqliteLedgerStore(path), path)


_ADAPTERS: dict[str, Callable[[Path], LedgerStoreFactory]] = {
    "memory": _memory,
    "sqlite": _sqlite,
}


@pytest.fixture(params=sorted(_ADAPTERS))
def ledger_store_factory(request: pytest.FixtureRequest, tmp_path: Path
                         ) -> Iterator[LedgerStoreFactory]:
    factory = _ADAPTERS[request.param](tmp_path)
    yield factory
    factory.close_all()


@pytest.fixture
def ledger_store(ledger_store_factory: LedgerStoreFactory) -> LedgerStore:
    return ledger_store_factory()
