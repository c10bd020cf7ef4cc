"""Reading request bodies with the size cap applied before anything is parsed, and
parsing JSON without letting a hostile document reach past a 4xx answer.

`broker.api.body_guard` caps every route's body as it arrives; `read_capped` applies a
route's own cap again where the route reads the body itself.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from broker.api.problems import ApiError, PayloadTooLarge, json_refusal


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


def parse_json(body: bytes | str, what: str = "the request body") -> Any:
    """Parse JSON; a malformed document, one nested deeper than the parser allows or
    holding a number of more than 4300 digits is a 400 problem, never a 500."""
    if not body.strip():
        raise MalformedJson(f"{what} is empty; send a JSON document")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, digit limit, UTF-8
        raise MalformedJson(json_refusal(exc).replace("the body", what, 1)) from None
