"""OpenAI Chat Completions: `POST /v1/chat/completions` and its decision-only twin under /routing.

This module knows the chat wire format: how a request is checked, what the
router reads from it, where a stream ends and carries usage, how errors look.
Pins, routing and forwarding live in the shared flow.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.routing import Route
from starlette.responses import Response

from .. import validation
from ..conversation import opening, text_of
from ..decision import Ask
from ..errors import BadRequest
from ..upstream import token_usage
from . import flow

FORWARD = "/v1/chat/completions"
DECISION = "/routing/v1/chat/completions"


ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


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
        if not isinstance(role, str) or role not in ROLES:  # a list or object is no role (and unhashable)
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
    validation.check_stream_flag(body)


class ChatWire:
    """Chat Completions on the wire: `data: {chunk}` events ending with `data: [DONE]`."""

    name = "chat"

    def finished(self, event: dict[str, Any] | None) -> bool:
        return event is None

    def failed(self, event: dict[str, Any]) -> bool:
        return "error" in event

    def usage(self, body: dict[str, Any]) -> dict[str, int] | None:
        return token_usage(body, None, "prompt_tokens", "completion_tokens")

    def error_event(self, code: str, message: str) -> bytes:
        error = {"error": {"message": f"stream interrupted: {message}", "type": "upstream_error", "code": code}}
        return b"data: " + json.dumps(error).encode() + b"\n\n"


class ChatSurface(flow.SurfaceDefaults):
    wire = ChatWire()
    forward_path = FORWARD
    decision_path = DECISION

    def ask(self, body: dict[str, Any]) -> Ask:
        check_chat_body(body)
        messages = body["messages"]
        last = messages[-1]
        return Ask(messages, body.get("model"), opening=lambda: _opening(messages),
                   tool_turn=last.get("role") in ("tool", "function"))


def _opening(messages: list[dict[str, Any]]) -> str:
    system = "\n".join(text_of(m.get("content")) for m in messages if m.get("role") in ("system", "developer"))
    return opening(system, (text_of(m.get("content")) for m in messages if m.get("role") == "user"))


SURFACE = ChatSurface()


async def chat_completions(request: Request) -> Response:
    return await flow.forward(request, SURFACE)


async def chat_decision(request: Request) -> Response:
    return await flow.answer_decision(request, SURFACE)


# -- the documentation's view of these endpoints (bodies are checked by `check_chat_body`) --


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str = Field(description="system, developer, user, assistant or tool")
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"messages": [{"role": "user", "content": "Write a Python function that merges two sorted lists."}]}]})
    messages: list[ChatMessage]
    model: str | None = Field(None, description="a configured model or alias; omit to let the gateway choose")
    stream: bool = False


class RoutingDecision(BaseModel):
    model: str = Field(description="the model that serves this request")
    route: str | None = Field(description="the matched routing preference, null when none matched")
    trace_id: str
    session_id: str | None = Field(None, description="present when the request carried a session id")
    session_source: str | None = Field(None, description="where the session id came from, e.g. header:x-session-id")
    pinned: bool = Field(description="true when an earlier request of the session chose the model")


# The hot endpoints are plain Starlette routes, mounted at the top of the app by
# `create_app`: no dependency solving, no response model, no nested router on
# their path. Their OpenAPI entries come from DOCS below.
ROUTES = [
    Route(FORWARD, chat_completions, methods=["POST"]),
    Route(DECISION, chat_decision, methods=["POST"]),
]

DOCS: list[tuple[str, str, type[BaseModel], type[BaseModel] | None, str]] = [
    (FORWARD, "Chat completion, forwarded to the chosen model (stream: true answers SSE)", ChatRequest, None,
     "Routes (or uses the session's pinned model), forwards to that provider and relays its answer. "
     "Headers X-Router-Model, X-Router-Route and X-Router-Pinned report the decision."),
    (DECISION, "Routing decision only; no model is called", ChatRequest, RoutingDecision,
     "The model this request would be served by, and whether the session pinned it."),
]
