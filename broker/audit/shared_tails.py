"""Sharing the long common ends of audit details, so each is stored once.

A decision's detail is canonical JSON with sorted keys. Everything that differs from one
event to the next (consent ids, decision id, decision time, event id) sorts before
`event_type`, and everything after it (the explanation of every field, legal basis,
obligations) is the same for every event decided by the same compiled plan: about 6 KB
of a 6.5 KB birth decision. The store keeps such a shared tail once and each record
keeps only its own head, so `detail = head + tail`; the chain still hashes the whole
canonical detail, so this is invisible to verification and exports.

`SharedTails` learns tails without knowing the detail's structure: when a large detail
ends like a recently seen one (same last characters), their longest common suffix
becomes a tail. Matching a known tail costs a slice, a dict lookup and one `endswith`.
"""

from __future__ import annotations

SHARE_FROM_CHARS = 1024
"""Details shorter than this are stored whole; sharing would save little."""
_KEY_CHARS = 64
_MAX_TAILS_PER_KEY = 8
_MAX_RECENT = 4096
_MAX_KNOWN = 16384


def common_suffix_length(left: str, right: str) -> int:
    """Length of the longest common suffix (binary search over C-level comparisons)."""
    low, high = 0, min(len(left), len(right))
    while low < high:
        middle = (low + high + 1) // 2
        if left[-middle:] == right[-middle:]:
            low = middle
        else:
            high = middle - 1
    return low


class SharedTails:
    """Splits details into (head, shared tail). Not thread-safe: the store calls it under
    its write lock."""

    def __init__(self) -> None:
        self._known: dict[str, list[tuple[int, str]]] = {}
        self._recent: dict[str, str] = {}

    def match(self, text: str) -> tuple[str, int | None]:
        """(head, tail id) using a known tail, or (text, None) when none fits."""
        if len(text) < SHARE_FROM_CHARS:
            return text, None
        for tail_id, tail in self._known.get(text[-_KEY_CHARS:], ()):
            if len(tail) < len(text) and text.endswith(tail):
                return text[: len(text) - len(tail)], tail_id
        return text, None

    def propose(self, text: str) -> str | None:
        """A new tail worth storing, shared with a recent detail; None if there is none.

        Call after `match` found nothing. The caller stores the tail, then calls `add`.
        """
        if len(text) < SHARE_FROM_CHARS:
            return None
        key = text[-_KEY_CHARS:]
        previous = self._recent.get(key)
        if len(self._recent) >= _MAX_RECENT:
            self._recent.clear()
        self._recent[key] = text
        if previous is None:
            return None
        # Keep at least one character of head, so a record never stores an empty head.
        length = min(common_suffix_length(text, previous), len(text) - 1)
        return text[-length:] if length >= SHARE_FROM_CHARS // 2 else None

    def add(self, tail_id: int, tail: str) -> None:
        """Make a stored tail available to `match`."""
        if sum(len(tails) for tails in self._known.values()) >= _MAX_KNOWN:
            self._known.clear()  # relearned on demand; a duplicate tail costs one row
        tails = self._known.setdefault(tail[-_KEY_CHARS:], [])
        tails.insert(0, (tail_id, tail))
        del tails[_MAX_TAILS_PER_KEY:]

    def forget(self, tail_ids: set[int]) -> None:
        """Drop tails whose storage was rolled back."""
        for key, tails in list(self._known.items()):
            kept = [item for item in tails if item[0] not in tail_ids]
            if kept:
                self._known[key] = kept
            else:
                del self._known[key]
