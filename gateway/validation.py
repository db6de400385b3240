"""Reading what clients send: the JSON body (bounded), the shared `stream` flag, the trace id.

Each API surface checks the rest of its own body (`api/chat.py`, `messages.py`, `responses.py`).
"""

from __future__ import annotations

import json
import re
import os
from typing import Any

from starlette.requests import Request

from .errors import BadRequest, PayloadTooLarge

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The JSON object in the request body, read no further than `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {int(declared)} bytes; this gateway accepts at most {limit} "
                              f"(gateway.max_body_bytes in config.yaml)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes; send a smaller conversation "
                                  f"or raise gateway.max_body_bytes in config.yaml")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise BadRequest("request body is empty; send a JSON object (see README, API)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"request body is not valid UTF-8 (bad byte at position {exc.start})") from None
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise BadRequest("request body nests arrays or objects too deeply to read; flatten it") from None
    if not isinstance(body, dict):
        raise BadRequest(f"request body must be a JSON object, got {type(body).__name__}")
    return body


def check_stream_flag(body: dict[str, Any]) -> None:
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise BadRequest(f"`stream` must be true or false, got {json.dumps(stream)[:40]}", param="stream")


def trace_id(request: Request) -> str:
    """The trace id of a W3C `traceparent` header, else a fresh one."""
    header = request.headers.get("traceparent")
    match = _TRACEPARENT.match(header.strip().lower()) if header else None
    if match and match.group(1) != "0" * 32:
        return match.group(1)
    return os.urandom(16).hex()  # a W3C trace id: 16 random bytes (cheaper than uuid4)
