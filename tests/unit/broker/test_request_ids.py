"""Every response names its request with an id of its own (`X-Request-Id`), which the
logs use to find the request (`broker.api.request_ids`)."""

from __future__ import annotations

import asyncio
import os
import re

from starlette.types import Message, Receive, Scope, Send

from broker.api.request_ids import RequestIdMiddleware


async def answer(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 202, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def request_ids(count: int) -> list[str]:
    app = RequestIdMiddleware(answer)
    ids: list[str] = []

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def run() -> None:
        for _ in range(count):
            sent.clear()
            scope = {"type": "http", "headers": [(b"x-request-id", b"client-chosen")]}
            await app(scope, receive, send)
            ids.extend(value.decode() for name, value in sent[0]["headers"]
                       if name == b"x-request-id")

    asyncio.run(run())
    return ids


def test_each_response_has_its_own_id_of_32_hex_digits_not_the_clients() -> None:
    ids = request_ids(2000)
    assert len(ids) == 2000
    assert len(set(ids)) == 2000
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_a_forked_process_does_not_repeat_its_parents_ids() -> None:
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:   # the child: write its ids and leave at once
        os.close(reader)
        os.write(writer, " ".join(request_ids(50)).encode())
        os._exit(0)
    os.close(writer)
    parent = request_ids(50)
    with os.fdopen(reader) as pipe:
        child = pipe.read().split()
    os.waitpid(pid, 0)
    assert len(child) == 50
    assert not set(child) & set(parent)
