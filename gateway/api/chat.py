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
from ..config import Provider
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
        validation.check_role(role, ROLES, where)
        content = message.get("content")
        if content is None:
            if role in ("user", "system", "developer"):
                raise BadRequest(f"{where}.content is required for a {role} message", param=f"{where}.content")
        elif isinstance(content, list):
            validation.check_content_parts(content, f"{where}.content")
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


# Content part types litellm can translate for a provider of another format (Anthropic, Gemini, ...).
# An OpenAI-format provider gets the parts as they are, so its own extensions (video_url, ...) still work.
TRANSLATABLE_PARTS = {"text", "image_url", "input_audio", "file"}


def check_chat_fields(body: dict[str, Any]) -> None:
    """BadRequest for an optional field whose shape no provider accepts.

    The relay would get the provider's own 400 for these, but litellm raises
    deep inside on them, which looks like a provider failure; checked here,
    they are the client's error on every path, before anything is retried,
    failed over or re-pinned.
    """
    metadata = body.get("metadata")
    if metadata is not None and not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise BadRequest("`metadata` must be an object of string values, e.g. {\"run\": \"42\"}", param="metadata")
    options = body.get("stream_options")
    if options is not None and not (isinstance(options, dict)
                                    and isinstance(options.get("include_usage", False), bool)):
        raise BadRequest("`stream_options` must be an object such as {\"include_usage\": true}",
                         param="stream_options")
    for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise BadRequest(f"`{name}` must be a number, got {_kind(value)}", param=name)
    for name in ("max_tokens", "max_completion_tokens", "n", "seed", "top_logprobs"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or (value < 1 and name in ("max_tokens", "max_completion_tokens", "n"))):
            raise BadRequest(f"`{name}` must be a whole number" + (" of at least 1" if name != "seed" else "")
                             + f", got {value!r}", param=name)
    stop = body.get("stop")
    if stop is not None and not (isinstance(stop, str) or (isinstance(stop, list)
                                                            and all(isinstance(s, str) for s in stop))):
        raise BadRequest("`stop` must be a string or a list of strings", param="stop")
    choice = body.get("tool_choice")
    if choice is not None and not isinstance(choice, (str, dict)):
        raise BadRequest("`tool_choice` must be \"auto\", \"none\", \"required\" or an object naming a tool",
                         param="tool_choice")
    response_format = body.get("response_format")
    if response_format is not None and not (isinstance(response_format, dict)
                                            and isinstance(response_format.get("type"), str)):
        raise BadRequest("`response_format` must be an object with a `type`, e.g. {\"type\": \"json_object\"}",
                         param="response_format")
    _check_tools(body.get("tools"))
    for i, message in enumerate(body["messages"]):
        content = message.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                _check_part(part, f"messages[{i}].content[{j}]")


def _check_tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise BadRequest(f"`tools` must be a list of tool objects, got {_kind(tools)}", param="tools")
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise BadRequest(f"tools[{i}] must be an object with a `type`", param=f"tools[{i}]")
        function = tool.get("function")
        if tool["type"] == "function" and not (isinstance(function, dict) and isinstance(function.get("name"), str)):
            raise BadRequest(f"tools[{i}] is a function tool: it needs `function: {{name, parameters}}`",
                             param=f"tools[{i}]")


def _check_part(part: dict[str, Any], where: str) -> None:
    """The members the common content part types need (`type` itself was checked with the message)."""
    kind = part["type"]
    if kind == "text" and not isinstance(part.get("text"), str):
        raise BadRequest(f"{where} is a text part: it needs a `text` string", param=where)
    if kind == "image_url":
        image = part.get("image_url")
        if not (isinstance(image, str) or (isinstance(image, dict) and isinstance(image.get("url"), str))):
            raise BadRequest(f"{where} is an image_url part: it needs `image_url: {{url}}`", param=where)


def _kind(value: Any) -> str:
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else repr(value)


class ChatSurface(flow.SurfaceDefaults):
    wire = ChatWire()
    forward_path = FORWARD
    decision_path = DECISION

    def check_forward(self, body: dict[str, Any]) -> None:
        check_chat_fields(body)

    def before_forward(self, request: Request, body: dict[str, Any], provider: Provider) -> dict[str, Any]:
        if not provider.speaks_openai:  # litellm translates: only the part types it knows
            for i, message in enumerate(body["messages"]):
                content = message.get("content")
                for j, part in enumerate(content if isinstance(content, list) else ()):
                    if part["type"] not in TRANSLATABLE_PARTS:
                        where = f"messages[{i}].content[{j}]"
                        raise BadRequest(f"{where} has type {part['type']!r}, which cannot be translated for "
                                         f"{provider.model}; use one of: {', '.join(sorted(TRANSLATABLE_PARTS))}",
                                         param=where)
        return body

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
