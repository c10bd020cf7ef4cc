"""Which subscriptions want an event: event type, source restriction, field filter."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from policy.model import Subscription


def _value_at(record: Mapping[str, Any], parts: tuple[str, ...]) -> Any:
    node: Any = record
    for part in parts:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


class SubscriptionMatcher:
    """Subscriptions indexed by event type, with their filters pre-split into paths."""

    def __init__(self, subscriptions: Iterable[Subscription]) -> None:
        self._by_type: dict[str, list[tuple[Subscription, frozenset[str] | None,
                                            tuple[tuple[tuple[str, ...], tuple[Any, ...]],
                                                  ...]]]] = {}
        for sub in subscriptions:
            sources = frozenset(sub.sources) if sub.sources is not None else None
            checks = tuple(
                (tuple(path.split(".")), tuple(wanted) if isinstance(wanted, list)
                 else (wanted,))
                for path, wanted in sub.filter.items())
            for event_type in sub.event_types:
                self._by_type.setdefault(event_type, []).append((sub, sources, checks))

    def matching(self, event_type: str, source: str, record: Mapping[str, Any]
                 ) -> list[Subscription]:
        found: list[Subscription] = []
        for sub, sources, checks in self._by_type.get(event_type, ()):
            if sources is not None and source not in sources:
                continue
            if all(_value_at(record, parts) in allowed for parts, allowed in checks):
                found.append(sub)
        return found
