"""Shared pieces of the in-process test layer (tests/test_inprocess_*.py): no subprocess, no socket.

Providers live at made-up hosts (http://provider.test, http://anthropic.test,
http://router.test) that respx answers. litellm reaches them over httpx only
when its aiohttp transport is off (`litellm_httpx` below): by default litellm
gives both its own handler (Anthropic) and the OpenAI SDK client it builds an
aiohttp transport, which respx cannot see. The byte relay (upstream/relay.py)
is aiohttp too, so in-process app configs set `gateway: {openai_relay: false}`
and only route through litellm; the relay stays with the e2e tests.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any, Callable, Iterator

import httpx
import pytest

from gateway.config import Config, parse_config
from gateway.errors import UpstreamError
from gateway.litellm_loader import litellm
from gateway.upstream import Answer, Call, Wire

OPENAI_URL = "http://provider.test"
ANTHROPIC_URL = "http://anthropic.test"
ROUTER_URL = "http://router.test"
OPENAI_CHAT_URL = f"{OPENAI_URL}/v1/chat/completions"
ANTHROPIC_MESSAGES_URL = f"{ANTHROPIC_URL}/v1/messages"

# Not `sk-...`: litellm masks keys of that shape in its own exception text, which would hide whether
# the gateway scrubs (Forwarder.scrub) keys of any other shape (self-hosted servers, proxies).
OPENAI_KEY = "inproc-openai-5c1e9a7b3d"
ANTHROPIC_KEY = "inproc-anthropic-8f2d4b6a0c"
ROUTER_KEY = "inproc-router-3e7a1f9d2b"

MINI = "openai/gpt-4o-mini"
GPT4O = "openai/gpt-4o"
CLAUDE = "anthropic/claude-sonnet-4-20250514"



def run(coro: Any) -> Any:
    """asyncio.run(coro), then let litellm's logging worker finish on this loop.

    Each test runs on a fresh event loop; litellm queues logging callbacks on a
    global worker bound to the loop, which would otherwise carry them over (and
    warn "event loop changed") or leave them pending when the loop closes.
    """

    async def main() -> Any:
        try:
            return await coro
        finally:
            await _settle_litellm_logging()

    return asyncio.run(main())


async def _settle_litellm_logging() -> None:
    module = sys.modules.get("litellm.litellm_core_utils.logging_worker")
    if module is None:
        return
    worker = module.GLOBAL_LOGGING_WORKER
    try:
        await asyncio.wait_for(worker.flush(), 2.0)
    except asyncio.TimeoutError:
        pass
    await worker.stop(timeout=1.0)


def openai_provider(model: str = MINI, **extra: Any) -> dict[str, Any]:
    return {"model": model, "access_key": OPENAI_KEY, "base_url": OPENAI_URL, **extra}


def anthropic_provider(**extra: Any) -> dict[str, Any]:
    return {"model": CLAUDE, "access_key": ANTHROPIC_KEY, "base_url": ANTHROPIC_URL, **extra}


def make_config(providers: list[dict[str, Any]], *, max_retries: int = 0, env: dict[str, str] | None = None,
                **sections: Any) -> Config:
    """A validated config; `max_retries` goes on the model listener, other sections are added as given."""
    raw = {"version": "v0.3.0",
           "listeners": [{"type": "model", "name": "model_listener", "port": 12000, "max_retries": max_retries}],
           "model_providers": providers, **sections}
    return parse_config(raw, env=env or {})


def two_provider_config(**kwargs: Any) -> Config:
    """gpt-4o-mini (default) on provider.test and Claude on anthropic.test."""
    return make_config([openai_provider(default=True), anthropic_provider()], **kwargs)


# -- litellm on httpx, so respx can answer for the providers ------------------------

# Warnings litellm's own code raises under this pydantic; not the gateway's to fix.
LITELLM_NOISE = [
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211"),
    pytest.mark.filterwarnings("ignore:Item .* is using the `ReadOnly` qualifier:UserWarning"),
]


@pytest.fixture
def litellm_httpx() -> Iterator[Any]:
    """litellm with its aiohttp transport off and no cached clients, restored afterwards.

    Every test using it also asserts its respx route was called, which proves
    the request went through httpx and was intercepted.
    """
    ll = litellm()
    saved = ll.disable_aiohttp_transport
    ll.disable_aiohttp_transport = True
    ll.in_memory_llm_clients_cache.flush_cache()  # clients built with aiohttp elsewhere must not be reused
    try:
        yield ll
    finally:
        ll.in_memory_llm_clients_cache.flush_cache()
        ll.disable_aiohttp_transport = saved


# -- what providers answer -------------------------------------------------------


def chat_completion(text: str = "hi from gpt", prompt_tokens: int = 3, completion_tokens: int = 2,
                    model: str = "gpt-4o-mini") -> dict[str, Any]:
    return {"id": "chatcmpl-inproc-1", "object": "chat.completion", "created": 1_700_000_000, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def anthropic_message(text: str = "hello from claude", input_tokens: int = 7,
                      output_tokens: int = 4) -> dict[str, Any]:
    return {"id": "msg_inproc_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-20250514",
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}}


def anthropic_events(text_parts: tuple[str, ...] = ("Hel", "lo"), input_tokens: int = 9,
                     output_tokens: int = 5) -> list[dict[str, Any]]:
    """An Anthropic Messages stream as event objects, message_start to message_stop."""
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {
            "id": "msg_inproc_2", "type": "message", "role": "assistant", "model": "claude-sonnet-4-20250514",
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    events += [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}
               for t in text_parts]
    events += [{"type": "content_block_stop", "index": 0},
               {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": output_tokens}},
               {"type": "message_stop"}]
    return events


def anthropic_sse(events: list[dict[str, Any]]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


def chat_chunk(content: str | None = None, finish: str | None = None,
               usage: dict[str, int] | None = None) -> bytes:
    chunk: dict[str, Any] = {"id": "chatcmpl-inproc-2", "object": "chat.completion.chunk", "created": 1_700_000_000,
                             "model": "gpt-4o-mini", "choices": []}
    if usage is not None:
        chunk["usage"] = usage
    else:
        chunk["choices"] = [{"index": 0, "delta": {} if content is None else {"content": content},
                             "finish_reason": finish}]
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def chat_sse(parts: tuple[str, ...] = ("Hi", " there"), prompt_tokens: int = 3, completion_tokens: int = 2) -> bytes:
    return (b"".join(chat_chunk(p) for p in parts) + chat_chunk(finish="stop")
            + chat_chunk(usage={"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                "total_tokens": prompt_tokens + completion_tokens})
            + b"data: [DONE]\n\n")


def sse_response(body: bytes) -> httpx.Response:
    return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})


class BrokenStream(httpx.AsyncByteStream):
    """A response body that sends `first` and then loses the connection."""

    def __init__(self, first: bytes, error: str = "connection reset by peer") -> None:
        self.first = first
        self.error = error

    async def __aiter__(self) -> Any:
        yield self.first
        raise httpx.ReadError(self.error)


def broken_sse_response(first: bytes, error: str = "connection reset by peer") -> httpx.Response:
    return httpx.Response(200, stream=BrokenStream(first, error), headers={"content-type": "text/event-stream"})


def sse_data(events: list[bytes]) -> list[Any]:
    """The parsed `data:` payloads of SSE event bytes (`[DONE]` kept as the string)."""
    out = []
    for event in b"".join(events).split(b"\n\n"):
        for line in event.split(b"\n"):
            if line.startswith(b"data: "):
                payload = line[6:]
                out.append(payload.decode() if payload == b"[DONE]" else json.loads(payload))
    return out


def sse_event_names(events: list[bytes]) -> list[str]:
    return [line[7:].decode() for event in b"".join(events).split(b"\n\n") for line in event.split(b"\n")
            if line.startswith(b"event: ")]


async def drain(answer: Answer) -> list[bytes]:
    assert answer.stream is not None, "expected a streamed answer"
    return [event async for event in answer.stream]


# -- a scriptable Upstream for the failover loop -----------------------------------------

Outcome = Callable[[str], Any]  # given the provider's model: an UpstreamError to raise, or answer text


def ok(text: str = "fine") -> Outcome:
    return lambda model: text


def fails(make: Callable[[str], UpstreamError]) -> Outcome:
    return make


class ScriptedUpstream:
    """An `Upstream` answering each provider from a script of outcomes; the last outcome repeats.

    `calls` lists the provider model of every attempt, in order.
    """

    def __init__(self, script: dict[str, list[Outcome]], wires: tuple[str, ...] = ("chat", "messages", "responses"),
                 delay: float = 0.0) -> None:
        self.script = {model: list(outcomes) for model, outcomes in script.items()}
        self.wires = wires
        self.delay = delay
        self.calls: list[str] = []
        self.closed = False

    def speaks(self, provider: Any, wire: Wire) -> bool:
        return wire.name in self.wires

    async def send(self, call: Call) -> Answer:
        model = call.provider.model
        self.calls.append(model)
        if self.delay:
            await asyncio.sleep(self.delay)
        outcomes = self.script[model]
        outcome = (outcomes.pop(0) if len(outcomes) > 1 else outcomes[0])(model)
        if isinstance(outcome, UpstreamError):
            raise outcome
        return Answer(call.provider, body=json.dumps({"text": outcome, "wire": call.wire.name}).encode())

    async def count_tokens(self, call: Call) -> int:
        return 42

    async def close(self) -> None:
        self.closed = True


class NoRouter:
    """A router for app tests that never matches (configs here have no routes, so it is never asked)."""

    name = "none"

    async def route(self, messages: list[dict[str, Any]]) -> str | None:
        raise AssertionError("the router should not be asked: the config has no routes")
