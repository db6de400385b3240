"""OpenAI Responses: `POST /v1/responses` (Codex, the Agents SDK's default model) and its decision twin.

This module knows the Responses wire format: `input` as a string or a list of
items (messages, function calls and their outputs, reasoning), what the
router reads from it (the user's words, not tool outputs or `instructions`),
where a stream ends and carries usage, and how errors look (OpenAI's shape).

State: a provider that speaks this API itself (OpenAI) gets the request as is,
so `previous_response_id` works there (the session pin keeps the same
provider). A bridged provider keeps no state, so such a request is refused
with a 400 that says to send the whole conversation (`store: false`), which is
what Codex does anyway. Clients that send earlier output as `item_reference`s
(the Vercel AI SDK does by default) get them expanded from the items this
gateway recently answered with (`ItemMemory`); one it never saw is a 400 for a
bridged provider, never silently dropped.

Codex first tries a WebSocket on `GET /v1/responses`; it is refused with 426 at
once so Codex falls back to HTTPS without its reconnect backoff (a 404 costs it
about 6 s).
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator

from cachetools import TTLCache

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.routing import Route
from starlette.responses import JSONResponse, Response
from starlette.websockets import WebSocket

from .. import validation
from ..conversation import ends_of, opening, text_of
from ..decision import Ask
from ..errors import BadRequest
from ..upstream import Answer, token_usage
from ..upstream.endpoints import native_wire
from . import flow
from .chat import RoutingDecision

FORWARD = "/v1/responses"
DECISION = "/routing/v1/responses"
ENDS = ("response.completed", "response.incomplete", "response.failed")
MESSAGE_ROLES = ("user", "assistant", "system", "developer")


class ResponsesWire:
    """Responses on the wire: `event: response.*` + `data: {...}`, ending with response.completed (or failed)."""

    name = "responses"

    def finished(self, event: dict[str, Any] | None) -> bool:
        return event is not None and event.get("type") in ENDS

    def failed(self, event: dict[str, Any]) -> bool:
        return event.get("type") == "error"

    def usage(self, body: dict[str, Any]) -> dict[str, int] | None:
        # A stream's response.completed carries it inside `response`.
        return token_usage(body, "response", "input_tokens", "output_tokens")

    def error_event(self, code: str, message: str) -> bytes:
        error = {"type": "error", "code": code, "message": f"stream interrupted: {message}", "param": None}
        return b"event: error\ndata: " + json.dumps(error).encode() + b"\n\n"


def check_responses_body(body: dict[str, Any]) -> None:
    """Raise BadRequest naming the first field of a Responses request that is wrong."""
    items = body.get("input")
    if items is None:
        raise BadRequest("`input` is required: a string, or a list of input items", param="input")
    if isinstance(items, list):
        if not items:
            raise BadRequest("`input` must not be empty: send a string or at least one item", param="input")
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise BadRequest(f"input[{i}] must be an object (a message or another input item)",
                                 param=f"input[{i}]")
            content = item.get("content")
            if item.get("type", "message") == "message":
                if item.get("role") is not None:
                    validation.check_role(item["role"], MESSAGE_ROLES, f"input[{i}]")
                if isinstance(content, list):
                    validation.check_content_parts(content, f"input[{i}].content")
                elif not isinstance(content, str):
                    raise BadRequest(f"input[{i}].content must be a string or a list of content parts",
                                     param=f"input[{i}].content")
            if item.get("type") == "item_reference" and not isinstance(item.get("id"), str):
                raise BadRequest(f"input[{i}] is an item_reference without a string `id`", param=f"input[{i}].id")
    elif not isinstance(items, str):
        raise BadRequest(f"`input` must be a string or a list of items, got {type(items).__name__}", param="input")
    for name in ("instructions", "previous_response_id"):
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"`{name}` must be a string", param=name)
    if body.get("tools") is not None and not isinstance(body["tools"], list):
        raise BadRequest("`tools` must be a list", param="tools")
    validation.check_stream_flag(body)


def router_turns(items: Any) -> list[dict[str, Any]]:
    """User and assistant words as chat turns: tool calls, their outputs, reasoning and developer text left out."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    turns = []
    for item in items:
        role = item.get("role")
        if item.get("type", "message") != "message" or role not in ("user", "assistant"):
            continue
        text = ends_of(item.get("content"))  # both ends of a long one; agent context blocks such as <environment_context> skipped
        if text.strip():
            turns.append({"role": role, "content": text})
    return turns


def _is_tool_turn(items: Any) -> bool:
    return isinstance(items, list) and bool(items) and str(items[-1].get("type", "")).endswith("_output")


def _opening(body: dict[str, Any]) -> str:
    items = body["input"]
    users = [items] if isinstance(items, str) else (
        text_of(i.get("content")) for i in items if i.get("type", "message") == "message" and i.get("role") == "user")
    return opening(body.get("instructions") or "", users)


class ResponsesSurface(flow.SurfaceDefaults):
    wire = ResponsesWire()
    forward_path = FORWARD
    decision_path = DECISION

    def ask(self, body: dict[str, Any]) -> Ask:
        check_responses_body(body)
        items = body["input"]
        return Ask(lambda: router_turns(items), body.get("model"), any_model=True,
                   opening=lambda: _opening(body), tool_turn=_is_tool_turn(items))

    def before_forward(self, request: Request, body: dict[str, Any], provider: Any) -> dict[str, Any]:
        refuse_unkept_state(provider, body)
        return item_memory(request).expand(body, provider, request.state.tenant)

    def after_answer(self, request: Request, answer: Answer) -> None:
        item_memory(request).watch(answer, request.state.tenant)


SURFACE = ResponsesSurface()


async def create_response(request: Request) -> Response:
    return await flow.forward(request, SURFACE)


async def response_decision(request: Request) -> Response:
    return await flow.answer_decision(request, SURFACE)


async def no_websocket(websocket: WebSocket) -> None:
    """Codex's WebSocket transport is not offered: 426 at once sends it to HTTPS."""
    await websocket.send_denial_response(JSONResponse(_UPGRADE_REFUSED, status_code=426))


async def get_not_offered(request: Request) -> Response:
    return JSONResponse(_UPGRADE_REFUSED, status_code=426)


_UPGRADE_REFUSED = {"error": {"message": "this gateway serves the Responses API over HTTPS only: POST /v1/responses "
                              "(WebSocket mode is not offered)", "type": "invalid_request_error",
                              "code": "websocket_not_supported"}}


class ItemMemory:
    """Output items of recent answers, so `item_reference`s can be expanded for providers that keep no state.

    Keyed by tenant (gateway key and tenant header) and item id, so one tenant
    can never pull in another's items. Bounded: a TTLCache holding at most
    `max_bytes` of items (by their JSON size), each for the session TTL. Per
    process: with several workers a reference may reach a worker that did not
    see the item, which then refuses it clearly.
    """

    def __init__(self, ttl: float, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._items: TTLCache = TTLCache(max_bytes, ttl, getsizeof=lambda entry: entry[1])

    def remember(self, tenant: str, items: Any) -> None:
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                size = len(json.dumps(item))
                if size <= self._items.maxsize:
                    self._items[(tenant, item["id"])] = (item, size)

    def watch(self, answer: Answer, tenant: str) -> None:
        """Remember the output items of a bridged `answer`, plain or streamed, as it goes back to the client.

        A provider that speaks Responses itself holds its own items, so its
        answers pass untouched (no second parse on the relay path).
        """
        if native_wire(answer.provider, "responses"):
            return
        if answer.stream is None:
            try:
                self.remember(tenant, json.loads(answer.body or b"{}").get("output"))
            except (ValueError, AttributeError):
                pass
            return
        answer.stream = self._remembering(answer.stream, tenant)

    async def _remembering(self, stream: AsyncIterator[bytes], tenant: str) -> AsyncIterator[bytes]:
        try:
            async for event in stream:
                if b"response.output_item.done" in event:
                    for line in event.split(b"\n"):
                        if line.startswith(b"data: {"):
                            try:
                                self.remember(tenant, [json.loads(line[6:]).get("item")])
                            except (ValueError, AttributeError):
                                pass
                yield event
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    def expand(self, body: dict[str, Any], provider: Any, tenant: str) -> dict[str, Any]:
        """`body` with `item_reference`s replaced by the items they name; BadRequest where a bridged provider needs one unknown."""
        items = body.get("input")
        if not isinstance(items, list) or not any(i.get("type") == "item_reference" for i in items):
            return body
        native = native_wire(provider, "responses")
        expanded = []
        for i, item in enumerate(items):
            if item.get("type") != "item_reference":
                expanded.append(item)
                continue
            known = self._items.get((tenant, item["id"]))
            if known is not None:
                expanded.append(known[0])
            elif native:
                expanded.append(item)  # the provider holds it
            else:
                raise BadRequest(f"input[{i}] refers to item {item['id']!r}, which {provider.model} cannot "
                                 "resolve (it is reached through a translation that keeps no state) and this "
                                 "gateway did not answer with; send the item itself (e.g. store: false in the "
                                 "client)", param=f"input[{i}]")
        return {**body, "input": expanded}


def refuse_unkept_state(provider: Any, body: dict[str, Any]) -> None:
    """BadRequest when `previous_response_id` names state the chosen provider cannot hold."""
    if body.get("previous_response_id") and not native_wire(provider, "responses"):
        raise BadRequest(f"previous_response_id cannot be honoured: {provider.model} is reached through a translation "
                         "that keeps no conversation state; send the whole conversation in `input` "
                         "(with store: false) instead", param="previous_response_id")


def item_memory(request: Request) -> ItemMemory:
    """This gateway's memory of answered items."""
    return flow.gateway_of(request).response_items


# -- the documentation's view of these endpoints --


class ResponsesRequest(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"model": "gpt-4o", "input": "Analyze the trade-offs between SQL and NoSQL for a high-traffic system."}]})
    model: str | None = Field(None, description="a configured model or alias; an unknown name lets the gateway choose")
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    previous_response_id: str | None = Field(None, description="only where the provider speaks Responses itself")
    stream: bool = False


# The hot endpoints are plain Starlette routes, mounted at the top of the app by
# `create_app`: no dependency solving, no response model, no nested router on
# their path. Their OpenAPI entries come from DOCS below.
ROUTES = [
    Route(FORWARD, create_response, methods=["POST"]),
    Route(DECISION, response_decision, methods=["POST"]),
]
router = APIRouter(tags=["openai responses"])
router.add_route(FORWARD, get_not_offered, methods=["GET"], include_in_schema=False)
router.add_websocket_route(FORWARD, no_websocket)

DOCS = [
    (FORWARD, "OpenAI Responses, forwarded to the chosen model (relayed to OpenAI, bridged for others)",
     ResponsesRequest, None, "`store: false` with the whole input works on every path."),
    (DECISION, "Routing decision only, for a Responses request", ResponsesRequest, RoutingDecision,
     "Answers exactly like /routing/v1/chat/completions; sessions are shared with every endpoint."),
]
