"""OpenAI Responses end to end: the real OpenAI SDK -> gateway process -> fake provider process.

gpt-4o is configured as speaking Responses itself (relayed), gpt-4o-mini as a
chat-only server (bridged by litellm over chat completions), Claude as
Anthropic-format (bridged over Messages).
"""

from __future__ import annotations

import json
import socket
import uuid

import httpx
import openai
import pytest

from conftest import CODE_PROMPT, OPENAI_KEY, REASONING_PROMPT, SMALL_TALK, launch, provider_config, stop

CLAUDE = "anthropic/claude-sonnet-4-20250514"
GPT4O = "openai/gpt-4o"
MINI = "openai/gpt-4o-mini"
TOOLS = [{"type": "function", "name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
# (prompt, model that serves it, path the fake provider sees)
PATHS = [(REASONING_PROMPT, GPT4O, "/v1/responses"), (SMALL_TALK, MINI, "/v1/chat/completions"),
         (CODE_PROMPT, CLAUDE, "/v1/messages")]


@pytest.fixture(scope="module")
def gw(tmp_path_factory, fake_provider):
    config = provider_config(fake_provider.url).replace(
        "  - model: openai/gpt-4o\n", "  - model: openai/gpt-4o\n    responses_api: true\n")
    g = launch(config, tmp_path_factory.mktemp("responses"))
    yield g
    stop(g.proc)


@pytest.fixture
def client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused-by-gateway", max_retries=0)


@pytest.fixture(autouse=True)
def _clean(fake_provider):
    fake_provider.clear()


def session() -> dict[str, str]:
    return {"X-Session-Id": str(uuid.uuid4())}


@pytest.mark.parametrize("prompt, model, path", PATHS, ids=["native", "chat-only", "anthropic"])
def test_create_on_each_kind_of_provider(client, fake_provider, prompt, model, path):
    raw = client.responses.with_raw_response.create(model="gpt-6.2-sol", input=prompt, instructions="Be brief.")
    response = raw.parse()
    assert raw.headers["x-router-model"] == model
    assert response.output_text == f"[{model.split('/')[1]}] {prompt}"
    assert response.status == "completed" and response.usage.output_tokens > 0
    sent = fake_provider.requests()[-1]
    assert sent["path"] == path
    if path == "/v1/responses":  # relayed: the body as sent, but for the model
        assert sent["body"] == {"model": "gpt-4o", "input": prompt, "instructions": "Be brief."}
        assert sent["headers"]["authorization"] == f"Bearer {OPENAI_KEY}"


@pytest.mark.parametrize("prompt, model, path", PATHS, ids=["native", "chat-only", "anthropic"])
def test_stream_on_each_kind_of_provider(client, fake_provider, prompt, model, path):
    with client.responses.stream(model="gpt-6.2-sol", input=[{"role": "user", "content": prompt}]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds
    assert final.output_text == f"[{model.split('/')[1]}] {prompt}"
    assert fake_provider.requests()[-1]["path"] == path


@pytest.mark.parametrize("prompt, model, path", PATHS, ids=["native", "chat-only", "anthropic"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_function_call_round_trip_with_store_false_and_the_whole_input(client, fake_provider, prompt, model, path,
                                                                        stream):
    headers = session()
    items: list = [{"role": "user", "content": prompt}]

    def ask():
        if not stream:
            return client.responses.create(model="gpt-6.2-sol", input=items, tools=TOOLS, store=False,
                                           extra_headers=headers)
        with client.responses.stream(model="gpt-6.2-sol", input=items, tools=TOOLS, store=False,
                                     extra_headers=headers) as s:
            for _ in s:
                pass
            return s.get_final_response()

    first = ask()
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather"
    items += [call.model_dump(exclude_none=True),
              {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}]
    final = ask()
    assert final.output_text and not any(item.type == "function_call" for item in final.output)
    sent = fake_provider.requests()
    assert [r["path"] for r in sent] == [path, path]
    assert "sunny, 21 C" in json.dumps(sent[-1]["body"])  # the tool output reached the provider


def test_previous_response_id_is_honoured_by_a_native_provider_and_refused_clearly_when_bridged(client):
    headers = session()
    first = client.responses.create(model="gpt-4o", input=REASONING_PROMPT, extra_headers=headers)
    second = client.responses.create(model="gpt-4o", input="and in one sentence?", previous_response_id=first.id,
                                     extra_headers=headers)
    assert second.output_text == "[gpt-4o] and in one sentence?"
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(input=CODE_PROMPT, previous_response_id=first.id)  # routed to Claude: bridged
    assert raised.value.status_code == 400
    assert "previous_response_id cannot be honoured" in raised.value.message
    assert "send the whole conversation" in raised.value.message


def test_sessions_are_shared_with_the_other_endpoints(gw, client):
    headers = session()
    r = httpx.post(f"{gw.url}/v1/messages", headers=headers, timeout=30,
                   json={"max_tokens": 50, "messages": [{"role": "user", "content": CODE_PROMPT}]})
    assert r.headers["x-router-model"] == CLAUDE
    raw = client.responses.with_raw_response.create(model="gpt-6.2-sol", input=REASONING_PROMPT, extra_headers=headers)
    assert (raw.headers["x-router-model"], raw.headers["x-router-pinned"]) == (CLAUDE, "true")
    decision = httpx.post(f"{gw.url}/routing/v1/responses", headers=headers, timeout=30,
                          json={"input": SMALL_TALK}).json()
    assert (decision["model"], decision["pinned"], decision["route"]) == (CLAUDE, True, "code_generation")
    chat = httpx.post(f"{gw.url}/routing/v1/chat/completions", headers=headers, timeout=30,
                      json={"messages": [{"role": "user", "content": SMALL_TALK}]}).json()
    assert (chat["model"], chat["pinned"]) == (CLAUDE, True)


def test_codex_shaped_requests_route_on_the_users_words_and_pin_by_its_session_id(gw, fake_provider):
    thread = "01a228aa-35bc-7141-997e-4ec692047902"
    headers = {"session-id": thread, "thread-id": thread, "x-client-request-id": thread}

    def codex_input(question: str) -> list:
        return [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": CODE_PROMPT * 5}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text":
                "<environment_context>\n  <cwd>/work/proj</cwd>\n  <shell>bash</shell>\n</environment_context>"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": question}]},
        ]

    body = {"model": "gpt-6.2-sol", "stream": True, "store": False, "tool_choice": "auto",
            "parallel_tool_calls": False, "reasoning": {"effort": "low"}, "include": ["reasoning.encrypted_content"],
            "prompt_cache_key": thread, "client_metadata": {"session_id": thread, "thread_id": thread}}
    first = httpx.post(f"{gw.url}/v1/responses", headers=headers, timeout=30,
                       json={**body, "input": codex_input(REASONING_PROMPT)})
    assert first.status_code == 200 and "event: response.completed" in first.text
    assert (first.headers["x-router-model"], first.headers["x-router-pinned"]) == (GPT4O, "false")
    second = httpx.post(f"{gw.url}/v1/responses", headers=headers, timeout=30,
                        json={**body, "input": codex_input(REASONING_PROMPT) + [
                            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": CODE_PROMPT}]}]})
    assert (second.headers["x-router-model"], second.headers["x-router-pinned"]) == (GPT4O, "true")
    sent = fake_provider.requests()[-1]
    assert sent["path"] == "/v1/responses" and sent["body"]["prompt_cache_key"] == thread


def test_codex_websocket_attempt_is_refused_at_once_with_426(gw):
    host, port = gw.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"GET /v1/responses HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                  b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"openai-beta: responses_websockets=2026-02-06\r\n\r\n")
        head = s.recv(4096).decode(errors="replace")
    assert head.startswith("HTTP/1.1 426"), head
    plain = httpx.get(f"{gw.url}/v1/responses")
    assert plain.status_code == 426 and "POST /v1/responses" in plain.json()["error"]["message"]


@pytest.mark.parametrize("body, fragment", [
    ({"model": "gpt-4o"}, "`input` is required"),
    ({"input": 42}, "`input` must be a string or a list"),
    ({"input": []}, "`input` must not be empty"),
    ({"input": ["just a string"]}, "input[0] must be an object"),
    ({"input": [{"role": "user", "content": 5}]}, "input[0].content"),
    ({"input": "hi", "stream": "yes"}, "`stream` must be true or false"),
    ({"input": "hi", "instructions": ["a"]}, "`instructions` must be a string"),
    ({"input": [{"type": "item_reference", "id": ["x"]}]}, "input[0] is an item_reference without a string `id`"),
    ({"input": [{"role": "user", "content": [5, "x"]}]}, "input[0].content[0] must be a content part object"),
])
def test_bad_input_gets_a_clear_400_in_openais_shape(gw, body, fragment):
    r = httpx.post(f"{gw.url}/v1/responses", json=body, timeout=30)
    assert r.status_code == 400
    assert fragment in r.json()["error"]["message"] and r.json()["error"]["type"] == "invalid_request_error"


def test_failover_re_pins_and_a_broken_stream_ends_with_an_error_event(gw, client):
    headers = session()
    raw = client.responses.with_raw_response.create(
        model="gpt-6.2-sol", input=f"{REASONING_PROMPT} FAULT:500@gpt-4o", extra_headers=headers)
    assert raw.headers["x-router-failover"] == f"{GPT4O} -> {MINI}"
    decision = httpx.post(f"{gw.url}/routing/v1/responses", headers=headers, timeout=30,
                          json={"input": REASONING_PROMPT}).json()
    assert (decision["model"], decision["pinned"]) == (MINI, True)
    with httpx.stream("POST", f"{gw.url}/v1/responses", timeout=30, json={
            "input": f"{REASONING_PROMPT} FAULT:midstream", "stream": True}) as r:
        text = r.read().decode()
    assert text.startswith("event: response.created")
    last = text.strip().split("\n\n")[-1]
    assert last.startswith("event: error") and "closed the stream before it finished" in last


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_item_references_to_earlier_answers_are_expanded_for_bridged_providers(gw, client, fake_provider, stream):
    # The Vercel AI SDK's default: the assistant's earlier turn comes back as {"type": "item_reference", "id": ...}.
    headers = session()
    if stream:
        with client.responses.stream(model="gpt-4o-mini", input=SMALL_TALK, extra_headers=headers) as s:
            for _ in s:
                pass
            first = s.get_final_response()
    else:
        first = client.responses.create(model="gpt-4o-mini", input=SMALL_TALK, extra_headers=headers)
    said = first.output[0]
    assert fake_provider.requests()[-1]["path"] == "/v1/chat/completions"  # bridged
    client.responses.create(model="gpt-4o-mini", extra_headers=headers, input=[
        {"role": "user", "content": SMALL_TALK}, {"type": "item_reference", "id": said.id},
        {"role": "user", "content": "and shorter?"}])
    sent = fake_provider.requests()[-1]["body"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert first.output_text in json.dumps(sent[1])


def test_an_item_reference_the_gateway_never_saw_is_a_clear_400_for_a_bridged_provider(client, fake_provider):
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model="gpt-4o-mini", input=[
            {"role": "user", "content": SMALL_TALK}, {"type": "item_reference", "id": "msg_never_seen"}])
    assert "input[1] refers to item 'msg_never_seen'" in raised.value.message
    assert fake_provider.requests() == []  # refused before any provider call
    # A provider that speaks Responses itself holds its items: the reference goes through untouched.
    client.responses.create(model="gpt-4o", input=[
        {"role": "user", "content": REASONING_PROMPT}, {"type": "item_reference", "id": "msg_held_by_openai"}])
    assert {"type": "item_reference", "id": "msg_held_by_openai"} in fake_provider.requests()[-1]["body"]["input"]


def test_a_fallback_that_cannot_hold_the_conversation_state_is_not_failed_over_to(gw, client, fake_provider):
    headers = session()
    first = client.responses.create(model="gpt-4o", input=REASONING_PROMPT, extra_headers=headers)
    with pytest.raises(openai.APIStatusError) as raised:  # gpt-4o fails; its fallback (chat-only) keeps no state
        client.responses.create(model="gpt-4o", input="and now? FAULT:500@gpt-4o", previous_response_id=first.id,
                                extra_headers=headers)
    assert raised.value.status_code == 502 and "openai/gpt-4o failed (500)" in raised.value.message
    assert all(r["path"] == "/v1/responses" for r in fake_provider.requests())  # nothing bridged, nothing dropped
    decision = httpx.post(f"{gw.url}/routing/v1/responses", headers=headers, timeout=30,
                          json={"input": REASONING_PROMPT}).json()
    assert (decision["model"], decision["pinned"]) == (GPT4O, True)  # still pinned where its state lives


def test_answered_items_are_kept_per_tenant(start_gateway, fake_provider):
    auth = "auth:\n  keys:\n    - {name: team-a, key: $KEY_A}\n    - {name: team-b, key: $KEY_B}\n"
    gw = start_gateway(provider_config(fake_provider.url, extra=auth), env={"KEY_A": "gk-a", "KEY_B": "gk-b"})
    team_a = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="gk-a", max_retries=0)
    team_b = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="gk-b", max_retries=0)
    said = team_a.responses.create(model="gpt-4o-mini", input="team A secret plan").output[0]
    reference = [{"role": "user", "content": SMALL_TALK}, {"type": "item_reference", "id": said.id}]
    with pytest.raises(openai.BadRequestError) as raised:
        team_b.responses.create(model="gpt-4o-mini", input=reference)
    assert f"refers to item {said.id!r}" in raised.value.message
    team_a.responses.create(model="gpt-4o-mini", input=reference)  # its own item: expanded
    assert "team A secret plan" in json.dumps(fake_provider.requests()[-1]["body"])
