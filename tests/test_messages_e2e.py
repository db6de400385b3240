"""Anthropic Messages end to end: the real Anthropic SDK -> gateway process -> fake provider process.

To an Anthropic-format provider the request is relayed (only `model` and the key
change); to an OpenAI-format provider litellm translates. Sessions are shared
with the chat endpoint.
"""

from __future__ import annotations

import json
import time
import uuid

import anthropic
import httpx
import pytest

from conftest import ANTHROPIC_KEY, CODE_PROMPT, REASONING_PROMPT, SMALL_TALK, launch, provider_config, stop

CLAUDE = "anthropic/claude-sonnet-4-20250514"
GPT4O = "openai/gpt-4o"
TOOLS = [{"name": "read_file", "description": "Read a file", "input_schema": {"type": "object", "properties": {}}}]


@pytest.fixture(scope="module")
def gw(tmp_path_factory, fake_provider):
    g = launch(provider_config(fake_provider.url), tmp_path_factory.mktemp("messages"))
    yield g
    stop(g.proc)


@pytest.fixture
def client(gw) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key="unused-by-gateway", max_retries=0)


@pytest.fixture(autouse=True)
def _clean(fake_provider):
    fake_provider.clear()


def sid() -> str:
    return str(uuid.uuid4())


def test_relayed_to_an_anthropic_provider_with_only_model_and_key_replaced(gw, fake_provider):
    # Shaped as Claude Code sends it: ?beta=true, beta headers, fields this gateway does not know.
    body = {"model": "claude-opus-4-8", "max_tokens": 64000, "stream": False,
            "system": [{"type": "text", "text": "You are Claude Code."}],
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>\ncontext the user did not write\n</system-reminder>"},
                {"type": "text", "text": CODE_PROMPT}]}],
            "thinking": {"type": "adaptive"}, "output_config": {"effort": "high"},
            "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}}
    r = httpx.post(f"{gw.url}/v1/messages?beta=true", json=body, timeout=30, headers={
        "x-api-key": "dummy", "anthropic-version": "2023-06-01", "anthropic-beta": "claude-code-20250219,effort-2025-11-24"})
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["text"].startswith("[claude-sonnet-4-20250514]")
    assert (r.headers["x-router-model"], r.headers["x-router-route"]) == (CLAUDE, "code_generation")
    sent = fake_provider.requests()[-1]
    assert sent["path"] == "/v1/messages"
    assert sent["body"] == {**body, "model": "claude-sonnet-4-20250514"}
    assert sent["headers"]["x-api-key"] == ANTHROPIC_KEY and "authorization" not in sent["headers"]
    assert sent["headers"]["anthropic-version"] == "2023-06-01"
    assert sent["headers"]["anthropic-beta"] == "claude-code-20250219,effort-2025-11-24"


def test_streamed_from_an_anthropic_provider_event_by_event(client):
    with client.messages.stream(model="claude-opus-4-8", max_tokens=100,
                                messages=[{"role": "user", "content": CODE_PROMPT}]) as stream:
        kinds = [event.type for event in stream]
        message = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert message.content[0].text == f"[claude-sonnet-4-20250514] {CODE_PROMPT}"
    assert message.stop_reason == "end_turn" and message.usage.output_tokens > 0


def test_translated_for_an_openai_format_provider_plain_and_streamed(client, fake_provider):
    raw = client.messages.with_raw_response.create(model="claude-opus-4-8", max_tokens=100,
                                                    messages=[{"role": "user", "content": REASONING_PROMPT}])
    message = raw.parse()
    assert raw.headers["x-router-model"] == GPT4O
    assert message.type == "message" and message.content[0].text == f"[gpt-4o] {REASONING_PROMPT}"
    assert fake_provider.requests()[-1]["path"] == "/v1/chat/completions"
    with client.messages.stream(model="claude-opus-4-8", max_tokens=100,
                                messages=[{"role": "user", "content": REASONING_PROMPT}]) as stream:
        text = "".join(stream.text_stream)
    assert text == f"[gpt-4o] {REASONING_PROMPT}"


@pytest.mark.parametrize("prompt, served_by, path", [(CODE_PROMPT, CLAUDE, "/v1/messages"),
                                                     (REASONING_PROMPT, GPT4O, "/v1/chat/completions")])
@pytest.mark.parametrize("stream", [False, True])
def test_tool_use_round_trip(client, fake_provider, prompt, served_by, path, stream):
    session = {"X-Session-Id": sid()}
    messages: list = [{"role": "user", "content": prompt}]

    def ask():
        if not stream:
            return client.messages.create(model="claude-opus-4-8", max_tokens=100, tools=TOOLS, messages=messages,
                                          extra_headers=session)
        with client.messages.stream(model="claude-opus-4-8", max_tokens=100, tools=TOOLS, messages=messages,
                                    extra_headers=session) as s:
            return s.get_final_message()

    first = ask()
    assert first.stop_reason == "tool_use"
    use = next(b for b in first.content if b.type == "tool_use")
    assert use.name == "read_file"
    messages += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "42 lines"}]}]
    final = ask()
    assert final.stop_reason == "end_turn" and final.content[0].text
    sent = fake_provider.requests()
    assert [r["path"] for r in sent] == [path, path]
    assert "42 lines" in json.dumps(sent[-1]["body"]["messages"])  # the tool result reached the provider


def test_a_session_pinned_on_chat_completions_is_served_by_the_same_model_here(gw, client):
    session = sid()
    r = httpx.post(f"{gw.url}/v1/chat/completions", headers={"X-Session-Id": session}, timeout=30,
                   json={"messages": [{"role": "user", "content": CODE_PROMPT}]})
    assert r.headers["x-router-model"] == CLAUDE
    raw = client.messages.with_raw_response.create(model="claude-opus-4-8", max_tokens=50, extra_headers={
        "X-Session-Id": session}, messages=[{"role": "user", "content": REASONING_PROMPT}])
    assert (raw.headers["x-router-model"], raw.headers["x-router-pinned"]) == (CLAUDE, "true")
    decision = httpx.post(f"{gw.url}/routing/v1/messages", headers={"X-Session-Id": session}, timeout=30,
                          json={"messages": [{"role": "user", "content": SMALL_TALK}]}).json()
    assert decision | {"trace_id": ""} == {"model": CLAUDE, "route": "code_generation", "trace_id": "",
                                           "session_id": session, "session_source": "header:x-session-id",
                                           "pinned": True}


def test_claude_code_requests_pin_by_its_own_session_id(gw, fake_provider):
    session = sid()
    user_id = json.dumps({"device_id": "d1", "account_uuid": "", "session_id": session})
    headers = {"X-Claude-Code-Session-Id": session, "x-api-key": "dummy", "anthropic-version": "2023-06-01"}
    models = []
    for prompt in (CODE_PROMPT, REASONING_PROMPT, SMALL_TALK):
        r = httpx.post(f"{gw.url}/v1/messages?beta=true", headers=headers, timeout=30, json={
            "model": "claude-opus-4-8", "max_tokens": 100, "stream": True, "metadata": {"user_id": user_id},
            "messages": [{"role": "user", "content": prompt}]})
        assert r.status_code == 200 and "event: message_stop" in r.text
        models.append((r.headers["x-router-model"], r.headers["x-router-pinned"]))
    assert models == [(CLAUDE, "false"), (CLAUDE, "true"), (CLAUDE, "true")]
    deadline = time.monotonic() + 5  # the request log is written in batches
    while "session_source=header:x-claude-code-session-id" not in gw.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "session_source=header:x-claude-code-session-id" in gw.output()


def test_router_reads_what_the_user_asked_not_the_system_prompt_or_tool_results(gw):
    decision = httpx.post(f"{gw.url}/routing/v1/messages", timeout=30, json={
        "system": [{"type": "text", "text": CODE_PROMPT * 3}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": REASONING_PROMPT}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": CODE_PROMPT, "signature": "s"},
                                              {"type": "tool_use", "id": "t1", "name": "grep", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": CODE_PROMPT},
                                         {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                      "data": "iVBORw0KGgo="}}]}]}).json()
    assert (decision["model"], decision["route"]) == (GPT4O, "complex_reasoning")


@pytest.mark.parametrize("body, status, fragment", [
    ({"model": "claude-x", "max_tokens": 10, "messages": []}, 400, "`messages` is required"),
    ({"max_tokens": 10, "messages": [{"role": "robot", "content": "hi"}]}, 400, "messages.0.role"),
    ({"max_tokens": "ten", "messages": [{"role": "user", "content": "hi"}]}, 400, "`max_tokens`"),
    ({"max_tokens": 10, "messages": [{"role": "user", "content": [{"text": "no type"}]}]}, 400, "messages.0.content.0"),
    ({"max_tokens": 10, "system": 7, "messages": [{"role": "user", "content": "hi"}]}, 400, "`system`"),
])
def test_bad_input_gets_a_clear_error_in_anthropics_shape(gw, client, body, status, fragment):
    r = httpx.post(f"{gw.url}/v1/messages", json=body, timeout=30)
    assert r.status_code == status
    payload = r.json()
    assert payload["type"] == "error" and payload["error"]["type"] == "invalid_request_error"
    assert fragment in payload["error"]["message"]
    if isinstance(body.get("max_tokens"), int):  # the SDK itself chokes on a string max_tokens
        with pytest.raises(anthropic.BadRequestError) as raised:  # the SDK reads the message out of it
            client.messages.create(**{"model": "claude-x", **body})
        assert fragment in str(raised.value)


def test_malformed_json_and_a_typo_model_on_chat_are_refused_but_messages_lets_the_gateway_choose(gw):
    r = httpx.post(f"{gw.url}/v1/messages", content=b'{"messages": [', timeout=30,
                   headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    chat = httpx.post(f"{gw.url}/v1/chat/completions", timeout=30,
                      json={"model": "gpt-4o-mnii", "messages": [{"role": "user", "content": SMALL_TALK}]})
    assert chat.status_code == 400 and "not configured" in chat.json()["error"]["message"]
    ok = httpx.post(f"{gw.url}/v1/messages", timeout=30,
                    json={"model": "claude-opus-4-8", "max_tokens": 10, "messages": [{"role": "user", "content": SMALL_TALK}]})
    assert ok.status_code == 200 and ok.headers["x-router-model"] == "openai/gpt-4o-mini"


def test_failover_from_a_failing_claude_re_pins_the_session_and_errors_keep_anthropics_shape(gw, client, fake_provider):
    session = {"X-Session-Id": sid()}
    raw = client.messages.with_raw_response.create(
        model="claude-opus-4-8", max_tokens=50, extra_headers=session,
        messages=[{"role": "user", "content": f"{CODE_PROMPT} FAULT:500@claude-sonnet-4-20250514"}])
    assert raw.headers["x-router-failover"] == f"{CLAUDE} -> openai/gpt-4o-mini"
    assert raw.parse().content[0].text.startswith("[gpt-4o-mini]")
    after = httpx.post(f"{gw.url}/routing/v1/messages", headers=session, timeout=30,
                       json={"messages": [{"role": "user", "content": CODE_PROMPT}]}).json()
    assert (after["model"], after["pinned"]) == ("openai/gpt-4o-mini", True)
    with pytest.raises(anthropic.InternalServerError) as raised:
        client.messages.create(model="claude-opus-4-8", max_tokens=50,
                               messages=[{"role": "user", "content": f"{CODE_PROMPT} FAULT:500"}])
    error = raised.value.body["error"]  # type: ignore[index]
    assert raised.value.status_code == 502 and error["type"] == "api_error"
    assert "failed (500)" in error["message"] and ANTHROPIC_KEY not in error["message"]


def test_a_stream_broken_midway_ends_with_an_anthropic_error_event(gw):
    with httpx.stream("POST", f"{gw.url}/v1/messages", timeout=30, json={
            "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": f"{CODE_PROMPT} FAULT:midstream"}]}) as r:
        text = r.read().decode()
    assert r.status_code == 200 and text.startswith("event: message_start")
    last = json.loads(text.rstrip().split("\n")[-1].removeprefix("data: "))
    assert last == {"type": "error", "error": {"type": "api_error", "message": (
        f"stream interrupted: provider {CLAUDE} closed the stream before it finished")}}


def test_count_tokens_for_the_model_that_would_serve(gw, client, fake_provider):
    count = client.messages.count_tokens(model="claude-opus-4-8", messages=[{"role": "user", "content": CODE_PROMPT}])
    assert count.input_tokens > 0
    assert fake_provider.requests()[-1]["path"] == "/v1/messages/count_tokens"  # Claude answers itself
    estimated = client.messages.count_tokens(model="claude-opus-4-8",
                                             messages=[{"role": "user", "content": REASONING_PROMPT}])
    assert 10 < estimated.input_tokens < 100  # litellm's tokenizer, for the OpenAI-format model


def test_root_url_answers_head_and_get_for_client_probes(gw):
    assert httpx.head(gw.url).status_code == 200
    assert httpx.get(gw.url).json()["status"] == "ok"
