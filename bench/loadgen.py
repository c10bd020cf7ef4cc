"""A small HTTP/1.1 load generator on raw asyncio streams.

General-purpose clients cost several hundred microseconds of CPU per request; on a
2-core machine shared with the broker that would measure the client, not the broker.
Requests here are pre-encoded bytes on keep-alive connections, so the client's cost per
request is a write and a parse of the status line and headers.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any


def encode_post(path: str, host: str, headers: dict[str, str], body: Any) -> bytes:
    payload = json.dumps(body, separators=(",", ":")).encode()
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json",
             f"Content-Length: {len(payload)}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        status_line = await self.reader.readline()
        if not status_line:
            # The server closed the connection while it was idle (uvicorn does after 5 s).
            raise ConnectionResetError("the server closed the connection")
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        self.writer.close()


class ConnectionPool:
    """A fixed number of keep-alive connections, handed out one request at a time."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port, self.size = host, port, size
        self.free: asyncio.Queue[Connection] = asyncio.Queue()

    async def open(self) -> None:
        for _ in range(self.size):
            self.free.put_nowait(await Connection.open(self.host, self.port))

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send on a free connection; one that the server closed while it sat idle is
        opened again and the request sent once more."""
        connection = await self.free.get()
        try:
            try:
                return await connection.request(raw)
            except ConnectionError:
                connection.close()
                connection = await Connection.open(self.host, self.port)
                return await connection.request(raw)
        finally:
            self.free.put_nowait(connection)

    def close(self) -> None:
        while not self.free.empty():
            self.free.get_nowait().close()
