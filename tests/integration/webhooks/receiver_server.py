"""A real HTTP server standing in for a subscriber's webhook endpoint.

`WebhookReceiver` listens on loopback in a thread, answers each POST with the next status
of a script (then `default`), verifies signatures with the receiver helper, and keeps
every request it saw so a test can check what arrived.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from connectors.webhook_receiver import WebhookVerificationError, verify
from tests.waiting import NeverHappened, eventually


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int
    payload: dict[str, Any] | None
    """The verified delivery; None when verification failed."""
    error: str | None


@dataclass
class WebhookReceiver:
    secrets: list[str]
    default: int = 204
    script: list[int] = field(default_factory=list)
    """Statuses to answer first, one per request."""
    retry_after: str | None = None
    requests: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver._handle(self, body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def _handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            status = self.script.pop(0) if self.script else self.default
        try:
            payload: dict[str, Any] | None = verify(headers, body, self.secrets)
            error = None
        except WebhookVerificationError as exc:
            payload, error, status = None, str(exc), 400
        with self._lock:
            self.requests.append(Received(headers, body, status, payload, error))
        handler.send_response(status)
        if self.retry_after and status >= 400:
            handler.send_header("Retry-After", self.retry_after)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def delivered(self) -> list[dict[str, Any]]:
        """Verified deliveries answered with 2xx, in arrival order."""
        with self._lock:
            return [r.payload for r in self.requests
                    if r.payload is not None and 200 <= r.status < 300]

    def wait_for(self, condition: Callable[[WebhookReceiver], bool], timeout: float = 20.0
                 ) -> bool:
        """Whether `condition` holds within `timeout` seconds; `assert not
        receiver.wait_for(...)` watches that long for something that must not arrive."""
        try:
            eventually(lambda: condition(self), timeout=timeout)
        except NeverHappened:
            return False
        return True

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
