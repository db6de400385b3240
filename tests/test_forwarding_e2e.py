"""Forwarding through litellm, end to end: OpenAI SDK -> gateway process -> fake provider process."""

from __future__ import annotations

import json
import uuid

import httpx
import openai
import pytest

from conftest import ANTHROPIC_KEY, CODE_PROMPT, OPENAI_KEY, REASONING_PROMPT, SMALL_TALK


@pytest.fixture
def client(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused-by-gateway", max_retries=0)


@pytest.fixture(autouse=True)
def _clean(fake_provider):
    fake_provider.clear()


def last_request(fake_provider) -> dict:
    requests = fake_provider.requests()
    assert requests, "the fake provider received nothing"
    return requests[-1]


def test_non_streamed_answer_from_openai_format_provider(client, fake_provider):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": REASONING_PROMPT}])
    completion = raw.parse()
    assert completion.choices[0].message.content == f"[gpt-4o] {REASONING_PROMPT}"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens > 0
    assert raw.headers["x-router-model"] == "openai/gpt-4o"
    assert raw.headers["x-router-route"] == "complex_reasoning"
    assert raw.headers["x-router-pinned"] == "false"
    sent = last_request(fake_provider)
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["model"] == "gpt-4o"
    assert sent["headers"]["authorization"] == f"Bearer {OPENAI_KEY}"


def test_streamed_answer_from_openai_format_provider_with_usage(client, fake_provider):
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": REASONING_PROMPT}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"[gpt-4o] {REASONING_PROMPT}"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)
    assert last_request(fake_provider)["body"]["stream"] is True


def test_non_streamed_answer_from_anthropic_format_provider(client, fake_provider):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": CODE_PROMPT}])
    completion = raw.parse()
    assert raw.headers["x-router-model"] == "anthropic/claude-sonnet-4-20250514"
    assert completion.choices[0].message.content == f"[claude-sonnet-4-20250514] {CODE_PROMPT}"
    sent = last_request(fake_provider)
    assert sent["path"] == "/v1/messages"
    assert sent["body"]["model"] == "claude-sonnet-4-20250514"
    assert sent["headers"]["x-api-key"] == ANTHROPIC_KEY


def test_streamed_answer_from_anthropic_format_provider(client, fake_provider):
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": CODE_PROMPT}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"[claude-sonnet-4-20250514] {CODE_PROMPT}"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    sent = last_request(fake_provider)
    assert sent["path"] == "/v1/messages" and sent["body"]["stream"] is True


def test_sse_wire_format_matches_openai(gateway):
    """Raw bytes: `data:` lines of chat.completion.chunk JSON, no litellm padding, ending in [DONE]."""
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions",
                      json={"messages": [{"role": "user", "content": SMALL_TALK}], "stream": True}, timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-router-model"] == "openai/gpt-4o-mini"
        data = [line[len("data: "):] for line in r.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    for payload in data[:-1]:
        chunk = json.loads(payload)
        assert chunk["object"] == "chat.completion.chunk"
        assert set(chunk) <= {"id", "object", "created", "model", "choices", "usage", "system_fingerprint"}
        for choice in chunk["choices"]:
            assert set(choice) == {"index", "delta", "logprobs", "finish_reason"}
            assert set(choice["delta"]) <= {"role", "content", "tool_calls", "refusal"}


def test_openai_parameters_reach_the_provider(client, fake_provider):
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "weather for a city",
                                               "parameters": {"type": "object", "properties": {}}}}]
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": SMALL_TALK}], temperature=0.2,
        max_tokens=55, stop=["\n\n"], user="agent-7", seed=3, tools=tools, tool_choice="auto",
        response_format={"type": "text"})
    sent = last_request(fake_provider)["body"]
    assert sent["temperature"] == 0.2
    assert sent["max_tokens"] == 55
    assert sent["stop"] == ["\n\n"]
    assert sent["user"] == "agent-7"
    assert sent["seed"] == 3
    assert sent["tools"] == tools
    assert sent["tool_choice"] == "auto"
    assert completion.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert completion.choices[0].finish_reason == "tool_calls"


def test_no_route_serves_requested_model_and_omitted_model_serves_default(client, fake_provider):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": SMALL_TALK}])
    assert raw.headers["x-router-model"] == "openai/gpt-4o"
    assert raw.headers["x-router-route"] == "none"
    r = httpx.post(f"{client.base_url}chat/completions", json={"messages": [{"role": "user", "content": SMALL_TALK}]}, timeout=30)
    assert r.status_code == 200
    assert r.headers["x-router-model"] == "openai/gpt-4o-mini"
    assert r.json()["choices"][0]["message"]["content"] == f"[gpt-4o-mini] {SMALL_TALK}"


def test_unknown_model_is_400_naming_configured_models(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="gpt-5-turbo", messages=[{"role": "user", "content": "hi"}])
    message = err.value.body["message"]
    assert "gpt-5-turbo" in message and "openai/gpt-4o-mini" in message
    assert err.value.body["code"] == "model_not_found"


def test_session_header_is_echoed_and_pins_the_forwarding_endpoint(client):
    sid = str(uuid.uuid4())
    first = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": CODE_PROMPT}], extra_headers={"X-Session-Id": sid})
    second = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": REASONING_PROMPT}], extra_headers={"X-Session-Id": sid},
        stream=True)
    assert first.headers["x-session-id"] == sid and second.headers["x-session-id"] == sid
    assert first.headers["x-router-pinned"] == "false"
    assert second.headers["x-router-pinned"] == "true"
    assert second.headers["x-router-model"] == "anthropic/claude-sonnet-4-20250514"
    text = "".join(c.choices[0].delta.content or "" for c in second.parse() if c.choices)
    assert text.startswith("[claude-sonnet-4-20250514]")


def test_models_endpoint_lists_configured_models_and_health_is_ok(client, gateway):
    ids = [m.id for m in client.models.list()]
    assert ids == ["openai/gpt-4o-mini", "openai/gpt-4o", "anthropic/claude-sonnet-4-20250514"]
    assert httpx.get(f"{gateway.url}/healthz").json()["status"] == "ok"


def test_upstream_errors_map_to_statuses_without_leaking_keys(client, gateway):
    with pytest.raises(openai.InternalServerError) as err:  # 502 after retries and failover
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "FAULT:500"}])
    assert err.value.status_code == 502
    assert "gpt-4o-mini" in err.value.body["message"]
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "FAULT:429"}])
    assert err.value.response.headers["retry-after"] == "7"
    output = gateway.output()
    assert OPENAI_KEY not in output and ANTHROPIC_KEY not in output
