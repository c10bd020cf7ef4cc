"""Console sessions, kept on the server: a random token in an HttpOnly cookie names one.

The cookie holds nothing but 32 random bytes; the server keeps, under the token's
SHA-256, who signed in, with which credential (a key's digest or a client certificate's
names, never a key), the form token, and when the session ends. So a forged cookie names
no session, a cookie replayed after sign-out or expiry names one that is gone, and every
request re-checks the credential against the keys file, so revoking a key ends its
sessions at their next request. Sessions live in the process that opened them: a
restart signs everyone out (see docs/console.md for several API processes).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass, replace
from typing import Literal

from broker.auth import Principal


@dataclass(frozen=True, slots=True)
class Credential:
    """What a session was opened with, to check again at every request."""

    kind: Literal["key", "mtls"]
    digest: str | None = None
    """SHA-256 of the API key (as the keys file keeps it)."""
    names: tuple[str, ...] = ()
    """The client certificate's names (mutual TLS)."""


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    principal: Principal
    credential: Credential
    csrf: str
    """The form token every form and htmx request of this session must carry."""
    created_ms: int
    expires_ms: int
    idle_ms: int
    last_seen_ms: int

    def alive(self, now_ms: int) -> bool:
        return now_ms < self.expires_ms and now_ms < self.last_seen_ms + self.idle_ms


def _key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class SessionStore:
    """The open sessions of this process."""

    def __init__(self) -> None:
        self._sessions: dict[str, ConsoleSession] = {}
        self._lock = threading.Lock()

    def open(self, principal: Principal, credential: Credential, now_ms: int,
             lifetime_ms: int, idle_ms: int) -> tuple[str, ConsoleSession]:
        """A new session; returns the cookie token (shown once, never stored)."""
        token = secrets.token_urlsafe(32)
        session = ConsoleSession(principal, credential, secrets.token_urlsafe(32), now_ms,
                                 now_ms + lifetime_ms, idle_ms, now_ms)
        with self._lock:
            self._sessions = {k: s for k, s in self._sessions.items() if s.alive(now_ms)}
            self._sessions[_key(token)] = session
        return token, session

    def find(self, token: str, now_ms: int) -> ConsoleSession | None:
        """The live session `token` names (its idle clock restarted), or None."""
        key = _key(token)
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if not session.alive(now_ms):
                del self._sessions[key]
                return None
            session = self._sessions[key] = replace(session, last_seen_ms=now_ms)
            return session

    def end(self, token: str) -> bool:
        with self._lock:
            return self._sessions.pop(_key(token), None) is not None

    def __len__(self) -> int:
        return len(self._sessions)
