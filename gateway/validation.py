"""Reading what clients send: the JSON body (bounded), the shared `stream` flag, the trace id.

Each API surface checks the rest of its own body (`api/chat.py`, `messages.py`, `responses.py`).
"""

from __future__ import annotations

import json
import re
import os
import sys
from typing import Any

from starlette.requests import Request

from .errors import BadRequest, PayloadTooLarge

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
# Real requests nest a few levels (tool schemas perhaps twenty); litellm breaks a few hundred down.
MAX_DEPTH = 128
# A JSON escape of one half of a UTF-16 surrogate pair, \ud800-\udfff; group 1 says which half.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD]([89a-fA-F])[0-9a-fA-F]{2}")


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
    body = _parse(text)
    if not isinstance(body, dict):
        raise BadRequest(f"request body must be a JSON object, got {type(body).__name__}")
    _check_depth(body)
    if _unpaired_surrogate_escape(raw):
        _check_unicode(body)
    return body


def _parse(text: str) -> Any:
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise BadRequest(f"request body nests arrays or objects too deeply to read; keep it within {MAX_DEPTH} "
                         "levels") from None
    except ValueError as exc:  # Python refuses to read integers of more than 4,300 digits
        if "digits" not in str(exc):
            raise
        raise BadRequest(f"request body has a number too long to read ({_digits(exc)}); send numbers of at most "
                         f"{sys.get_int_max_str_digits()} digits, or very long ones as strings") from None


def _refuse_constant(name: str) -> Any:
    raise BadRequest(f"request body is not valid JSON: {name} is not a JSON number; send null or a finite number")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)  # one, as json.loads keeps for its defaults


def _digits(exc: ValueError) -> str:
    match = re.search(r"value has (\d+) digits", str(exc))
    return f"{match.group(1)} digits" if match else "too many digits"


def _check_depth(body: dict[str, Any]) -> None:
    """BadRequest if arrays and objects nest deeper than MAX_DEPTH.

    Python's JSON reader accepts nearly 1,000 levels, but litellm copies a
    request recursively (about two stack frames a level) and fails a few
    hundred levels down, which would look like a provider failure and be
    retried and failed over. One level at a time, in comprehensions: about
    0.1 µs per array or object (0.3 ms for a 300 KB agent conversation).
    """
    level: list[Any] = [body]
    for _ in range(MAX_DEPTH):
        level = [child for value in level for child in (value.values() if type(value) is dict else value)
                 if type(child) is dict or type(child) is list]
        if not level:
            return
    raise BadRequest(f"request body nests arrays or objects more than {MAX_DEPTH} levels deep; flatten it")


def _unpaired_surrogate_escape(raw: bytes) -> bool:
    """Whether the raw body may escape half a surrogate pair without the other half.

    Whole pairs (an emoji written by an ASCII-only encoder as "\\ud83d\\ude00")
    are one character once read and pass. A hit is confirmed on the parsed
    body, so an escaped backslash before "ud800" costs only that check.
    """
    low_expected_at = -1
    for match in _SURROGATE_ESCAPE.finditer(raw):
        high = match.group(1) in b"89abAB"
        if low_expected_at >= 0:
            if high or match.start() != low_expected_at:
                return True
            low_expected_at = -1
        elif high:
            low_expected_at = match.end()
        else:
            return True
    return low_expected_at >= 0


def _check_unicode(body: Any) -> None:
    """BadRequest naming a string that holds half of a UTF-16 surrogate pair alone (`"\\ud800"`).

    JSON allows such escapes but they are no text: encoding the string for a
    provider fails. Only called when the raw body seems to have one.
    """
    stack: list[tuple[Any, str]] = [(body, "")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise BadRequest(f"request body has an unpaired UTF-16 surrogate (\\u{ord(value[exc.start]):04x}) "
                                 f"in {where}; send the character itself, or both halves of its surrogate pair",
                                 param=where) from None
        elif isinstance(value, dict):
            for key, child in value.items():
                stack.append((key, f"a field name in {where or 'the body'}"))
                stack.append((child, f"{where}.{key}" if where else key))
        elif isinstance(value, list):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(value))


def check_role(role: Any, allowed: set[str] | tuple[str, ...], where: str) -> None:
    """BadRequest unless `role` is one of `allowed` (a list or object is no role, and unhashable)."""
    if not isinstance(role, str) or role not in allowed:
        raise BadRequest(f"{where}.role {role!r} is not one of: {', '.join(sorted(allowed))}", param=f"{where}.role")


def check_content_parts(parts: list[Any], where: str) -> None:
    """BadRequest unless every content part in `parts` is an object with a string `type`."""
    for j, part in enumerate(parts):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise BadRequest(f"{where}[{j}] must be a content part object with a `type`", param=f"{where}[{j}]")


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
