"""Checking what clients send before anything else looks at it."""

from __future__ import annotations

import json
import re
import os
from typing import Any

from starlette.requests import Request

from .errors import BadRequest, PayloadTooLarge

ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
MAX_SESSION_ID = 256
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_PRINTABLE_ASCII = re.compile(r"^[\x21-\x7e]+$")


async def read_body(request: Request, limit: int) -> dict[str, Any]:
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
        raise BadRequest("request body is empty; send a JSON object with a `messages` list")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"request body is not valid UTF-8 (bad byte at position {exc.start})") from None
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(body, dict):
        raise BadRequest(f"request body must be a JSON object, got {type(body).__name__}")
    check_chat_body(body)
    return body


def check_chat_body(body: dict[str, Any]) -> None:
    """Raise BadRequest naming the first field of a chat request that is wrong."""
    messages = body.get("messages")
    if messages is None:
        raise BadRequest("`messages` is required: a list of {role, content} objects", param="messages")
    if not isinstance(messages, list):
        raise BadRequest(f"`messages` must be a list, got {type(messages).__name__}", param="messages")
    if not messages:
        raise BadRequest("`messages` must contain at least one message", param="messages")
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise BadRequest(f"{where} must be an object with `role` and `content`", param=where)
        role = message.get("role")
        if role not in ROLES:
            raise BadRequest(f"{where}.role {role!r} is not one of: {', '.join(sorted(ROLES))}", param=f"{where}.role")
        content = message.get("content")
        if content is None:
            if role in ("user", "system", "developer") :
                raise BadRequest(f"{where}.content is required for a {role} message", param=f"{where}.content")
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise BadRequest(f"{where}.content[{j}] must be an object with a `type`",
                                     param=f"{where}.content[{j}]")
        elif not isinstance(content, str):
            raise BadRequest(f"{where}.content must be a string or a list of content parts, "
                             f"got {type(content).__name__}", param=f"{where}.content")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise BadRequest(f"`stream` must be true or false, got {json.dumps(stream)[:40]}", param="stream")


def session_id(request: Request) -> str | None:
    """The X-Session-Id header, validated; None when absent."""
    value = request.headers.get("x-session-id")
    if value is None:
        return None
    check_session_id(value)
    return value


def check_session_id(value: str) -> None:
    """BadRequest unless `value` is a usable session id."""
    if not value:
        raise BadRequest("X-Session-Id is empty; send a non-empty id or omit the header", param="X-Session-Id")
    if len(value) > MAX_SESSION_ID:
        raise BadRequest(f"X-Session-Id is {len(value)} characters; the limit is {MAX_SESSION_ID}",
                         param="X-Session-Id")
    if not _PRINTABLE_ASCII.match(value):
        raise BadRequest("X-Session-Id must be printable ASCII without spaces (e.g. a UUID)",
                         param="X-Session-Id")


def trace_id(request: Request) -> str:
    """The trace id of a W3C `traceparent` header, else a fresh one."""
    header = request.headers.get("traceparent")
    match = _TRACEPARENT.match(header.strip().lower()) if header else None
    if match and match.group(1) != "0" * 32:
        return match.group(1)
    return os.urandom(16).hex()  # a W3C trace id: 16 random bytes (uuid4 costs 5x more)
