"""The LLM router (routers/llm.py) in process, against a router model that respx plays.

Config: `routing.model` names the router model, `routing.llm_provider` the
configured entry whose URL and key reach it. Any failure must be a RouterError,
which the decision turns into "serve the fallback, do not pin".
"""

from __future__ import annotations

import asyncio
import json
import re
import time

import httpx
import pytest
import respx

from gateway.app import create_app
from gateway.config import ConfigError
from gateway.errors import RouterError
from gateway.routers.llm import LLMRouter
from inprocess_helpers import (CLAUDE, GPT4O, LITELLM_NOISE, MINI, ROUTER_KEY, ROUTER_URL, anthropic_provider,
                               chat_completion, litellm_httpx, make_config, openai_provider, run)

__all__ = ["litellm_httpx"]
pytestmark = LITELLM_NOISE

ROUTER_CHAT_URL = f"{ROUTER_URL}/v1/chat/completions"
ROUTES = {"code_generation": "generating new code, writing functions, or creating boilerplate",
          "complex_reasoning": "complex reasoning tasks, multi-step analysis, or detailed explanations"}


def router_config(timeout: str | float = 2.0):
    return make_config([
        openai_provider(MINI, default=True),
        openai_provider(GPT4O, routing_preferences=[{"name": "complex_reasoning",
                                                     "description": ROUTES["complex_reasoning"]}]),
        anthropic_provider(routing_preferences=[{"name": "code_generation", "description": ROUTES["code_generation"]}]),
        {"model": "openai/router-host", "access_key": ROUTER_KEY, "base_url": ROUTER_URL},
    ], routing={"model": "katanemo/Arch-Router-1.5B", "llm_provider": "openai/router-host", "timeout": timeout})


def answering(text: str) -> httpx.Response:
    return httpx.Response(200, json=chat_completion(text, model="Arch-Router-1.5B"))


CONVERSATION = [{"role": "system", "content": "You are a coding agent."},
                {"role": "user", "content": "Explain the trade-offs of Kafka."},
                {"role": "assistant", "content": "Kafka scales further but costs more to run."},
                {"role": "user", "content": "Now write a Python consumer for it."}]


def route_with(response, messages=CONVERSATION, timeout: str | float = 2.0):
    """(route or RouterError, the router's request to the model, seconds taken)."""
    router = LLMRouter(router_config(timeout))

    async def go():
        with respx.mock(assert_all_called=False) as mock:  # a cancelled hang is not recorded as a call
            route = mock.post(ROUTER_CHAT_URL)
            if isinstance(response, httpx.Response):
                route.mock(return_value=response)
            else:
                route.mock(side_effect=response)
            started = time.perf_counter()
            try:
                result = await router.route(messages)
            except RouterError as exc:
                result = exc
            elapsed = time.perf_counter() - started
            request = route.calls.last.request if route.called else None
            return result, request, elapsed

    return run(go())


def test_llm_router_sends_the_arch_router_prompt_to_its_provider_and_returns_the_named_route(litellm_httpx):
    result, request, _ = route_with(answering('{"route": "code_generation"}'))
    assert result == "code_generation"
    # the router model reached through routing.llm_provider's URL and key, under its own name
    assert request.headers["authorization"] == f"Bearer {ROUTER_KEY}"
    sent = json.loads(request.content)
    assert sent["model"] == "katanemo/Arch-Router-1.5B"  # as vLLM serves it: the whole Hugging Face id
    assert sent["temperature"] == 0.01 and sent["max_tokens"] == 64
    [message] = sent["messages"]
    prompt = message["content"]
    routes = json.loads(re.search(r"<routes>\n(.*?)\n</routes>", prompt, re.S).group(1))
    assert {r["name"]: r["description"] for r in routes} == ROUTES
    conversation = json.loads(re.search(r"<conversation>\n(.*?)\n</conversation>", prompt, re.S).group(1))
    assert conversation[-1] == {"role": "user", "content": "Now write a Python consumer for it."}
    assert all(turn["role"] != "system" for turn in conversation)  # the system prompt is not the user's intent


@pytest.mark.parametrize("text", ['{"route": "other"}', "```json\n{\"route\": \"other\"}\n```"])
def test_llm_router_answer_other_means_no_route(litellm_httpx, text):
    result, request, _ = route_with(answering(text))
    assert request is not None and result is None


@pytest.mark.parametrize("text", ["", "I think this is about databases.", '{"route": "poetry"}',
                                  "code_generation or complex_reasoning"])
def test_llm_router_garbage_answer_is_a_router_error(litellm_httpx, text):
    result, request, _ = route_with(answering(text))
    assert request is not None and isinstance(result, RouterError)
    assert "naming no route" in str(result)


@pytest.mark.parametrize("status", [400, 401, 429, 500])
def test_llm_router_provider_error_is_a_router_error(litellm_httpx, status):
    result, request, _ = route_with(httpx.Response(status, json={"error": {"message": "nope", "type": "x"}}))
    assert request is not None and isinstance(result, RouterError)
    assert "katanemo/Arch-Router-1.5B failed" in str(result)


def test_llm_router_unreachable_is_a_router_error(litellm_httpx):
    result, _, _ = route_with(httpx.ConnectError("connection refused"))
    assert isinstance(result, RouterError)


def test_llm_router_that_hangs_is_cut_off_at_the_routing_timeout(litellm_httpx):
    async def hang(request):
        await asyncio.sleep(10)
        return answering('{"route": "code_generation"}')

    result, _, elapsed = route_with(hang, timeout="150ms")
    assert isinstance(result, RouterError)
    assert "did not answer within 0.15s" in str(result)
    assert elapsed < 1.5


def test_llm_router_decides_the_model_on_the_decision_endpoint_and_a_garbage_answer_is_not_pinned(litellm_httpx):
    app = create_app(router_config())
    body = {"messages": [{"role": "user", "content": "Write a Python consumer for Kafka."}]}

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            with respx.mock(assert_all_called=False) as mock:
                route = mock.post(ROUTER_CHAT_URL)
                route.side_effect = [answering("no idea"), answering("still no idea"),
                                     answering('{"route": "code_generation"}')]
                failed = [await client.post("/routing/v1/chat/completions", json=body,
                                            headers={"X-Session-Id": "s-llm"}) for _ in range(2)]
                routed = await client.post("/routing/v1/chat/completions", json=body, headers={"X-Session-Id": "s-llm"})
                pinned = await client.post("/routing/v1/chat/completions", json=body, headers={"X-Session-Id": "s-llm"})
                return failed, routed, pinned, route.call_count

    failed, routed, pinned, calls = run(go())
    for r in failed:  # the router failed: the default model serves, unpinned, so the next request asks again
        assert r.status_code == 200
        assert r.json()["model"] == MINI and r.json()["route"] is None and r.json()["pinned"] is False
    assert routed.json()["model"] == CLAUDE and routed.json()["route"] == "code_generation"
    assert routed.headers["X-Router-Route"] == "code_generation"
    assert pinned.json() == {**routed.json(), "pinned": True, "trace_id": pinned.json()["trace_id"]}
    assert calls == 3  # the pinned request did not ask the router


@pytest.mark.parametrize("model, served", [
    ("hf.co/katanemo/Arch-Router-1.5B.gguf:Q4_K_M", "hf.co/katanemo/Arch-Router-1.5B.gguf:Q4_K_M"),
    ("ollama/hf.co/katanemo/Arch-Router-1.5B.gguf:Q4_K_M", "hf.co/katanemo/Arch-Router-1.5B.gguf:Q4_K_M"),
    ("openai/katanemo/Arch-Router-1.5B", "katanemo/Arch-Router-1.5B"),
    ("arch-router", "arch-router"),
])
def test_only_a_provider_prefix_is_taken_off_the_router_models_name(model, served):
    config = make_config([openai_provider(MINI, default=True),
                          {"model": "openai/router-host", "base_url": ROUTER_URL}],
                         routing={"model": model, "llm_provider": "openai/router-host"})
    provider = LLMRouter(config).provider
    assert provider.model_name == served
    assert provider.base_url == ROUTER_URL


def test_a_router_model_with_an_unknown_prefix_and_no_llm_provider_is_a_config_error():
    with pytest.raises(ConfigError) as refused:
        make_config([openai_provider(MINI, default=True)],
                    routing={"model": "hf.co/katanemo/Arch-Router-1.5B.gguf:Q4_K_M"})
    assert "routing.model" in str(refused.value) and "routing.llm_provider" in str(refused.value)
    # a provider prefix says where it lives
    config = make_config([openai_provider(MINI, default=True)], routing={"model": "ollama/arch-router"})
    assert (LLMRouter(config).provider.provider, LLMRouter(config).provider.model_name) == ("ollama", "arch-router")
