"""Reading request bodies with the size cap applied before anything is parsed."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from broker.api.problems import ApiError, PayloadTooLarge


class MalformedJson(ApiError):
    status, slug, title = 400, "malformed-json", "Malformed JSON"


async def read_capped(request: Request, cap: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the limit of {cap} bytes")
    size = 0
    chunks: list[bytes] = []
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise PayloadTooLarge(f"body exceeds the limit of {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise MalformedJson("the request body is empty; send a JSON document")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(
            exc, json.JSONDecodeError) else ""
        raise MalformedJson(f"the body is not valid JSON{where}") from None
