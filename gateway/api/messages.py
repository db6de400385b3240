"""Anthropic Messages: `POST /v1/messages` (Claude Code, the Anthropic SDK), count_tokens, and the decision twin.

This module knows the Messages wire format: how a request is checked, what
the router reads from it (the user's text, not tool results, thinking or the
system prompt), where a stream ends and carries usage, and Anthropic's error
shape. Claude Code adds `?beta=true` to every call and sends fields this
gateway does not know (`thinking`, `context_management`, `output_config`);
they pass through untouched to an Anthropic-format provider.

An agent CLI sends its own default model name (Claude Code: its newest Claude),
which the config may not list; here such a name lets the gateway choose
rather than failing (README, "Model names from agent CLIs").
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.routing import Route
from starlette.responses import JSONResponse, Response

from .. import validation
from ..conversation import ends_of, opening, text_of
from ..decision import Ask
from ..errors import BadRequest, GatewayError
from ..observe import RequestRecord
from ..upstream import token_usage
from . import flow
from .chat import RoutingDecision

FORWARD = "/v1/messages"
DECISION = "/routing/v1/messages"
COUNT = "/v1/messages/count_tokens"
ROLES = ("user", "assistant", "system")  # Claude Code sends `system` turns inside `messages` (a beta)
PASSED_HEADERS = ("anthropic-version", "anthropic-beta")

# Anthropic's error `type` for each status a client can get from the gateway.
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 405: "invalid_request_error", 413: "request_too_large",
               429: "rate_limit_error", 503: "overloaded_error"}


class MessagesWire:
    """Messages on the wire: `event: <type>` + `data: {...}` pairs, ending with `message_stop`."""

    name = "messages"

    def finished(self, event: dict[str, Any] | None) -> bool:
        return event is not None and event.get("type") == "message_stop"

    def failed(self, event: dict[str, Any]) -> bool:
        return event.get("type") == "error"

    def usage(self, body: dict[str, Any]) -> dict[str, int] | None:
        # A stream's message_start carries it inside `message`, message_delta at the top.
        return token_usage(body, "message", "input_tokens", "output_tokens")

    def error_event(self, code: str, message: str) -> bytes:
        error = {"type": "error", "error": {"type": "api_error", "message": f"stream interrupted: {message}"}}
        return b"event: error\ndata: " + json.dumps(error).encode() + b"\n\n"


def error_body(error: GatewayError) -> dict[str, Any]:
    kind = ERROR_TYPES.get(error.status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": error.message}}


def check_messages_body(body: dict[str, Any]) -> None:
    """Raise BadRequest naming the first field of a Messages request that is wrong."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("`messages` is required: a non-empty list of {role, content} objects", param="messages")
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise BadRequest(f"{where} must be an object with `role` and `content`", param=where)
        if message.get("role") not in ROLES:
            raise BadRequest(f"{where}.role must be user or assistant (or system), got {message.get('role')!r}",
                             param=f"{where}.role")
        content = message.get("content")
        if isinstance(content, list):
            for j, block in enumerate(content):
                if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                    raise BadRequest(f"{where}.content.{j} must be a content block with a `type`",
                                     param=f"{where}.content.{j}")
                if block["type"] == "text" and not isinstance(block.get("text"), str):
                    raise BadRequest(f"{where}.content.{j}.text must be a string", param=f"{where}.content.{j}.text")
        elif not isinstance(content, str):
            raise BadRequest(f"{where}.content must be a string or a list of content blocks", param=f"{where}.content")
    system = body.get("system")
    if system is not None and not (isinstance(system, str) or (isinstance(system, list) and all(
            isinstance(b, dict) and isinstance(b.get("text"), str) for b in system))):
        raise BadRequest("`system` must be a string or a list of text blocks ({type: text, text: ...})",
                         param="system")
    if body.get("tools") is not None and not isinstance(body["tools"], list):
        raise BadRequest("`tools` must be a list of tool definitions", param="tools")
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1):
        raise BadRequest(f"`max_tokens` must be a positive whole number, got {json.dumps(max_tokens)[:40]}",
                         param="max_tokens")
    validation.check_stream_flag(body)


def router_turns(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """User and assistant text as chat turns: tool results, tool calls, thinking and images left out."""
    turns = []
    for message in messages:
        role = message.get("role")
        if role not in ("user", "assistant"):
            continue
        text = ends_of(message.get("content"))  # text blocks only (both ends of a long one); agent context blocks skipped
        if text.strip():
            turns.append({"role": role, "content": text})
    return turns


def _is_tool_turn(message: dict[str, Any]) -> bool:
    content = message.get("content")
    return (message.get("role") == "user" and isinstance(content, list)
            and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content)
            and not text_of(content).strip())


def _opening(body: dict[str, Any]) -> str:
    system = body.get("system")
    return opening(system if isinstance(system, str) else text_of(system),
                   (text_of(m.get("content")) for m in body["messages"] if m.get("role") == "user"))


class MessagesSurface(flow.SurfaceDefaults):
    wire = MessagesWire()
    forward_path = FORWARD
    decision_path = DECISION

    def ask(self, body: dict[str, Any]) -> Ask:
        check_messages_body(body)
        messages = body["messages"]
        return Ask(lambda: router_turns(messages), body.get("model"), any_model=True,
                   opening=lambda: _opening(body), tool_turn=_is_tool_turn(messages[-1]))

    def check_forward(self, body: dict[str, Any]) -> None:
        if body.get("max_tokens") is None:  # the decision endpoints and count_tokens do without it
            raise BadRequest("`max_tokens` is required: the most tokens the answer may have, e.g. 1024",
                             param="max_tokens")

    def upstream_headers(self, request: Request) -> dict[str, str]:
        headers = request.headers
        return {name: headers[name] for name in PASSED_HEADERS if name in headers}

    def error_body(self, error: GatewayError) -> dict[str, Any]:
        return error_body(error)


SURFACE = MessagesSurface()


async def create_message(request: Request) -> Response:
    return await flow.forward(request, SURFACE)


async def message_decision(request: Request) -> Response:
    return await flow.answer_decision(request, SURFACE)


async def count_tokens(request: Request) -> Response:
    """Token count of a Messages request for the model that would serve it (estimated unless it is Claude)."""
    gw = flow.gateway_of(request)
    record = RequestRecord(COUNT)
    body, decision, _ = await flow.decide(gw, request, SURFACE, record)
    count = await gw.forwarder.count_tokens(decision.provider, SURFACE.wire, body, SURFACE.upstream_headers(request))
    gw.observer.finish(record)
    return JSONResponse({"input_tokens": count}, headers=flow.decision_headers(decision, record.trace_id or ""))


# -- the documentation's view of these endpoints --


class MessagesRequest(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"model": "claude-sonnet-4-20250514", "max_tokens": 1024,
         "messages": [{"role": "user", "content": "Write a Python function that merges two sorted lists."}]}]})
    model: str | None = Field(None, description="a configured model or alias; an unknown name lets the gateway choose")
    messages: list[dict[str, Any]]
    max_tokens: int | None = None
    system: str | list[dict[str, Any]] | None = None
    stream: bool = False


# The hot endpoints are plain Starlette routes, mounted at the top of the app by
# `create_app`: no dependency solving, no response model, no nested router on
# their path. Their OpenAPI entries come from DOCS below.
ROUTES = [
    Route(FORWARD, create_message, methods=["POST"]),
    Route(DECISION, message_decision, methods=["POST"]),
    Route(COUNT, count_tokens, methods=["POST"]),
]

DOCS = [
    (FORWARD, "Anthropic Messages, forwarded to the chosen model (relayed to Claude, translated for others)",
     MessagesRequest, None, "Claude Code's `?beta=true` is accepted. Errors come in Anthropic's shape."),
    (DECISION, "Routing decision only, for a Messages request", MessagesRequest, RoutingDecision,
     "Answers exactly like /routing/v1/chat/completions; sessions are shared with every endpoint."),
    (COUNT, "Input tokens of a Messages request for the model that would serve it", MessagesRequest, None,
     "Asked of the provider when it is Anthropic-format, otherwise counted with litellm's tokenizer."),
]
