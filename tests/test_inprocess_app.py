"""The whole app in process (httpx.ASGITransport), providers played by respx.

`gateway: {openai_relay: false}` sends chat for OpenAI-format providers through
litellm (httpx) instead of the aiohttp relay; Messages and Responses to an
OpenAI-format provider at a custom URL, and chat to Claude, go through litellm
anyway. Messages to Claude would be relayed over aiohttp, so no test here sends
that: the relay is left to the e2e tests.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from gateway.api import chat, messages, responses
from gateway.app import create_app
from inprocess_helpers import (ANTHROPIC_KEY, ANTHROPIC_MESSAGES_URL, CLAUDE, GPT4O, LITELLM_NOISE, MINI,
                               OPENAI_CHAT_URL, OPENAI_KEY, NoRouter, anthropic_events, anthropic_message,
                               anthropic_provider, anthropic_sse, chat_completion, litellm_httpx, make_config,
                               openai_provider, run, sse_data, sse_response)

__all__ = ["litellm_httpx"]
pytestmark = LITELLM_NOISE

GATEWAY_KEY = "gw-inproc-client-key-1"


def app_config(max_retries: int = 0, claude: dict | None = None, **sections: Any):
    providers = [openai_provider(MINI, default=True), openai_provider(GPT4O), anthropic_provider(**(claude or {}))]
    return make_config(providers, max_retries=max_retries, gateway={"openai_relay": False}, **sections)


class InProcess:
    """An app in process; respx plays every provider while requests are exchanged with it."""

    def __init__(self, config) -> None:
        self.app = create_app(config, router=NoRouter())

    def exchange(self, *requests: tuple[str, str, Any, dict[str, str] | None],
                 routes: dict[str, Any] | None = None) -> tuple[list[httpx.Response], list[respx.models.Call]]:
        """Send (method, path, json body or raw bytes, headers) requests in order while respx answers `routes`.

        Returns the responses and every provider call respx saw.
        """

        async def go():
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
                with respx.mock(assert_all_called=False) as mock:
                    for url, answer in (routes or {}).items():
                        route = mock.post(url)
                        if isinstance(answer, list):
                            route.side_effect = answer
                        else:
                            route.mock(return_value=answer)
                    out = []
                    for method, path, body, headers in requests:
                        kwargs: dict[str, Any] = {"headers": headers or {}}
                        if isinstance(body, bytes):
                            kwargs["content"] = body
                        elif body is not None:
                            kwargs["json"] = body
                        out.append(await client.request(method, path, **kwargs))
                    return out, list(mock.calls)

        return run(go())

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None,
             routes: dict[str, Any] | None = None) -> tuple[httpx.Response, list[respx.models.Call]]:
        [response], calls = self.exchange(("POST", path, body, headers), routes=routes)
        return response, calls


def chat_body(model: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}], **extra}
    if model:
        body["model"] = model
    return body


def assert_no_key_in(response: httpx.Response) -> None:
    text = response.text + json.dumps(dict(response.headers))
    assert OPENAI_KEY not in text and ANTHROPIC_KEY not in text


# -- forwarding through litellm ------------------------------------------------------------


def test_chat_completion_for_claude_is_translated_and_answered_in_openai_format(litellm_httpx):
    gw = InProcess(app_config())
    claude = httpx.Response(200, json=anthropic_message("hello from claude"))
    r, calls = gw.post("/v1/chat/completions", chat_body(CLAUDE), routes={ANTHROPIC_MESSAGES_URL: claude})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "hello from claude"
    assert body["usage"]["prompt_tokens"] == 7
    assert r.headers["X-Router-Model"] == CLAUDE and r.headers["X-Router-Pinned"] == "false"
    assert "X-Router-Failover" not in r.headers
    assert len(calls) == 1


def test_chat_with_the_relay_off_reaches_an_openai_format_provider_through_litellm(litellm_httpx):
    gw = InProcess(app_config())
    r, calls = gw.post("/v1/chat/completions", chat_body(temperature=0.3, vendor_option="x"),
                       routes={OPENAI_CHAT_URL: httpx.Response(200, json=chat_completion("from mini"))})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "from mini"
    assert r.headers["X-Router-Model"] == MINI  # no model named: the default serves
    [call] = calls
    sent = json.loads(call.request.content)
    assert sent["model"] == "gpt-4o-mini" and sent["temperature"] == 0.3 and sent["vendor_option"] == "x"
    assert call.request.headers["authorization"] == f"Bearer {OPENAI_KEY}"


def test_messages_for_an_openai_format_model_come_back_as_an_anthropic_message(litellm_httpx):
    gw = InProcess(app_config())
    body = {"model": "gpt-4o", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    r, _ = gw.post("/v1/messages", body, headers={"anthropic-version": "2023-06-01"},
                   routes={OPENAI_CHAT_URL: httpx.Response(200, json=chat_completion("gpt says hi", model="gpt-4o"))})
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "message"
    assert r.json()["content"] == [{"type": "text", "text": "gpt says hi"}]
    assert r.headers["X-Router-Model"] == GPT4O


def test_responses_for_an_openai_format_model_come_back_as_a_responses_object(litellm_httpx):
    gw = InProcess(app_config())
    r, _ = gw.post("/v1/responses", {"model": "gpt-4o-mini", "input": "hi", "store": False},
                   routes={OPENAI_CHAT_URL: httpx.Response(200, json=chat_completion("bridged"))})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "response"
    assert body["output"][0]["content"][0] == {"type": "output_text", "text": "bridged", "annotations": []}


def test_streamed_chat_for_claude_arrives_as_sse_chat_chunks(litellm_httpx):
    gw = InProcess(app_config())
    r, _ = gw.post("/v1/chat/completions", chat_body(CLAUDE, stream=True),
                   routes={ANTHROPIC_MESSAGES_URL: sse_response(anthropic_sse(anthropic_events(("Hel", "lo"))))})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    data = sse_data([r.content.replace(b"\r\n", b"\n")])
    assert data[-1] == "[DONE]"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in data[:-1] if c["choices"]) == "Hello"


def test_previous_response_id_for_a_bridged_model_is_refused_before_calling_it(litellm_httpx):
    gw = InProcess(app_config())
    body = {"model": "gpt-4o-mini", "input": "and then?", "previous_response_id": "resp_1"}
    r, calls = gw.post("/v1/responses", body, routes={OPENAI_CHAT_URL: httpx.Response(200, json=chat_completion())})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "previous_response_id"
    assert len(calls) == 0


# -- failover, seen by the client ------------------------------------------------------------


def test_failover_answers_from_the_default_model_and_re_pins_the_session_to_it(litellm_httpx):
    gw = InProcess(app_config(max_retries=1))
    session = {"X-Session-Id": "inproc-failover-1"}
    (first, pin, second), calls = gw.exchange(
        ("POST", "/v1/chat/completions", chat_body(CLAUDE), session),
        ("GET", "/routing/v1/sessions/inproc-failover-1", None, None),
        ("POST", "/v1/chat/completions", chat_body(CLAUDE), session),
        routes={ANTHROPIC_MESSAGES_URL: httpx.Response(500, json={"type": "error", "error": {
                    "type": "api_error", "message": "overloaded"}}),
                OPENAI_CHAT_URL: httpx.Response(200, json=chat_completion("the default answered"))})
    assert first.status_code == 200, first.text
    assert first.json()["choices"][0]["message"]["content"] == "the default answered"
    assert first.headers["X-Router-Model"] == MINI
    assert first.headers["X-Router-Failover"] == f"{CLAUDE} -> {MINI}"
    assert first.headers["X-Router-Pinned"] == "false"
    assert pin.status_code == 200 and pin.json()["model"] == MINI
    # The session follows the model that answered: Claude is not asked again.
    assert second.status_code == 200 and second.headers["X-Router-Model"] == MINI
    assert second.headers["X-Router-Pinned"] == "true"
    hosts = [c.request.url.host for c in calls]
    assert hosts == ["anthropic.test", "anthropic.test", "provider.test", "provider.test"]


def test_a_non_transient_provider_error_is_answered_at_once_without_failover(litellm_httpx):
    gw = InProcess(app_config(max_retries=2))
    refused = httpx.Response(400, json={"type": "error", "error": {
        "type": "invalid_request_error", "message": f"bad field (key {ANTHROPIC_KEY})"}})
    fine = httpx.Response(200, json=chat_completion())
    r, calls = gw.post("/v1/chat/completions", chat_body(CLAUDE),
                       routes={ANTHROPIC_MESSAGES_URL: refused, OPENAI_CHAT_URL: fine})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "upstream_bad_request"
    assert r.json()["error"]["type"] == "invalid_request_error"  # the request was refused: the client's to fix
    assert "X-Router-Failover" not in r.headers
    assert [c.request.url.host for c in calls] == ["anthropic.test"]
    assert_no_key_in(r)


def test_a_rate_limited_provider_on_messages_gives_anthropics_rate_limit_error_with_retry_after(litellm_httpx):
    gw = InProcess(app_config())
    body = {"model": "gpt-4o", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    limited = httpx.Response(429, headers={"retry-after": "9"}, json={"error": {
        "message": f"rate limited for {OPENAI_KEY}", "type": "rate_limit", "code": None}})
    # gpt-4o fails over to the default (gpt-4o-mini), which is on the same rate-limited host
    r, calls = gw.post("/v1/messages", body, routes={OPENAI_CHAT_URL: limited})
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "9"
    assert r.json() == {"type": "error", "error": {"type": "rate_limit_error", "message": r.json()["error"]["message"]}}
    assert "rate limiting" in r.json()["error"]["message"]
    assert len(calls) == 2  # gpt-4o once (max_retries 0), then its fallback, the default
    assert_no_key_in(r)


def test_a_rate_limited_provider_on_chat_gives_openais_error_shape_with_retry_after(litellm_httpx):
    gw = InProcess(app_config(claude={"fallbacks": []}))
    r, _ = gw.post("/v1/chat/completions", chat_body(CLAUDE),
                   routes={ANTHROPIC_MESSAGES_URL: httpx.Response(429, headers={"retry-after": "4"}, json={
                       "type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})})
    assert r.status_code == 429 and r.headers["Retry-After"] == "4"
    error = r.json()["error"]
    assert (error["type"], error["code"]) == ("upstream_error", "upstream_rate_limited")


def test_count_tokens_for_an_openai_format_model_is_estimated_without_calling_a_provider(litellm_httpx):
    gw = InProcess(app_config())
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "count these words for me please"}]}
    r, calls = gw.post("/v1/messages/count_tokens", body)
    assert r.status_code == 200, r.text
    assert isinstance(r.json()["input_tokens"], int) and r.json()["input_tokens"] > 0
    assert r.headers["X-Router-Model"] == GPT4O
    assert len(calls) == 0


# -- errors in each surface's shape, no provider called ------------------------------------------

ANTHROPIC_SHAPE = "anthropic"
OPENAI_SHAPE = "openai"
BAD_INPUT = [
    ("/v1/messages", {"model": "claude", "max_tokens": 10, "messages": []}, ANTHROPIC_SHAPE, "messages"),
    ("/v1/messages", {"max_tokens": 0, "messages": [{"role": "user", "content": "hi"}]}, ANTHROPIC_SHAPE, "max_tokens"),
    ("/routing/v1/messages", {"messages": [{"role": "tool", "content": "x"}]}, ANTHROPIC_SHAPE, "role"),
    ("/v1/messages/count_tokens", {"messages": "hi"}, ANTHROPIC_SHAPE, "messages"),
    ("/v1/messages", b"{not json", ANTHROPIC_SHAPE, "not valid JSON"),
    ("/v1/chat/completions", {"messages": "hi"}, OPENAI_SHAPE, "messages"),
    ("/v1/chat/completions", {"messages": [{"role": "wizard", "content": "hi"}]}, OPENAI_SHAPE, "role"),
    ("/routing/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "stream": "yes"},
     OPENAI_SHAPE, "stream"),
    ("/v1/chat/completions", b"[1, 2]", OPENAI_SHAPE, "JSON object"),
    ("/v1/responses", {"model": "gpt-4o"}, OPENAI_SHAPE, "input"),
    ("/v1/responses", {"input": [1, 2]}, OPENAI_SHAPE, "input[0]"),
    ("/routing/v1/responses", {"input": "hi", "tools": "all"}, OPENAI_SHAPE, "tools"),
    ("/v1/responses", b"", OPENAI_SHAPE, "empty"),
]


@pytest.mark.parametrize("path, body, shape, names", BAD_INPUT,
                         ids=[f"{p}-{i}" for i, (p, *_rest) in enumerate(BAD_INPUT)])
def test_bad_input_is_a_400_in_each_surfaces_own_error_shape_and_calls_no_provider(path, body, shape, names):
    gw = InProcess(app_config())
    r, calls = gw.post(path, body)
    assert r.status_code == 400, r.text
    payload = r.json()
    if shape == ANTHROPIC_SHAPE:
        assert payload["type"] == "error"
        assert set(payload["error"]) == {"type", "message"}
        assert payload["error"]["type"] == "invalid_request_error"
        message = payload["error"]["message"]
    else:
        assert set(payload) == {"error"}
        assert {"message", "type", "code"} <= set(payload["error"])
        assert payload["error"]["type"] == "invalid_request_error"
        assert payload["error"]["code"] == "invalid_request"
        message = payload["error"]["message"]
    assert names in message  # the message names what to fix
    assert len(calls) == 0


def test_an_unknown_model_is_refused_on_chat_but_messages_and_responses_let_the_gateway_choose():
    gw = InProcess(app_config())
    (on_chat, on_messages, on_responses), _ = gw.exchange(
        ("POST", "/routing/v1/chat/completions", chat_body("gpt-9-turbo"), None),
        ("POST", "/routing/v1/messages", {"model": "claude-opus-9", "max_tokens": 5,
                                          "messages": [{"role": "user", "content": "hi"}]}, None),
        ("POST", "/routing/v1/responses", {"model": "gpt-9-codex", "input": "hi"}, None))
    assert on_chat.status_code == 400
    assert on_chat.json()["error"]["code"] == "model_not_found"
    assert MINI in on_chat.json()["error"]["message"]  # names the configured models
    assert on_messages.status_code == 200 and on_messages.json()["model"] == MINI
    assert on_responses.status_code == 200 and on_responses.json()["model"] == MINI


@pytest.mark.parametrize("path, body, shape", [
    ("/v1/chat/completions", chat_body(), OPENAI_SHAPE),
    ("/routing/v1/chat/completions", chat_body(), OPENAI_SHAPE),
    ("/v1/messages", {"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}, ANTHROPIC_SHAPE),
    ("/v1/responses", {"input": "hi"}, OPENAI_SHAPE),
])
def test_a_missing_gateway_key_is_a_401_in_each_surfaces_shape(path, body, shape):
    gw = InProcess(app_config(auth={"keys": [{"name": "team-a", "key": GATEWAY_KEY}]}))
    (missing, wrong), calls = gw.exchange(("POST", path, body, None),
                                          ("POST", path, body, {"x-api-key": "not-the-key"}))
    for r in (missing, wrong):
        assert r.status_code == 401
        if shape == ANTHROPIC_SHAPE:
            assert r.json()["type"] == "error" and r.json()["error"]["type"] == "authentication_error"
        else:
            assert r.json()["error"]["code"] == "invalid_api_key"
    assert len(calls) == 0


def test_a_gateway_key_is_accepted_as_bearer_or_x_api_key():
    gw = InProcess(app_config(auth={"keys": [{"name": "team-a", "key": GATEWAY_KEY}]}))
    (bearer, x_api_key), _ = gw.exchange(
        ("POST", "/routing/v1/chat/completions", chat_body(), {"Authorization": f"Bearer {GATEWAY_KEY}"}),
        ("POST", "/routing/v1/messages", {"messages": [{"role": "user", "content": "hi"}]}, {"x-api-key": GATEWAY_KEY}))
    assert bearer.status_code == 200 and x_api_key.status_code == 200


def test_unknown_paths_and_codexs_websocket_probe_get_clear_json_errors():
    gw = InProcess(app_config())
    (unknown, websocket_probe), _ = gw.exchange(("POST", "/v1/completions", chat_body(), None),
                                                ("GET", "/v1/responses", None, None))
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    assert websocket_probe.status_code == 426
    assert websocket_probe.json()["error"]["code"] == "websocket_not_supported"


def test_unknown_paths_and_wrong_methods_under_messages_answer_in_anthropics_shape():
    gw = InProcess(app_config())
    (unknown, wrong_method), _ = gw.exchange(("POST", "/v1/messages/batches", {}, None),
                                             ("GET", "/v1/messages", None, None))
    assert unknown.status_code == 404
    assert unknown.json() == {"type": "error", "error": {"type": "not_found_error", "message": (
        "POST /v1/messages/batches is not an endpoint of this gateway (see /docs or README, API)")}}
    assert wrong_method.status_code == 405
    assert wrong_method.json()["type"] == "error" and "does not take GET" in wrong_method.json()["error"]["message"]


def test_a_messages_request_without_max_tokens_is_refused_before_any_provider_and_keeps_the_pin():
    gw = InProcess(app_config())
    session = {"X-Session-Id": "no-max-tokens"}
    (first,), _ = gw.exchange(("POST", "/routing/v1/messages", {"model": GPT4O, "messages": [
        {"role": "user", "content": "hi"}]}, session))
    assert first.json()["model"] == GPT4O
    (refused, after), calls = gw.exchange(
        ("POST", "/v1/messages", {"messages": [{"role": "user", "content": "hello again"}]}, session),
        ("POST", "/routing/v1/messages", {"messages": [{"role": "user", "content": "hi"}]}, session))
    assert refused.status_code == 400 and "`max_tokens` is required" in refused.json()["error"]["message"]
    assert "x-router-failover" not in refused.headers
    assert len(calls) == 0
    assert (after.json()["model"], after.json()["pinned"]) == (GPT4O, True)
    # A session whose first request is refused so is not pinned by it.
    (fresh,), _ = gw.exchange(("POST", "/v1/messages", {"model": GPT4O, "messages": [
        {"role": "user", "content": "hi"}]}, {"X-Session-Id": "refused-first"}))
    assert fresh.status_code == 400
    assert run(gw.app.state.gateway.decider.store.peek("refused-first")) is None


def test_a_body_nested_too_deeply_to_read_is_a_400_not_a_500():
    gw = InProcess(app_config())
    (r,), _ = gw.exchange(("POST", "/v1/chat/completions", b'{"messages": ' + b"[" * 200_000, None))
    assert r.status_code == 400 and "too deeply" in r.json()["error"]["message"]


# -- the API description --------------------------------------------------------------------------


def resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    assert ref.startswith("#/components/schemas/"), ref
    return spec["components"]["schemas"][ref.rsplit("/", 1)[1]]


def test_openapi_lists_every_endpoint_and_each_post_has_a_request_body_schema():
    gw = InProcess(app_config())
    [r], _ = gw.exchange(("GET", "/openapi.json", None, None))
    assert r.status_code == 200
    spec = r.json()
    paths = spec["paths"]
    documented = {(path, method.upper()) for path, ops in paths.items() for method in ops}
    served = {(route.path, method) for route in gw.app.routes
              for method in getattr(route, "methods", None) or () if method != "HEAD"}
    undocumented = served - documented - {("/v1/responses", "GET"),  # Codex's WebSocket probe: a 426, not an API
                                          ("/openapi.json", "GET"), ("/docs", "GET"), ("/redoc", "GET"),
                                          ("/docs/oauth2-redirect", "GET")}
    assert undocumented == set()
    hot = {entry[0] for surface in (chat, messages, responses) for entry in surface.DOCS}
    assert hot == {"/v1/chat/completions", "/routing/v1/chat/completions", "/v1/messages", "/routing/v1/messages",
                   "/v1/messages/count_tokens", "/v1/responses", "/routing/v1/responses"}
    for path in hot:
        op = paths[path]["post"]
        schema = resolve(op["requestBody"]["content"]["application/json"]["schema"], spec)
        assert schema.get("type") == "object" and schema.get("properties"), path
        required = set(schema.get("required", []))
        assert required & {"messages", "input"}, (path, required)
    decision = resolve(paths["/routing/v1/chat/completions"]["post"]["responses"]["200"]["content"]
                       ["application/json"]["schema"], spec)
    assert {"model", "route", "pinned", "trace_id"} <= set(decision["properties"])
    for path in ("/healthz", "/metrics", "/v1/models", "/routing/v1/sessions/{session_id}"):
        assert path in paths, path
