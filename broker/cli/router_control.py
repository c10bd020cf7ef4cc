"""Requests from `handoff serve` to the router process it supervises, and their answers.

The parent makes a Unix socket pair for each child it starts and passes one end
(`--control-fd N`); nothing else holds it, so no other user or process can send on it.
Each message is a 4-byte big-endian length and a JSON object; the parent sends one
request at a time and waits for its answer (`ControlClient.request`), the child answers
them in order on a thread of its own (`serve_control`). What is asked:

- `metrics`: the child's Prometheus exposition, which the parent adds to its own
  (`broker.metrics.Metrics.children`), so `/metrics` and the console's flow charts count
  the decisions, delivery latency and router lag of the process that routes;
- `reload`: read the policy and schema folders again; the answer (the bundle version in
  force) comes once the child decides with it, so a reload through the parent answers
  only when the router runs the new bundle;
- `linkage`: a clerical record-linkage change (resolve a review, unlink, merge, undo),
  made by the child, the one writer of the person index.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping

from broker.errors import BrokerError
from schemas.errors import HandoffError

log = logging.getLogger("handoff")

_LENGTH = struct.Struct(">I")
MAX_MESSAGE = 64 << 20
"""Longest message either side accepts (a metrics exposition is tens of kilobytes)."""

JsonObject = dict[str, object]
Handler = Callable[[Mapping[str, object]], JsonObject]


class RouterUnreachableError(BrokerError):
    """The router process did not answer (not running, restarting, or too slow)."""

    retriable = True


def send_message(sock: socket.socket, message: Mapping[str, object]) -> None:
    body = json.dumps(message, separators=(",", ":")).encode()
    sock.sendall(_LENGTH.pack(len(body)) + body)


def receive_message(sock: socket.socket) -> JsonObject | None:
    """The next message, or None at the end of the stream."""
    header = _receive_exactly(sock, _LENGTH.size)
    if header is None:
        return None
    (length,) = _LENGTH.unpack(header)
    if length > MAX_MESSAGE:
        raise ValueError(f"a control message of {length} bytes is over the limit")
    body = _receive_exactly(sock, length)
    if body is None:
        return None
    message = json.loads(body)
    if not isinstance(message, dict):
        raise ValueError("a control message must be a JSON object")
    return message


def _receive_exactly(sock: socket.socket, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


class ControlClient:
    """The parent's end: one request at a time, to whichever child runs now. Each
    request carries a number its answer repeats, so an answer that comes after its
    request timed out is recognised and dropped rather than taken for the next one's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._sent = 0

    def attach(self, sock: socket.socket | None) -> None:
        """Talk to a new child from now on (None: no child runs)."""
        with self._lock:
            old, self._sock = self._sock, sock
        if old is not None:
            old.close()

    def request(self, message: Mapping[str, object], timeout: float) -> JsonObject:
        """Send `message` and return the answer; raise `RouterUnreachableError` when no
        child runs or it does not answer within `timeout` seconds. An answer with an
        `error` is returned as it is, for the caller to raise."""
        deadline = time.monotonic() + timeout
        if not self._lock.acquire(timeout=timeout):
            raise RouterUnreachableError("the router process is busy with another request")
        try:
            sock = self._sock
            if sock is None:
                raise RouterUnreachableError("the router process is not running")
            self._sent += 1
            number = self._sent
            try:
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                send_message(sock, {**message, "request": number})
                while True:
                    answer = receive_message(sock)
                    if answer is None or answer.get("request") == number:
                        break
                    sock.settimeout(max(0.001, deadline - time.monotonic()))
            except TimeoutError:
                raise RouterUnreachableError(
                    f"the router process did not answer within {timeout:g} s") from None
            except (OSError, ValueError) as exc:
                answer = None
                log.warning("the router process's channel failed (%s)", type(exc).__name__)
            if answer is None:
                self._sock = None  # its next start brings a new channel
                sock.close()
                raise RouterUnreachableError("the router process ended")
            return answer
        finally:
            self._lock.release()


def serve_control(sock: socket.socket, handlers: Mapping[str, Handler]) -> None:
    """Answer requests on `sock` with `handlers` (by the request's `op`) until the
    parent closes its end. A handler's `HandoffError` is answered as an error the
    parent raises again (its type and message); any other exception too, logged."""
    with contextlib.closing(sock):
        while True:
            try:
                request = receive_message(sock)
            except (OSError, ValueError) as exc:
                log.warning("router process: unreadable request from the serving process "
                            "(%s); no more requests are taken", type(exc).__name__)
                return
            if request is None:
                return
            handler = handlers.get(str(request.get("op")))
            try:
                if handler is None:
                    raise BrokerError(f"unknown request {request.get('op')!r}")
                answer = handler(request)
            except Exception as exc:
                if not isinstance(exc, HandoffError):
                    log.exception("router process: request %r failed", request.get("op"))
                answer = {"error": type(exc).__name__, "message": str(exc)}
            try:
                answer = {**answer, "request": request.get("request")}
                send_message(sock, answer)
            except OSError:
                return
