"""Bodies are authenticated before they are read and capped before they are parsed
(issue 10, item 5), against a running `handoff serve` over raw sockets, so the test
controls how much of a body has been sent when the answer comes.

A 50 MB body to any route that takes one, without a key, is answered 401 after a few
kilobytes, and the server closes the connection rather than read the rest; the server's
memory does not grow with what was offered. With a key, a body over its route's cap is
answered 413, whether its length is declared or it is streamed in chunks.
"""

from __future__ import annotations

import json
import select
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import DEMO, BrokerProcess, demo_keys

pytestmark = pytest.mark.slow

KEYS = demo_keys()
MB = 1_000_000
CHUNK = b"x" * 65536
BODY_ROUTES = {
    # route template -> (a path for it, the demo key allowed to call it)
    "/v1/events/{event_type}": ("/v1/events/birth", "county-general"),
    "/v1/events/{event_type}:batch": ("/v1/events/birth:batch", "county-general"),
    "/v1/explain": ("/v1/explain", "admin"),
    "/v1/registry/subjects/{subject}/versions": (
        "/v1/registry/subjects/events.birth-value/versions", "admin"),
    "/v1/registry/compatibility/subjects/{subject}/versions/{version}": (
        "/v1/registry/compatibility/subjects/events.birth-value/versions/latest", "admin"),
    "/v1/registry/subjects/{subject}": ("/v1/registry/subjects/events.birth-value", "admin"),
    "/v1/registry/compatibility/subjects/{subject}/versions": (
        "/v1/registry/compatibility/subjects/events.birth-value/versions", "admin"),
    "/v1/registry/config/{subject}": ("/v1/registry/config/events.birth-value", "admin"),
    "/v1/registry/config": ("/v1/registry/config", "admin"),
    "/v1/admin/policy:reload": ("/v1/admin/policy:reload", "admin"),
    "/v1/subscriptions/{subscription_id}/dead-letters:replay": (
        "/v1/subscriptions/hv-births/dead-letters:replay", "hv-nfp"),
    "/v1/subscriptions/{subscription_id}/webhook:enable": (
        "/v1/subscriptions/hv-births/webhook:enable", "hv-nfp"),
    "/v1/connectors/fhir/{connector}/Bundle": (
        "/v1/connectors/fhir/cgh-fhir/Bundle", "county-general"),
    "/v1/linkage/reviews/{review_id}:resolve": (
        "/v1/linkage/reviews/r1:resolve", "steward"),
    "/v1/linkage/records:unlink": ("/v1/linkage/records:unlink", "steward"),
    "/v1/linkage/persons/{person_id}:merge": ("/v1/linkage/persons/p1:merge", "steward"),
    "/v1/linkage/changes/{seq}:undo": ("/v1/linkage/changes/1:undo", "steward"),
}


@dataclass
class Answer:
    status: int
    sent: int
    """Body bytes sent when the status line arrived."""
    head: bytes
    problem: dict[str, object]


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[BrokerProcess]:
    root = tmp_path_factory.mktemp("bodies")
    # A copy of the demo bundle, which a test changes before asking for a reload.
    shutil.copytree(DEMO / "policy", root / "policy")
    process = BrokerProcess(data_dir=root / "data", policy_dir=root / "policy").start()
    try:
        yield process
    finally:
        process.stop()


def offer(broker: BrokerProcess, method: str, path: str, *, total: int,
          key: str | None = None, chunked: bool = True) -> Answer:
    """Send a request whose body is `total` bytes, a chunk at a time, watching for the
    answer before each chunk; stop sending once it came or the server stopped reading."""
    head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{broker.port}",
            "Content-Type: application/json"]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}")
    if key:
        head.append(f"Authorization: Bearer {KEYS[key]}")
    with socket.create_connection(("127.0.0.1", broker.port), timeout=30) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        sent = 0
        while sent < total:
            ready, _, _ = select.select([sock], [], [], 0.002 if sent else 0.2)
            if ready:
                break
            piece = CHUNK[: total - sent]
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            except OSError:  # the server closed the connection: it stopped reading
                break
            sent += len(piece)
        else:
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        received = b""
        deadline = time.monotonic() + 30
        while not _complete(received) and time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            received += data
    head, _, body = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1") else 0
    return Answer(status, sent, head, json.loads(body) if body.startswith(b"{") else {})


def _complete(received: bytes) -> bool:
    head, found, body = received.partition(b"\r\n\r\n")
    if not found:
        return False
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return True


def method_of(template: str) -> str:
    return "PUT" if template.startswith("/v1/registry/config") else "POST"


CONFLUENT_CODES = {401: 40101, 413: 413}


def refused(answer: Answer, path: str, status: int) -> None:
    """The answer is `status`, as a problem, or in Confluent's shape on registry routes."""
    assert answer.status == status, answer.head
    if path.startswith("/v1/registry/"):
        assert answer.problem["error_code"] == CONFLUENT_CODES[status], answer.problem
    else:
        slug = {401: "unauthenticated", 413: "payload-too-large"}[status]
        assert answer.problem["type"] == f"/problems/{slug}", answer.problem


def template_of(path: str) -> str:
    """The route template of an OpenAPI path, which lists each event type's routes."""
    if path.startswith("/v1/events/"):
        return "/v1/events/{event_type}" + (":batch" if path.endswith(":batch") else "")
    return path


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_every_route_with_a_body_is_listed_here(broker):
    paths = httpx.get(f"{broker.url}/openapi.json").json()["paths"]
    with_body = {template_of(path) for path, item in paths.items()
                 if any(m in item for m in ("post", "put", "patch"))}
    assert with_body == set(BODY_ROUTES), "add the new route to BODY_ROUTES"


@pytest.mark.parametrize("template", sorted(BODY_ROUTES))
def test_a_body_without_a_key_is_refused_before_it_is_read(broker, template):
    path, _ = BODY_ROUTES[template]
    answer = offer(broker, method_of(template), path, total=50 * MB)
    refused(answer, path, 401)
    assert answer.sent < 2 * MB, f"answered only after {answer.sent} bytes of the body"


def test_fifty_megabyte_bodies_without_a_key_do_not_grow_the_server(broker):
    assert broker.proc is not None
    before = rss_kib(broker.proc.pid)
    for _ in range(4):
        answer = offer(broker, "POST", "/v1/explain", total=50 * MB)
        assert answer.status == 401 and answer.sent < 2 * MB
    declared = offer(broker, "POST", "/v1/explain", total=50 * MB, chunked=False)
    assert declared.status == 401 and declared.sent < 2 * MB
    assert rss_kib(broker.proc.pid) - before < 20_000


@pytest.mark.parametrize("template", sorted(BODY_ROUTES))
def test_a_declared_body_over_the_cap_is_refused_unread(broker, template):
    path, key = BODY_ROUTES[template]
    # Over the route's cap, under the batch route's: refused by the route's own cap,
    # before the route runs, whether it would read its body or not (a policy reload, a
    # webhook's enabling, a FHIR connector this broker does not have).
    total = 20 * MB if template.endswith(":batch") else 8 * MB
    answer = offer(broker, method_of(template), path, total=total, key=key, chunked=False)
    assert answer.sent < 2 * MB
    refused(answer, path, 413)
    assert b"connection: close" in answer.head.lower()


def test_a_reload_declaring_a_body_over_the_cap_is_refused_and_loads_nothing(broker):
    admin = {"Authorization": f"Bearer {KEYS['admin']}"}
    before = httpx.get(f"{broker.url}/readyz").json()["checks"]["policy"]
    agencies = broker.policy_dir / "agencies.yaml"
    agencies.write_text(agencies.read_text().replace(
        "name: County General Hospital", "name: County General Medical Center"))
    answer = offer(broker, "POST", "/v1/admin/policy:reload", total=8 * MB, key="admin",
                   chunked=False)
    refused(answer, "/v1/admin/policy:reload", 413)
    assert answer.sent < 2 * MB
    assert httpx.get(f"{broker.url}/readyz").json()["checks"]["policy"] == before
    # The changed folder was there to load: a reload without the body loads it.
    reloaded = httpx.post(f"{broker.url}/v1/admin/policy:reload", headers=admin,
                          timeout=60)
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json()["previous"] == before != reloaded.json()["version"]


def test_a_declared_body_over_every_cap_is_refused_before_routing(broker):
    answer = offer(broker, "POST", "/v1/explain", total=40 * MB, key="admin",
                   chunked=False)
    refused(answer, "/v1/explain", 413)
    assert answer.sent < 2 * MB


@pytest.mark.parametrize(("path", "key", "cap"), [
    ("/v1/explain", "admin", 1 * 1024 * 1024),
    ("/v1/registry/compatibility/subjects/events.birth-value/versions/latest", "admin",
     1 * 1024 * 1024),
    ("/v1/events/birth", "county-general", 1 * 1024 * 1024),
    ("/v1/events/birth:batch", "county-general", 16 * 1024 * 1024),
])
def test_a_streamed_body_over_the_cap_is_refused_at_the_cap(broker, path, key, cap):
    answer = offer(broker, "POST", path, total=cap + 4 * len(CHUNK), key=key)
    refused(answer, path, 413)
