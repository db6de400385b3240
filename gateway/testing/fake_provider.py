"""A fake LLM provider for tests, demos and benchmarks, speaking the real wire formats.

    python -m gateway.testing.fake_provider --port 9000 [--latency-ms 0] [--chunks 3] [--chunk-delay-ms 0]

Serves OpenAI's `POST /v1/chat/completions` and `POST /v1/responses`, and
Anthropic's `POST /v1/messages` (plus `/v1/messages/count_tokens`), streamed
(SSE) or not. Responses created with `store` (the default) are remembered, so
`previous_response_id` works as on OpenAI; an unknown id is a 400. The answer is deterministic: `[<model>] <last user text>`.
Every request's headers and body are recorded; `GET /_requests` lists them and
`DELETE /_requests` clears them. `GET /_events` lists lifecycle events such as
client disconnects.

A marker in the last user message injects a fault, so end-to-end tests can
provoke each failure for real (FAULT:<kind>@<model> only for that model):
FAULT:500, FAULT:429 (Retry-After: 7), FAULT:429soon (Retry-After: 1), FAULT:hang,
FAULT:notjson (a 200 that is not JSON, even for a stream request),
FAULT:midstream (stream stops after one chunk), FAULT:errorevent (chat: a chunk and an
in-band error event in one write), FAULT:garbage (stream sends a
non-JSON chunk), FAULT:slowstream (one chunk per 200 ms). When the request
carries `tools`, each answer calls the next tool that has no result yet, so an
agent loop runs one step per tool before the final answer.

Playing a router model: when the system prompt contains `<routes>`, the answer
is `{"route": "<name>"}` for the first `ROUTE:<name>` marker found in the
conversation, else `{"route": "other"}`; ROUTE:!garbage answers prose and
ROUTE:!slow sleeps 5 s first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
import uuid
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

FAULT = re.compile(r"FAULT:(\w+)(?:@([\w.-]+))?")
ROUTE_MARK = re.compile(r"ROUTE:(!?[\w-]+)")


class FakeProvider:
    def __init__(self, latency_ms: float = 0.0, chunks: int = 3, chunk_delay_ms: float = 0.0) -> None:
        self.latency = latency_ms / 1000
        self.chunks = max(1, chunks)
        self.chunk_delay = chunk_delay_ms / 1000  # pause before every content chunk after the first
        self.requests: list[dict[str, Any]] = []
        self.events: list[str] = []
        self.record = True
        self.stored: set[str] = set()  # ids of Responses kept for previous_response_id

    # -- helpers ----------------------------------------------------------

    def _remember(self, request: Request, body: dict[str, Any]) -> None:
        if self.record:
            self.requests.append({"path": request.url.path, "headers": dict(request.headers), "body": body})
            del self.requests[:-1000]  # bounded, so a benchmark run cannot grow it forever

    @staticmethod
    def _text(content: Any) -> str:
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        return ""

    def _answer(self, model: str, messages: list[dict[str, Any]], system: str = "") -> str:
        if "<routes>" in system or any("<routes>" in self._text(m.get("content")) for m in messages):
            everything = " ".join(self._text(m.get("content")) for m in messages)
            marks = [m for m in ROUTE_MARK.findall(everything)]
            if marks and marks[-1] == "!garbage":
                return "I think the best route is probably the code one, honestly."
            return json.dumps({"route": marks[-1] if marks else "other"})
        last = next((self._text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
        if not last.strip():  # the conversation ends in tool results: wrap up
            return f"[{model}] done: every tool has answered"
        return f"[{model}] {last}"

    @staticmethod
    def _fault(messages: list[dict[str, Any]], model: str) -> str | None:
        """The fault the last message asks for: FAULT:<kind> for any model, FAULT:<kind>@<model> for one."""
        last = messages[-1] if messages else {}
        for kind, only in FAULT.findall(FakeProvider._text(last.get("content"))):
            if not only or only == model:
                return kind
        return None

    async def _pre_answer_fault(self, fault: str | None, messages: list[dict[str, Any]]) -> Response | None:
        if self.latency:
            await asyncio.sleep(self.latency)
        if any("ROUTE:!slow" in self._text(m.get("content")) for m in messages):
            await asyncio.sleep(5)
        if fault == "500":
            return JSONResponse({"error": {"message": "fake upstream exploded", "type": "server_error"}}, 500)
        if fault in ("429", "429soon"):  # soon: the provider asks for one second, not seven
            return JSONResponse({"error": {"message": "slow down", "type": "rate_limit_error"}}, 429,
                                headers={"retry-after": "1" if fault == "429soon" else "7"})
        if fault == "hang":
            await asyncio.sleep(3600)
        if fault == "notjson":
            return PlainTextResponse("<html>bad gateway</html>", 200, media_type="application/json")
        return None

    def _split(self, text: str) -> list[str]:
        """`text` in `self.chunks` pieces (fewer only when it is shorter than that)."""
        n = min(self.chunks, len(text)) or 1
        return [text[i * len(text) // n:(i + 1) * len(text) // n] for i in range(n)]

    async def _watch(self, request: Request, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        finished = False
        try:
            async for piece in stream:
                yield piece
            finished = True
        finally:
            if not finished:  # cancelled, or the client went away mid-stream
                self.events.append("disconnect")

    # -- OpenAI -----------------------------------------------------------

    async def _receive(self, request: Request) -> tuple[dict[str, Any], list[dict[str, Any]], str, str | None,
                                                         Response | None]:
        """Read and record a request; (body, messages, model, fault, early answer if the fault is one)."""
        body = await request.json()
        self._remember(request, body)
        messages = body.get("messages") or _input_messages(body.get("input"))
        model = body.get("model", "unknown")
        fault = self._fault(messages, model)
        return body, messages, model, fault, await self._pre_answer_fault(fault, messages)

    async def openai(self, request: Request) -> Response:
        body, messages, model, fault, early = await self._receive(request)
        if early is not None:
            return early
        system = " ".join(self._text(m.get("content")) for m in messages if m.get("role") == "system")
        text = self._answer(model, messages, system)
        tool_call = self._tool_call(body)
        cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        usage = {"prompt_tokens": 10, "completion_tokens": max(1, len(text.split())),
                 "total_tokens": 10 + max(1, len(text.split()))}
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": None if tool_call else text}
            if tool_call:
                message["tool_calls"] = [tool_call]
            return JSONResponse({
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": "tool_calls" if tool_call else "stop"}],
                "usage": usage,
            })

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            data = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            return f"data: {json.dumps(data)}\n\n".encode()

        async def events() -> AsyncIterator[bytes]:
            yield chunk({"role": "assistant", "content": ""})
            if tool_call:
                yield chunk({"tool_calls": [dict(tool_call, index=0)]})
            else:
                for i, piece in enumerate(self._split(text)):
                    if fault == "midstream" and i == 1:
                        return  # connection closes without [DONE]
                    if fault == "garbage" and i == 1:
                        yield b"data: {this is not json\n\n"
                        return
                    if fault == "errorevent" and i == 1:  # a chunk and an error event in one write
                        yield chunk({"content": piece}) + b'data: {"error": {"message": "fake overload", ' \
                                                          b'"type": "server_error"}}\n\n'
                        return
                    if fault == "slowstream":
                        await asyncio.sleep(0.2)
                    elif self.chunk_delay and i:
                        await asyncio.sleep(self.chunk_delay)
                    yield chunk({"content": piece})
            yield chunk({}, "tool_calls" if tool_call else "stop")
            if include_usage:
                data = {"id": cid, "object": "chat.completion.chunk", "created": created,
                        "model": model, "choices": [], "usage": usage}
                yield f"data: {json.dumps(data)}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(self._watch(request, events()), media_type="text/event-stream")

    @staticmethod
    def _tool_call(body: dict[str, Any]) -> dict[str, Any] | None:
        """Call the offered tools one per turn, in order, until each has answered once."""
        tools = body.get("tools") or []
        answered = sum(1 for m in body.get("messages") or [] if m.get("role") == "tool")
        if answered >= len(tools):
            return None
        fn = tools[answered].get("function", {})
        return {"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
                "function": {"name": fn.get("name", "tool"), "arguments": "{}"}}

    # -- Anthropic --------------------------------------------------------

    @staticmethod
    def _tool_use(body: dict[str, Any]) -> dict[str, Any] | None:
        """Anthropic's form of `_tool_call`: tool results arrive as `tool_result` content blocks."""
        tools = body.get("tools") or []
        answered = sum(1 for m in body.get("messages") or [] if isinstance(m.get("content"), list)
                       for block in m["content"] if isinstance(block, dict) and block.get("type") == "tool_result")
        if answered >= len(tools):
            return None
        return {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:12]}",
                "name": tools[answered].get("name", "tool"), "input": {}}

    async def anthropic(self, request: Request) -> Response:
        body, messages, model, fault, early = await self._receive(request)
        if early is not None:
            return early
        system = body.get("system") or ""
        system = system if isinstance(system, str) else self._text(system)
        text = self._answer(model, messages, system)
        tool_use = self._tool_use(body)
        mid = f"msg_{uuid.uuid4().hex[:24]}"
        out_tokens = max(1, len(text.split()))
        stop_reason = "tool_use" if tool_use else "end_turn"
        if not body.get("stream"):
            return JSONResponse({
                "id": mid, "type": "message", "role": "assistant", "model": model,
                "content": [tool_use or {"type": "text", "text": text}], "stop_reason": stop_reason,
                "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": out_tokens},
            })

        def event(name: str, data: dict[str, Any]) -> bytes:
            return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

        async def events() -> AsyncIterator[bytes]:
            yield event("message_start", {"type": "message_start", "message": {
                "id": mid, "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": None, "stop_sequence": None,
                "usage": {"input_tokens": 10, "output_tokens": 1}}})
            if tool_use:
                yield event("content_block_start", {"type": "content_block_start", "index": 0,
                                                    "content_block": {**tool_use, "input": {}}})
                yield event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                    "delta": {"type": "input_json_delta", "partial_json": "{}"}})
            else:
                yield event("content_block_start", {"type": "content_block_start", "index": 0,
                                                    "content_block": {"type": "text", "text": ""}})
            for i, piece in enumerate([] if tool_use else self._split(text)):
                if fault == "midstream" and i == 1:
                    return
                if fault == "slowstream":
                    await asyncio.sleep(0.2)
                elif self.chunk_delay and i:
                    await asyncio.sleep(self.chunk_delay)
                yield event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                    "delta": {"type": "text_delta", "text": piece}})
            yield event("content_block_stop", {"type": "content_block_stop", "index": 0})
            yield event("message_delta", {"type": "message_delta",
                                          "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                          "usage": {"output_tokens": out_tokens}})
            yield event("message_stop", {"type": "message_stop"})

        return StreamingResponse(self._watch(request, events()), media_type="text/event-stream")

    # -- OpenAI Responses ---------------------------------------------------

    async def responses(self, request: Request) -> Response:
        body, messages, model, fault, early = await self._receive(request)
        if early is not None:
            return early
        previous = body.get("previous_response_id")
        if previous is not None and previous not in self.stored:
            return JSONResponse({"error": {"message": f"Previous response with id '{previous}' not found.",
                                           "type": "invalid_request_error", "param": "previous_response_id",
                                           "code": "previous_response_not_found"}}, 400)
        text = self._answer(model, messages, body.get("instructions") or "")
        call = self._function_call(body)
        rid, item_id = f"resp_{uuid.uuid4().hex[:24]}", f"{'fc' if call else 'msg'}_{uuid.uuid4().hex[:24]}"
        if body.get("store", True):
            self.stored.add(rid)
            del_oldest(self.stored)
        out_tokens = max(1, len(text.split()))
        usage = {"input_tokens": 10, "output_tokens": out_tokens, "total_tokens": 10 + out_tokens}
        if call:
            item = {"type": "function_call", "id": item_id, "call_id": call["call_id"], "name": call["name"],
                    "arguments": "{}", "status": "completed"}
        else:
            item = {"type": "message", "id": item_id, "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": []}]}

        def response(status: str, output: list[dict[str, Any]], with_usage: bool) -> dict[str, Any]:
            return {"id": rid, "object": "response", "created_at": int(time.time()), "status": status,
                    "model": model, "output": output, "parallel_tool_calls": True, "tool_choice": "auto",
                    "tools": body.get("tools") or [], "previous_response_id": previous,
                    "usage": usage if with_usage else None}

        if not body.get("stream"):
            return JSONResponse(response("completed", [item], True))
        seq = iter(range(1_000_000))

        def event(kind: str, **data: Any) -> bytes:
            return f"event: {kind}\ndata: {json.dumps({'type': kind, 'sequence_number': next(seq), **data})}\n\n".encode()

        async def events() -> AsyncIterator[bytes]:
            yield event("response.created", response=response("in_progress", [], False))
            yield event("response.in_progress", response=response("in_progress", [], False))
            if call:
                yield event("response.output_item.added", output_index=0, item={**item, "arguments": "",
                                                                                  "status": "in_progress"})
                yield event("response.function_call_arguments.delta", item_id=item_id, output_index=0, delta="{}")
                yield event("response.function_call_arguments.done", item_id=item_id, output_index=0, arguments="{}")
            else:
                yield event("response.output_item.added", output_index=0,
                            item={**item, "status": "in_progress", "content": []})
                part = {"type": "output_text", "text": "", "annotations": []}
                where = {"item_id": item_id, "output_index": 0, "content_index": 0}
                yield event("response.content_part.added", **where, part=part)
                for i, piece in enumerate(self._split(text)):
                    if fault == "midstream" and i == 1:
                        return
                    if fault == "garbage" and i == 1:
                        yield b"event: response.output_text.delta\ndata: {this is not json\n\n"
                        return
                    if fault == "slowstream":
                        await asyncio.sleep(0.2)
                    elif self.chunk_delay and i:
                        await asyncio.sleep(self.chunk_delay)
                    yield event("response.output_text.delta", **where, delta=piece)
                yield event("response.output_text.done", **where, text=text)
                yield event("response.content_part.done", **where, part={**part, "text": text})
            yield event("response.output_item.done", output_index=0, item=item)
            yield event("response.completed", response=response("completed", [item], True))

        return StreamingResponse(self._watch(request, events()), media_type="text/event-stream")

    @staticmethod
    def _function_call(body: dict[str, Any]) -> dict[str, Any] | None:
        """The Responses form of `_tool_call`: outputs arrive as `function_call_output` items."""
        tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
        items = body.get("input") if isinstance(body.get("input"), list) else []
        answered = sum(1 for i in items if isinstance(i, dict) and i.get("type") == "function_call_output")
        if answered >= len(tools):
            return None
        return {"call_id": f"call_{uuid.uuid4().hex[:12]}", "name": tools[answered].get("name", "tool")}

    async def count_tokens(self, request: Request) -> Response:
        body = await request.json()
        self._remember(request, body)
        return JSONResponse({"input_tokens": max(1, len(json.dumps(body.get("messages"))) // 4)})

    # -- inspection -------------------------------------------------------

    async def list_requests(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.requests.clear()
            self.events.clear()
            return JSONResponse({"cleared": True})
        return JSONResponse(self.requests)

    async def list_events(self, request: Request) -> Response:
        return JSONResponse(self.events)

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/chat/completions", self.openai, methods=["POST"]),
            Route("/chat/completions", self.openai, methods=["POST"]),
            Route("/v1/messages", self.anthropic, methods=["POST"]),
            Route("/v1/messages/count_tokens", self.count_tokens, methods=["POST"]),
            Route("/v1/responses", self.responses, methods=["POST"]),
            Route("/_requests", self.list_requests, methods=["GET", "DELETE"]),
            Route("/_events", self.list_events, methods=["GET"]),
            Route("/healthz", lambda r: JSONResponse({"ok": True}), methods=["GET"]),
        ])


def _input_messages(items: Any) -> list[dict[str, Any]]:
    """A Responses `input` as chat-style messages: user and assistant text, tool outputs as empty user turns."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    out = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        if item.get("type", "message") == "message" and item.get("role") in ("user", "assistant"):
            content = item.get("content")
            if isinstance(content, list):
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            out.append({"role": item["role"], "content": content})
        elif str(item.get("type", "")).endswith("_output"):
            out.append({"role": "user", "content": ""})
    return out


def del_oldest(ids: set[str], keep: int = 10_000) -> None:
    while len(ids) > keep:
        ids.pop()


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m gateway.testing.fake_provider", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="fixed delay before each answer")
    parser.add_argument("--chunks", type=int, default=3, help="content chunks per streamed answer")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="pause between streamed content chunks")
    parser.add_argument("--no-record", action="store_true", help="do not keep requests (benchmarks)")
    args = parser.parse_args(argv)
    fake = FakeProvider(latency_ms=args.latency_ms, chunks=args.chunks, chunk_delay_ms=args.chunk_delay_ms)
    fake.record = not args.no_record
    uvicorn.run(fake.app(), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
