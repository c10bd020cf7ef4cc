"""The channel between `handoff serve` and its router process: requests answered in
order, errors passed back by type, and a router that is gone or silent is said so
instead of hanging the caller."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Mapping

import pytest

from broker.cli.router_control import (
    ControlClient,
    JsonObject,
    RouterUnreachableError,
    serve_control,
)
from broker.linking.forwarding import forwarding
from broker.linking.service import LinkageReadOnlyError
from linkage.errors import UnknownReviewError


def echo(request: Mapping[str, object]) -> JsonObject:
    return {"got": request.get("n")}


def unknown_review(request: Mapping[str, object]) -> JsonObject:
    raise UnknownReviewError("no review item with that id")


def slow(request: Mapping[str, object]) -> JsonObject:
    time.sleep(1)
    return {}


@pytest.fixture
def client() -> Iterator[ControlClient]:
    ours, theirs = socket.socketpair()
    handlers = {"echo": echo, "linkage": unknown_review, "slow": slow}
    server = threading.Thread(target=serve_control, args=(theirs, handlers), daemon=True)
    server.start()
    control = ControlClient()
    control.attach(ours)
    yield control
    control.attach(None)
    server.join(5)


def test_requests_are_answered_in_order(client: ControlClient):
    assert [client.request({"op": "echo", "n": n}, 5)["got"] for n in range(50)] == \
        list(range(50))


def test_an_unknown_request_is_answered_with_an_error(client: ControlClient):
    assert client.request({"op": "nothing"}, 5)["error"] == "BrokerError"


def test_a_forwarded_clerical_change_raises_the_linking_process_error(client: ControlClient):
    forward = forwarding(client.request)
    with pytest.raises(UnknownReviewError, match="no review item"):
        forward({"change": "resolve_review", "review_id": "r1", "decision": "same",
                 "by": "steward"})


def test_a_silent_router_process_is_an_error_not_a_hang(client: ControlClient):
    with pytest.raises(RouterUnreachableError, match="did not answer"):
        client.request({"op": "slow"}, 0.2)
    # Its late answer is dropped, not taken for the next request's.
    assert client.request({"op": "echo", "n": 1}, 5) == {"got": 1, "request": 2}


def test_a_router_process_that_is_gone_is_said_so():
    ours, theirs = socket.socketpair()
    theirs.close()
    control = ControlClient()
    control.attach(ours)
    with pytest.raises(RouterUnreachableError):
        control.request({"op": "echo"}, 5)
    forward = forwarding(control.request)
    with pytest.raises(LinkageReadOnlyError, match="try again"):
        forward({"change": "undo", "seq": 1, "by": "steward", "reason": "other"})
