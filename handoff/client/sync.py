"""`HandoffClient`: the HTTP API from Python, blocking (httpx)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import httpx

from handoff.client import calls
from handoff.client.avro import WriterSchema
from handoff.client.calls import Call
from handoff.client.cursors import CursorStore
from handoff.client.errors import HandoffApiError, TransportError, error_for
from handoff.client.results import (
    AuditRecord,
    DecisionPage,
    Delivery,
    Disclosures,
    Explanation,
    Json,
    Page,
    Placed,
)
from handoff.client.retry import RETRY_STATUSES, RetryPolicy
from handoff.client.sse import SseParser

STREAM_READ_TIMEOUT = 60.0
"""Longer than the broker's 15-second keep-alive: silence this long means a dead link."""


class HandoffClient:
    """One agency's API key against one broker.

    ```python
    with HandoffClient("http://localhost:8080", key) as handoff:
        placed = handoff.publish("birth", event)
    ```

    Requests that fail to connect or are answered 429/502/503/504 are retried with
    backoff (`retry`); publishing stays idempotent across retries because each event
    gets its `event_id` before the first attempt. A refusal raises a `HandoffApiError`
    subclass carrying the problem details.
    """

    def __init__(self, base_url: str, key: str, *, timeout: float = 30.0,
                 retry: RetryPolicy | None = None,
                 transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout,
                                  headers={"Authorization": f"Bearer {key}"},
                                  transport=transport)
        self._timeout = timeout
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._writers: dict[str, WriterSchema] = {}

    def __enter__(self) -> HandoffClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- sending ----------------------------------------------------------------------

    def _send(self, call: Call, timeout: float | None = None) -> Json:
        delays = self._retry.delays()
        while True:
            try:
                response = self._http.request(
                    call.method, call.path, params=dict(call.params), headers=dict(call.headers),
                    json=call.json if call.content is None else None, content=call.content,
                    timeout=timeout or self._timeout)
            except httpx.TransportError as exc:
                backoff = next(delays, None)
                if backoff is None:
                    raise TransportError(f"{call.method} {call.path}: {exc}") from exc
                self._sleep(backoff)
                continue
            if response.status_code in RETRY_STATUSES:
                backoff = next(delays, None)
                if backoff is not None:
                    self._sleep(self._retry.wait_for(backoff,
                                                     response.headers.get("retry-after")))
                    continue
            return _answer(response)

    # -- publishing -------------------------------------------------------------------

    def publish(self, event_type: str, event: Mapping[str, Json], *, avro: bool = False
                ) -> Placed:
        """Publish one event (as JSON, or `avro=True` in the wire format with the
        latest registered schema). An event without `event_id` is given one."""
        event = calls.with_event_id(event)
        if avro:
            payload = self._writer(event_type).encode(event)
            return calls.placed(self._send(calls.publish_avro(event_type, payload)))
        return calls.placed(self._send(calls.publish(event_type, event)))

    def publish_many(self, event_type: str, events: Iterable[Mapping[str, Json]]
                     ) -> tuple[Placed, ...]:
        """Publish a batch, all or none; answers in the order given."""
        batch = [calls.with_event_id(e) for e in events]
        return calls.placed_batch(self._send(calls.publish_batch(event_type, batch)))

    def _writer(self, event_type: str) -> WriterSchema:
        found = self._writers.get(event_type)
        if found is None:
            found = self._writers[event_type] = WriterSchema.from_registry(
                self._send(calls.latest_schema(event_type)))
        return found

    # -- receiving --------------------------------------------------------------------

    def pull(self, subscription: str, *, after: str | None = None, limit: int = 100,
             wait: float = 0) -> Page:
        """One page of deliveries after `after` (from the start when None), waiting up
        to `wait` seconds for one to arrive."""
        return calls.page(self._send(calls.pull(subscription, after, limit, wait),
                                     timeout=self._timeout + wait))

    def pages(self, subscription: str, cursors: CursorStore, *, limit: int = 100,
              wait: float = 10, until_empty: bool = False) -> Iterator[Page]:
        """Pages from the saved cursor on. A page's cursor is saved when the next page
        is asked for, that is once the caller has handled it (at least once). With
        `until_empty`, stops after the first empty page."""
        cursor = cursors.load(subscription)
        while True:
            page = self.pull(subscription, after=cursor, limit=limit, wait=wait)
            yield page
            if page.next_cursor and page.next_cursor != cursor:
                cursors.save(subscription, page.next_cursor)
                cursor = page.next_cursor
            if until_empty and not page.deliveries:
                return

    def stream(self, subscription: str, *, last_event_id: str | None = None,
               cursors: CursorStore | None = None) -> Iterator[Delivery]:
        """Deliveries as they arrive (server-sent events), for as long as the caller
        iterates. A broken connection is resumed after the last delivery handled
        (`Last-Event-ID`); with `cursors`, the stream starts from the saved cursor and
        saves each delivery's cursor once the caller has handled it."""
        position = last_event_id or (cursors.load(subscription) if cursors else None)
        delays = self._retry.delays()
        timeout = httpx.Timeout(self._timeout, read=STREAM_READ_TIMEOUT)
        while True:
            call = calls.stream(subscription, position)
            try:
                with self._http.stream(call.method, call.path, headers=dict(call.headers),
                                       timeout=timeout) as response:
                    if response.status_code in RETRY_STATUSES:
                        raise httpx.ReadError(f"answered {response.status_code}")
                    if response.status_code >= 400:
                        response.read()
                        raise error_of(response)
                    parser = SseParser()
                    for line in response.iter_lines():
                        message = parser.feed(line)
                        if message is None:
                            continue
                        if message.event == "end":
                            return
                        delivery = Delivery.from_json(json.loads(message.data))
                        delays = self._retry.delays()     # it works again: fresh backoff
                        yield delivery
                        position = message.id or delivery.cursor
                        if cursors is not None:
                            cursors.save(subscription, position)
            except httpx.TransportError as exc:
                backoff = next(delays, None)
                if backoff is None:
                    raise TransportError(f"stream of {subscription}: {exc}") from exc
                self._sleep(backoff)
                continue
            backoff = next(delays, None)   # the broker ended the stream: resume
            if backoff is None:
                raise TransportError(f"stream of {subscription} keeps ending")
            self._sleep(backoff)

    # -- policy and audit -------------------------------------------------------------

    def explain(self, event_type: str, source: str, subscription: str,
                event: Mapping[str, Json], *, consents: Sequence[Mapping[str, Json]] = (),
                at_ms: int | None = None, consents_recorded_by: str | None = None
                ) -> Explanation:
        """What `subscription` would receive of `event` published by `source`, and why;
        only the `consents` given are used."""
        return calls.explanation(self._send(calls.explain(
            event_type, source, subscription, event, consents, at_ms, consents_recorded_by)))

    def decisions(self, *, after: int = 0, limit: int = 100,
                  **filters: str | int | None) -> DecisionPage:
        """One page of policy decisions (auditor keys): filters `subject`, `recipient`,
        `agreement`, `subscription`, `outcome`, `since`, `until` (ISO 8601)."""
        return calls.decision_page(self._send(calls.decisions(filters, after, limit)))

    def iter_decisions(self, *, limit: int = 500, **filters: str | int | None
                       ) -> Iterator[AuditRecord]:
        """Every decision matching the filters, page after page."""
        after = 0
        while True:
            page = self.decisions(after=after, limit=limit, **filters)
            yield from page.records
            if not page.records or page.next_after == after:
                return
            after = page.next_after

    def disclosures(self, subject_id: str, *, since: str | None = None,
                    until: str | None = None) -> Disclosures:
        """The accounting of disclosures for one person (auditor keys)."""
        return calls.disclosure_list(self._send(calls.disclosures(subject_id, since, until)))


def _body(response: httpx.Response) -> Json:
    try:
        body: Json = response.json()
    except ValueError:
        body = None
    return body


def error_of(response: httpx.Response) -> HandoffApiError:
    """The exception for an error answer (its body read)."""
    return error_for(response.status_code, _body(response))


def _answer(response: httpx.Response) -> Json:
    """The JSON of a successful answer; an error answer raises its exception."""
    if response.status_code >= 400:
        raise error_of(response)
    return _body(response)
