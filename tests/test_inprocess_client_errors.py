"""A malformed request is the client's error on every path: 400, no retry, no failover, no re-pin.

litellm raises deep inside for fields whose shape it does not expect; before
these checks the gateway took that for a provider failure, retried it, failed
over to another model and re-pinned the session there.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from inprocess_helpers import (ANTHROPIC_MESSAGES_URL, CLAUDE, LITELLM_NOISE, OPENAI_CHAT_URL, anthropic_message,
                               chat_completion, litellm_httpx)
from test_inprocess_app import InProcess, app_config

__all__ = ["litellm_httpx"]
pytestmark = LITELLM_NOISE

HELLO = [{"role": "user", "content": "hello"}]


def ok_routes() -> dict[str, Any]:
    return {OPENAI_CHAT_URL: httpx.Response(200, json=chat_completion()),
            ANTHROPIC_MESSAGES_URL: httpx.Response(200, json=anthropic_message())}


BAD_CHAT_BODIES = [
    ({"metadata": [1]}, "metadata"),
    ({"metadata": {"k": 1}}, "metadata"),
    ({"stream_options": "yes", "stream": True}, "stream_options"),
    ({"stream_options": {"include_usage": "yes"}, "stream": True}, "stream_options"),
    ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": 5}]}]}, "messages[0].content[0]"),
    ({"tools": {"type": "function"}}, "tools"),
    ({"tools": [{"type": "function", "function": {"parameters": {}}}]}, "tools[0]"),
    ({"stop": 5}, "stop"),
    ({"temperature": "hot"}, "temperature"),
    ({"max_tokens": "many"}, "max_tokens"),
    ({"n": -1}, "n"),
    ({"tool_choice": 7}, "tool_choice"),
    ({"response_format": "json"}, "response_format"),
]


@pytest.mark.parametrize("model", [CLAUDE, "openai/gpt-4o"])
@pytest.mark.parametrize("extra,param", BAD_CHAT_BODIES, ids=[p for _, p in BAD_CHAT_BODIES])
def test_a_malformed_chat_field_is_a_400_naming_it_with_no_provider_call(litellm_httpx, model, extra, param):
    gw = InProcess(app_config(max_retries=2))
    body = {"model": model, "messages": HELLO, **extra}
    (r,), calls = gw.exchange(("POST", "/v1/chat/completions", body, None), routes=ok_routes())
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert param.split("[")[0] in error["message"]
    assert calls == []  # refused before any provider saw it: nothing retried, nothing failed over


def test_a_part_type_litellm_cannot_translate_is_a_400_for_a_provider_of_another_format(litellm_httpx):
    gw = InProcess(app_config(max_retries=2))
    body = {"model": CLAUDE, "messages": [{"role": "user", "content": [{"type": "video_url", "video_url": "x"}]}]}
    (r,), calls = gw.exchange(("POST", "/v1/chat/completions", body, None), routes=ok_routes())
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages[0].content[0]"
    assert "'video_url'" in r.json()["error"]["message"] and calls == []


def test_an_openai_format_provider_gets_part_types_the_gateway_does_not_know(litellm_httpx):
    gw = InProcess(app_config(max_retries=2))  # vLLM and others extend the part types; the provider decides
    body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": [{"type": "video_url", "video_url": "x"}]}]}
    (r,), calls = gw.exchange(("POST", "/v1/chat/completions", body, None), routes=ok_routes())
    assert r.status_code == 200 and len(calls) == 1


def test_a_refused_malformed_request_leaves_the_session_pinned_where_it_was(litellm_httpx):
    gw = InProcess(app_config(max_retries=2))
    headers = {"X-Session-Id": "client-errors-1"}
    good = {"model": CLAUDE, "messages": HELLO}
    bad = {"model": CLAUDE, "messages": HELLO, "metadata": [1]}
    (first, refused, after), calls = gw.exchange(
        ("POST", "/v1/chat/completions", good, headers), ("POST", "/v1/chat/completions", bad, headers),
        ("POST", "/v1/chat/completions", good, headers), routes=ok_routes())
    assert first.status_code == 200 and refused.status_code == 400 and after.status_code == 200
    assert after.headers["x-router-model"] == CLAUDE and after.headers["x-router-pinned"] == "true"
    assert len(calls) == 2


def test_well_formed_optional_fields_still_pass(litellm_httpx):
    gw = InProcess(app_config(max_retries=0))
    body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]}],
            "metadata": {"k": "v"}, "stop": ["\n"], "temperature": 0.2, "max_tokens": 10, "n": 1,
            "tool_choice": "auto", "response_format": {"type": "json_object"},
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}
    (r,), calls = gw.exchange(("POST", "/v1/chat/completions", body, None), routes=ok_routes())
    assert r.status_code == 200, r.text
    assert len(calls) == 1
