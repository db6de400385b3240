"""Session identity from what clients already send, on every decision endpoint (in process, no provider called).

Requests are shaped as the clients send them (recorded from Claude Code 2.1
and Codex 0.171): Claude Code's `X-Claude-Code-Session-Id` header and the same id
inside the JSON string `metadata.user_id`; Codex's `session-id` header,
`prompt_cache_key` and `client_metadata.session_id`; Plano's `X-Model-Affinity`;
the seed's `X-Session-Id`; LiteLLM's `metadata.session_id`.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from typing import Any

import httpx
import pytest
import yaml

from conftest import CODE_PROMPT, REASONING_PROMPT
from gateway.app import create_app
from gateway.config import parse_config

CLAUDE = "anthropic/claude-sonnet-4-20250514"
GPT4O = "openai/gpt-4o"
BASE = textwrap.dedent("""\
    version: v0.3.0
    model_providers:
      - model: openai/gpt-4o-mini
        default: true
      - model: openai/gpt-4o
        routing_preferences:
          - name: complex_reasoning
            description: complex reasoning tasks, multi-step analysis, or detailed explanations
      - model: anthropic/claude-sonnet-4-20250514
        routing_preferences:
          - name: code_generation
            description: generating new code, writing functions, or creating boilerplate
    """)
ENDPOINTS = ("chat", "messages", "responses")


def body_for(endpoint: str, prompt: str, **extra: Any) -> tuple[str, dict[str, Any]]:
    """A decision request carrying `prompt` in `endpoint`'s wire format."""
    if endpoint == "chat":
        return "/routing/v1/chat/completions", {"messages": [{"role": "user", "content": prompt}], **extra}
    if endpoint == "messages":
        return "/routing/v1/messages", {"model": "claude-opus-4-8", "max_tokens": 64,
                                        "messages": [{"role": "user", "content": prompt}], **extra}
    return "/routing/v1/responses", {"model": "gpt-6.2-sol", "input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": prompt}]}], "store": False,
        **extra}


class Gateway:
    """The app in process on `config` (extra YAML appended to BASE)."""

    def __init__(self, extra: str = "", env: dict[str, str] | None = None) -> None:
        self.app = create_app(parse_config(yaml.safe_load(BASE + textwrap.dedent(extra)), env=env or {}))

    def post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
                return await client.post(path, json=body, headers=headers or {})

        return asyncio.run(go())

    def decide(self, endpoint: str, prompt: str, headers: dict[str, str] | None = None,
               **extra: Any) -> dict[str, Any]:
        path, body = body_for(endpoint, prompt, **extra)
        r = self.post(path, body, headers)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture(scope="module")
def gw() -> Gateway:
    return Gateway()


CLAUDE_CODE_USER_ID = json.dumps({"device_id": "cd3e38fc", "account_uuid": "", "session_id": "{sid}"})

# (source label, how to put session id `sid` into a request: headers, body fields)
SOURCES: list[tuple[str, Any]] = [
    ("header:x-session-id", lambda sid: ({"X-Session-Id": sid}, {})),
    ("header:x-model-affinity", lambda sid: ({"X-Model-Affinity": sid}, {})),
    ("header:x-claude-code-session-id", lambda sid: ({"X-Claude-Code-Session-Id": sid}, {})),
    ("header:session-id", lambda sid: ({"session-id": sid, "thread-id": sid}, {})),
    ("body:metadata.session_id", lambda sid: ({}, {"metadata": {"session_id": sid}})),
    ("body:metadata.user_id#session_id",
     lambda sid: ({}, {"metadata": {"user_id": CLAUDE_CODE_USER_ID.replace("{sid}", sid)}})),
    ("body:prompt_cache_key", lambda sid: ({}, {"prompt_cache_key": sid})),
    ("body:client_metadata.session_id", lambda sid: ({}, {"client_metadata": {"session_id": sid, "turn_id": "t1"}})),
]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("label, place", SOURCES, ids=[s[0] for s in SOURCES])
def test_each_default_source_pins_a_session_on_every_endpoint(gw, endpoint, label, place):
    sid = f"{label}-{endpoint}".replace(":", "-").replace("#", "-")
    headers, fields = place(sid)
    first = gw.decide(endpoint, CODE_PROMPT, headers, **fields)
    assert first | {"trace_id": ""} == {"model": CLAUDE, "route": "code_generation", "trace_id": "",
                                        "session_id": sid, "session_source": label, "pinned": False}
    second = gw.decide(endpoint, REASONING_PROMPT, headers, **fields)
    assert (second["model"], second["pinned"], second["session_source"]) == (CLAUDE, True, label)


def test_a_session_pinned_on_one_endpoint_is_pinned_on_the_others(gw):
    gw.decide("messages", CODE_PROMPT, {"X-Claude-Code-Session-Id": "cross-1"})
    for endpoint in ("chat", "responses"):
        d = gw.decide(endpoint, REASONING_PROMPT, {"X-Session-Id": "cross-1"})
        assert (d["model"], d["pinned"]) == (CLAUDE, True)


def test_the_first_source_in_the_list_wins(gw):
    d = gw.decide("messages", CODE_PROMPT, {"X-Claude-Code-Session-Id": "from-header"},
                  metadata={"user_id": CLAUDE_CODE_USER_ID.replace("{sid}", "from-body")})
    assert (d["session_id"], d["session_source"]) == ("from-header", "header:x-claude-code-session-id")
    d = gw.decide("chat", CODE_PROMPT, {"X-Session-Id": "seed", "X-Model-Affinity": "plano"})
    assert d["session_id"] == "seed"


def test_a_plain_user_id_in_metadata_is_not_a_session(gw):
    d = gw.decide("messages", CODE_PROMPT, metadata={"user_id": "user_4711"})
    assert "session_id" not in d and d["pinned"] is False


def test_a_configured_list_replaces_the_defaults_and_an_empty_list_turns_sources_off():
    custom = Gateway("""\
        routing:
          session_key_sources:
            - header: X-Conversation
            - body: metadata.user_id
              json: conversation
        """)
    d = custom.decide("chat", CODE_PROMPT, {"X-Session-Id": "ignored", "X-Conversation": "c-1"})
    assert (d["session_id"], d["session_source"]) == ("c-1", "header:x-conversation")
    d = custom.decide("messages", CODE_PROMPT, metadata={"user_id": json.dumps({"conversation": "c-2"})})
    assert (d["session_id"], d["session_source"]) == ("c-2", "body:metadata.user_id#conversation")
    assert "session_id" not in custom.decide("chat", CODE_PROMPT, {"X-Session-Id": "ignored"})

    none = Gateway("routing:\n  session_key_sources: []\n")
    d = none.decide("messages", CODE_PROMPT, {"X-Claude-Code-Session-Id": "s", "X-Session-Id": "s"})
    assert "session_id" not in d and d["pinned"] is False


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("headers, fields, where", [
    ({"X-Claude-Code-Session-Id": ""}, {}, "X-Claude-Code-Session-Id is empty"),
    ({"session-id": "x" * 257}, {}, "session-id is 257 characters"),
    ({}, {"prompt_cache_key": "has spaces in it"}, "body:prompt_cache_key must be printable ASCII"),
    ({}, {"metadata": {"session_id": 42}}, "body:metadata.session_id must be a string"),
    ({}, {"metadata": {"user_id": json.dumps({"session_id": "tab\there"})}}, "body:metadata.user_id#session_id"),
])
def test_a_bad_session_value_from_any_source_is_a_clear_400(gw, endpoint, headers, fields, where):
    path, body = body_for(endpoint, CODE_PROMPT, **fields)
    r = gw.post(path, body, headers)
    assert r.status_code == 400
    error = r.json()["error"]
    assert where in error["message"]
    if endpoint == "messages":
        assert r.json()["type"] == "error" and error["type"] == "invalid_request_error"


def test_tenants_and_gateway_keys_scope_body_sources_too():
    gw = Gateway("""\
        auth:
          keys:
            - {name: team-a, key: $KEY_A}
            - {name: team-b, key: $KEY_B}
        """, env={"KEY_A": "gk-a", "KEY_B": "gk-b"})
    same = {"metadata": {"user_id": CLAUDE_CODE_USER_ID.replace("{sid}", "shared-id")}}
    a = gw.decide("messages", CODE_PROMPT, {"x-api-key": "gk-a"}, **same)
    b = gw.decide("messages", REASONING_PROMPT, {"x-api-key": "gk-b"}, **same)
    assert (a["model"], b["model"], b["pinned"]) == (CLAUDE, GPT4O, False)  # one id, two tenants, two pins
    assert gw.decide("messages", REASONING_PROMPT, {"Authorization": "Bearer gk-a"}, **same)["pinned"] is True


def test_implicit_sessions_pin_a_conversation_by_its_opening_when_enabled():
    off = Gateway()
    assert "session_id" not in off.decide("chat", CODE_PROMPT)

    gw = Gateway("routing:\n  implicit_sessions: true\n")
    opening = [{"role": "system", "content": "You are a helpful agent."}, {"role": "user", "content": CODE_PROMPT}]
    first = gw.post("/routing/v1/chat/completions", {"messages": opening}).json()
    later = gw.post("/routing/v1/chat/completions", {"messages": opening + [
        {"role": "assistant", "content": "def merge(a, b): ..."},
        {"role": "user", "content": REASONING_PROMPT}]}).json()
    assert first["session_source"] == "implicit" and first["session_id"].startswith("conv-")
    assert (later["session_id"], later["model"], later["pinned"]) == (first["session_id"], CLAUDE, True)
    other = gw.post("/routing/v1/chat/completions", {"messages": [
        {"role": "system", "content": "You are a helpful agent."}, {"role": "user", "content": REASONING_PROMPT}]}).json()
    assert other["session_id"] != first["session_id"] and other["model"] == GPT4O
    explicit = gw.decide("chat", CODE_PROMPT, {"X-Session-Id": "explicit-wins"})
    assert explicit["session_source"] == "header:x-session-id"


def test_route_on_user_only_keeps_the_decision_through_tool_result_turns():
    gw = Gateway("routing:\n  route_on_user_only: true\n")
    ask = [{"role": "user", "content": CODE_PROMPT}]
    tool_turn = ask + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "analyze", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": REASONING_PROMPT}]  # tool output full of another intent
    stats = gw.app.state.gateway.decider.stats
    assert gw.post("/routing/v1/chat/completions", {"messages": ask}).json()["model"] == CLAUDE
    routed = stats.routed
    kept = gw.post("/routing/v1/chat/completions", {"messages": tool_turn}).json()
    assert (kept["model"], kept["route"], kept["pinned"]) == (CLAUDE, "code_generation", False)
    assert stats.routed == routed  # the router did not run for the tool-result turn
    # A tool turn of a conversation never seen routes on its last user message.
    unseen = [{"role": "system", "content": "another agent"}] + tool_turn
    assert gw.post("/routing/v1/chat/completions", {"messages": unseen}).json()["model"] == CLAUDE
    assert stats.routed == routed + 1
    # A new question in the same conversation routes afresh.
    new_turn = tool_turn + [{"role": "assistant", "content": "done"}, {"role": "user", "content": REASONING_PROMPT}]
    assert gw.post("/routing/v1/chat/completions", {"messages": new_turn}).json()["model"] == GPT4O

    # Anthropic form: the tool results arrive as tool_result blocks in a user turn.
    messages = [{"role": "user", "content": REASONING_PROMPT},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "run", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": CODE_PROMPT}]}]
    assert gw.post("/routing/v1/messages", {"messages": messages[:1]}).json()["model"] == GPT4O
    routed = stats.routed
    assert gw.post("/routing/v1/messages", {"messages": messages}).json()["model"] == GPT4O
    assert stats.routed == routed


def test_log_prompts_logs_what_the_user_asked_on_every_surface(caplog):
    import logging

    from gateway.app import create_app as make

    gw = Gateway()
    gw.app = make(gw.app.state.gateway.config, log_prompts=True)
    reminder = {"type": "text", "text": "<system-reminder>\nnot what the user asked\n</system-reminder>"}
    with caplog.at_level(logging.INFO, logger="gateway.request"):
        gw.post("/routing/v1/messages", {"messages": [{"role": "user", "content": [reminder, {
            "type": "text", "text": "merge two sorted lists"}]}]})
        gw.post("/routing/v1/chat/completions", {"messages": [{"role": "user", "content": [
            {"type": "text", "text": "parse ISO dates"}]}]})
        gw.post("/routing/v1/responses", {"input": "explain CAP"})
    prompts = [r.fields.get("prompt") for r in caplog.records if hasattr(r, "fields")]
    assert prompts == ["merge two sorted lists", "parse ISO dates", "explain CAP"]
