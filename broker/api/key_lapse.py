"""Open streams and long polls end when the key that opened them stops being valid.

A key revoked (`handoff keys revoke`, an edited keys file), expired, removed, or moved to
another agency or fewer roles is refused on its next call. A call already open (a
server-sent-event stream, a long poll) asks the key ring every `KEY_CHECK_SECONDS` while
it waits, and before it sends anything it read, and ends: a stream with a last event

    event: end
    data: {"reason": "key_revoked"}

and a long poll with a 401 problem. Both are audited as refusals of that key. The keys
file is looked at once a second (`FileKeyRing`), so an open call ends about a second
after the file changes, or after the key's `expires_at` or `revoked_at`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from broker.auth import KeyRing, Principal

KEY_CHECK_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class KeyLapsed:
    """The key of an open call stopped being valid, for `reason` (`key_revoked`, ...)."""

    reason: str

    def to_sse(self) -> str:
        return f"event: end\ndata: {json.dumps({'reason': self.reason})}\n\n"


def lapse_of(keyring: KeyRing, principal: Principal) -> KeyLapsed | None:
    reason = keyring.lapsed(principal)
    return None if reason is None else KeyLapsed(reason)


class KeyWatch:
    """Looks at the keys of every open stream and long poll of the process, all at once,
    every `KEY_CHECK_SECONDS`, and sets the event of each call whose key lapsed: one
    timer per process, however many calls wait."""

    def __init__(self, keyring: KeyRing) -> None:
        self._keyring = keyring
        self._open: dict[Principal, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None

    @contextmanager
    def watching(self, principal: Principal) -> Iterator[asyncio.Event]:
        """An event set when `principal`'s key lapses (and that others may set too)."""
        event = asyncio.Event()
        self._open.setdefault(principal, set()).add(event)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="handoff-key-watch")
        try:
            yield event
        finally:
            events = self._open.get(principal, set())
            events.discard(event)
            if not events:
                self._open.pop(principal, None)

    async def _run(self) -> None:
        while self._open:
            await asyncio.sleep(KEY_CHECK_SECONDS)
            for principal, events in list(self._open.items()):
                if self._keyring.lapsed(principal) is not None:
                    for event in events:
                        event.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
