"""LitellmUpstream in process: each translation path against a provider that respx plays.

litellm really sends HTTP here (on httpx, see inprocess_helpers.litellm_httpx);
respx answers as the provider would, and each test checks both what reached the
provider and what the client's wire format gets back.
"""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from gateway.api.chat import ChatWire
from gateway.api.messages import MessagesWire
from gateway.api.responses import ResponsesWire
from gateway.upstream import Call
from gateway.upstream.translate import LITELLM_DEFAULT_MAX_TOKENS, LitellmUpstream
from inprocess_helpers import (ANTHROPIC_KEY, ANTHROPIC_MESSAGES_URL, CLAUDE, LITELLM_NOISE, MINI, OPENAI_CHAT_URL,
                               OPENAI_KEY, anthropic_events, anthropic_message, anthropic_sse, broken_sse_response,
                               chat_chunk, chat_completion, chat_sse, drain, litellm_httpx, run, sse_data,
                               sse_event_names, sse_response, two_provider_config)

__all__ = ["litellm_httpx"]  # the fixture, imported for pytest
pytestmark = LITELLM_NOISE

CONFIG = two_provider_config()
GPT, CLAUDE_P = CONFIG.find(MINI), CONFIG.find(CLAUDE)
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def sent_json(route: respx.Route) -> dict:
    assert route.call_count == 1, f"expected one provider call, got {route.call_count}"
    return json.loads(route.calls.last.request.content)


def user(text: str = "hi") -> list[dict]:
    return [{"role": "user", "content": text}]


# -- plain answers ----------------------------------------------------------------


def test_chat_to_anthropic_provider_answers_openai_chat_completion_json_with_text_and_usage(litellm_httpx):
    async def go():
        with respx.mock() as mock:
            route = mock.post(ANTHROPIC_MESSAGES_URL).mock(
                return_value=httpx.Response(200, json=anthropic_message("hello from claude", 7, 4)))
            answer = await LitellmUpstream().send(Call(CLAUDE_P, ChatWire(), {"model": CLAUDE, "messages": user()}))
            return answer, route

    answer, route = run(go())
    body = json.loads(answer.body)
    assert body["object"] == "chat.completion"
    assert body["model"] == "claude-sonnet-4-20250514"
    assert body["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "hello from claude"},
                                "logprobs": None, "finish_reason": "stop"}]
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}
    assert set(body) <= {"id", "object", "created", "model", "choices", "usage", "system_fingerprint"}
    assert answer.usage == {"prompt_tokens": 7, "completion_tokens": 4}
    assert answer.provider is CLAUDE_P and answer.stream is None
    request = route.calls.last.request
    assert request.headers["x-api-key"] == ANTHROPIC_KEY
    sent = sent_json(route)
    assert sent["model"] == "claude-sonnet-4-20250514"
    assert sent["messages"][0]["role"] == "user"


def test_messages_to_openai_format_provider_answers_anthropic_message_json(litellm_httpx):
    async def go():
        with respx.mock() as mock:
            route = mock.post(OPENAI_CHAT_URL).mock(
                return_value=httpx.Response(200, json=chat_completion("hi from gpt", 3, 2)))
            body = {"model": "claude-opus-4-8", "max_tokens": 100, "system": "be brief", "messages": user()}
            answer = await LitellmUpstream().send(Call(GPT, MessagesWire(), body))
            return answer, route

    answer, route = run(go())
    body = json.loads(answer.body)
    assert body["type"] == "message" and body["role"] == "assistant"
    assert body["content"] == [{"type": "text", "text": "hi from gpt"}]
    assert body["stop_reason"] == "end_turn"
    assert body["usage"]["input_tokens"] == 3 and body["usage"]["output_tokens"] == 2
    assert answer.usage == {"prompt_tokens": 3, "completion_tokens": 2}
    assert route.calls.last.request.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    sent = sent_json(route)
    assert sent["model"] == "gpt-4o-mini"  # the provider's own name, not the client's Claude name
    assert sent["max_tokens"] == 100
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}
    assert sent["messages"][-1]["role"] == "user"


def test_messages_bridge_drops_anthropic_headers_but_passes_traceparent_to_an_openai_format_provider(litellm_httpx):
    async def go():
        with respx.mock() as mock:
            route = mock.post(OPENAI_CHAT_URL).mock(return_value=httpx.Response(200, json=chat_completion()))
            headers = {"anthropic-version": "2023-06-01", "anthropic-beta": "claude-code-20250219",
                       "traceparent": TRACEPARENT}
            await LitellmUpstream().send(Call(GPT, MessagesWire(), {"max_tokens": 10, "messages": user()}, headers))
            return route.calls.last.request.headers

    headers = run(go())
    assert headers["traceparent"] == TRACEPARENT
    assert "anthropic-version" not in headers and "anthropic-beta" not in headers


def test_responses_bridged_to_chat_answers_a_responses_object_with_output_text(litellm_httpx):
    async def go():
        with respx.mock() as mock:
            route = mock.post(OPENAI_CHAT_URL).mock(
                return_value=httpx.Response(200, json=chat_completion("bridged answer", 5, 6)))
            body = {"model": "gpt-6.2-sol", "instructions": "answer tersely", "store": True,
                    "input": [{"type": "message", "role": "user",
                               "content": [{"type": "input_text", "text": "what is 2+2?"}]}]}
            answer = await LitellmUpstream().send(Call(GPT, ResponsesWire(), body))
            return answer, route

    answer, route = run(go())
    body = json.loads(answer.body)
    assert body["object"] == "response" and body["status"] == "completed"
    texts = [part["text"] for item in body["output"] if item["type"] == "message"
             for part in item["content"] if part["type"] == "output_text"]
    assert texts == ["bridged answer"]
    assert body["usage"]["input_tokens"] == 5 and body["usage"]["output_tokens"] == 6
    assert body.get("store") is False  # nothing is kept on a bridged path, whatever the client asked
    assert answer.usage == {"prompt_tokens": 5, "completion_tokens": 6}
    sent = sent_json(route)
    assert sent["model"] == "gpt-4o-mini"
    assert {"role": "system", "content": "answer tersely"} in sent["messages"]
    assert any(m["role"] == "user" and "what is 2+2?" in json.dumps(m["content"]) for m in sent["messages"])


def test_responses_to_anthropic_provider_sets_the_default_max_tokens_anthropic_requires(litellm_httpx):
    async def go():
        with respx.mock() as mock:
            route = mock.post(ANTHROPIC_MESSAGES_URL).mock(
                return_value=httpx.Response(200, json=anthropic_message("from claude")))
            answer = await LitellmUpstream().send(Call(CLAUDE_P, ResponsesWire(), {"input": "hi"}))
            return answer, route

    answer, route = run(go())
    assert sent_json(route)["max_tokens"] == LITELLM_DEFAULT_MAX_TOKENS
    body = json.loads(answer.body)
    assert body["object"] == "response"
    assert body["output"][0]["content"][0]["text"] == "from claude"


def test_chat_fields_reach_an_openai_format_provider_known_ones_as_parameters_unknown_ones_in_the_body(litellm_httpx):
    async def go():
        with respx.mock() as mock:
            route = mock.post(OPENAI_CHAT_URL).mock(return_value=httpx.Response(200, json=chat_completion()))
            body = {"model": MINI, "messages": user(), "temperature": 0.2, "seed": 5,
                    "vendor_flag": {"mode": "fast"}}
            await LitellmUpstream().send(Call(GPT, ChatWire(), body))
            return sent_json(route)

    sent = run(go())
    assert sent["temperature"] == 0.2 and sent["seed"] == 5
    assert sent["vendor_flag"] == {"mode": "fast"}  # via extra_body
    assert sent["model"] == "gpt-4o-mini"


# -- streams ---------------------------------------------------------------------


def test_streamed_chat_from_anthropic_arrives_as_chat_chunks_ending_with_done_and_usage_when_asked(litellm_httpx):
    async def go():
        with respx.mock() as mock:
            mock.post(ANTHROPIC_MESSAGES_URL).mock(return_value=sse_response(anthropic_sse(anthropic_events(
                ("Hel", "lo"), input_tokens=9, output_tokens=5))))
            body = {"messages": user(), "stream": True, "stream_options": {"include_usage": True}}
            answer = await LitellmUpstream().send(Call(CLAUDE_P, ChatWire(), body))
            return answer, await drain(answer)

    answer, events = run(go())
    data = sse_data(events)
    assert data[-1] == "[DONE]"
    chunks = data[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Hello"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 9
    assert answer.usage == {"prompt_tokens": 9, "completion_tokens": 5}
    assert answer.ending is None


def test_streamed_messages_bridge_to_openai_format_provider_emits_anthropic_events_with_usage(litellm_httpx):
    async def go():
        with respx.mock() as mock:
            mock.post(OPENAI_CHAT_URL).mock(return_value=sse_response(chat_sse(("Hi", " there"), 3, 2)))
            body = {"max_tokens": 50, "messages": user(), "stream": True}
            answer = await LitellmUpstream().send(Call(GPT, MessagesWire(), body))
            return answer, await drain(answer)

    answer, events = run(go())
    names = sse_event_names(events)
    assert names[0] == "message_start" and names[-1] == "message_stop"
    data = sse_data(events)
    assert [d["type"] for d in data] == names  # each event's name matches its data's type
    text = "".join(d["delta"]["text"] for d in data if d["type"] == "content_block_delta")
    assert text == "Hi there"
    assert answer.usage == {"prompt_tokens": 3, "completion_tokens": 2}
    assert answer.ending is None


def test_streamed_responses_bridge_ends_with_response_completed_and_usage(litellm_httpx):
    async def go():
        with respx.mock() as mock:
            mock.post(OPENAI_CHAT_URL).mock(return_value=sse_response(chat_sse(("Hi", " you"), 4, 2)))
            answer = await LitellmUpstream().send(Call(GPT, ResponsesWire(), {"input": "hi", "stream": True}))
            return answer, await drain(answer)

    answer, events = run(go())
    types = [d["type"] for d in sse_data(events)]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    text = "".join(d["delta"] for d in sse_data(events) if d["type"] == "response.output_text.delta")
    assert text == "Hi you"
    assert answer.usage == {"prompt_tokens": 4, "completion_tokens": 2}


def test_streamed_responses_bridge_names_each_sse_event_by_its_type(litellm_httpx):
    async def go():
        with respx.mock() as mock:
            mock.post(OPENAI_CHAT_URL).mock(return_value=sse_response(chat_sse()))
            answer = await LitellmUpstream().send(Call(GPT, ResponsesWire(), {"input": "hi", "stream": True}))
            return await drain(answer)

    events = run(go())
    assert sse_event_names(events) == [d["type"] for d in sse_data(events)]


def test_chat_stream_broken_midway_ends_with_one_chat_error_event_and_is_marked_interrupted(litellm_httpx):
    async def go():
        with respx.mock() as mock:
            mock.post(ANTHROPIC_MESSAGES_URL).mock(
                return_value=broken_sse_response(anthropic_sse(anthropic_events(("Hel",))[:3])))
            answer = await LitellmUpstream().send(Call(CLAUDE_P, ChatWire(), {"messages": user(), "stream": True}))
            return answer, await drain(answer)

    answer, events = run(go())
    data = sse_data(events)
    assert "[DONE]" not in data
    assert data[0]["choices"][0]["delta"]["content"] == "Hel"  # what arrived before the break still went out
    assert [d for d in data if "error" in d] == [data[-1]]
    assert data[-1]["error"]["code"] == "stream_interrupted"
    assert data[-1]["error"]["type"] == "upstream_error"
    assert answer.ending == "stream_interrupted"


def test_interrupted_stream_error_message_says_stream_interrupted_once(litellm_httpx):
    async def go():
        with respx.mock() as mock:
            mock.post(ANTHROPIC_MESSAGES_URL).mock(
                return_value=broken_sse_response(anthropic_sse(anthropic_events(("Hel",))[:3])))
            answer = await LitellmUpstream().send(Call(CLAUDE_P, ChatWire(), {"messages": user(), "stream": True}))
            return await drain(answer)

    message = sse_data(run(go()))[-1]["error"]["message"]
    assert message.count("stream interrupted") == 1, message


def test_messages_bridge_stream_broken_midway_is_marked_interrupted(litellm_httpx):
    async def go():
        with respx.mock() as mock:
            mock.post(OPENAI_CHAT_URL).mock(return_value=broken_sse_response(chat_chunk("Hi")))
            body = {"max_tokens": 50, "messages": user(), "stream": True}
            answer = await LitellmUpstream().send(Call(GPT, MessagesWire(), body))
            return answer, await drain(answer)

    answer, events = run(go())
    assert sse_event_names(events)[-1] == "error"  # litellm's bridge ends the stream with its own error event...
    assert answer.ending == "stream_interrupted"
    last = sse_data(events)[-1]["error"]["message"]  # ...which reaches the client in the gateway's words
    assert last.startswith(f"stream interrupted: provider {MINI} stream failed: ") and "litellm." not in last


# -- count_tokens ------------------------------------------------------------------


@pytest.mark.parametrize("model", [MINI, CLAUDE])
def test_count_tokens_is_estimated_locally_without_calling_the_provider(litellm_httpx, model):
    provider = CONFIG.find(model)
    short = {"messages": user("hello there"), "system": "be nice"}
    longer = {"messages": user("hello there " * 50), "system": "be nice",
              "tools": [{"name": "lookup", "description": "find a thing", "input_schema": {"type": "object"}}]}

    async def go():
        with respx.mock(assert_all_called=False) as mock:  # no routes: any HTTP call would fail the test
            counts = [await LitellmUpstream().count_tokens(Call(provider, MessagesWire(), b)) for b in (short, longer)]
            return counts, len(mock.calls)

    (small, large), calls = run(go())
    assert calls == 0
    assert 0 < small < large
