"""Provider failures on the litellm paths, in process: each becomes the UpstreamError that
`errors.upstream_failure` (and friends) define, the same a client gets from the byte relay,
and no provider key survives into what the gateway says.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
import respx

from gateway.api.chat import ChatWire
from gateway.api.messages import MessagesWire
from gateway.api.responses import ResponsesWire
from gateway.errors import UpstreamError, upstream_failure
from gateway.upstream import Call
from gateway.upstream.failover import Forwarder
from gateway.upstream.translate import LitellmUpstream
from inprocess_helpers import (ANTHROPIC_KEY, ANTHROPIC_MESSAGES_URL, CLAUDE, LITELLM_NOISE, MINI, OPENAI_CHAT_URL,
                               OPENAI_KEY, anthropic_events, anthropic_provider, anthropic_sse, broken_sse_response,
                               drain, litellm_httpx, make_config, openai_provider, run, sse_data)

__all__ = ["litellm_httpx"]
pytestmark = LITELLM_NOISE

CONFIG = make_config([openai_provider(default=True, timeout=5), anthropic_provider(timeout=7)])

# (client wire, provider model, provider URL, body): every way LitellmUpstream reaches a provider.
PATHS = {
    "chat->anthropic": (ChatWire(), CLAUDE, ANTHROPIC_MESSAGES_URL, {"messages": [{"role": "user", "content": "hi"}]}),
    "chat->openai": (ChatWire(), MINI, OPENAI_CHAT_URL, {"messages": [{"role": "user", "content": "hi"}]}),
    "messages->openai": (MessagesWire(), MINI, OPENAI_CHAT_URL,
                         {"max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
    "responses->openai": (ResponsesWire(), MINI, OPENAI_CHAT_URL, {"input": "hi"}),
    "responses->anthropic": (ResponsesWire(), CLAUDE, ANTHROPIC_MESSAGES_URL, {"input": "hi"}),
}
OPENAI_PATHS = [p for p in PATHS if p.endswith("openai")]


def error_body(model: str, status: int, message: str) -> dict[str, Any]:
    """An error body as the provider's own API writes it."""
    if model == CLAUDE:
        kinds = {429: "rate_limit_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error"}
        return {"type": "error", "error": {"type": kinds.get(status, "api_error"), "message": message}}
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}


async def send_once(path: str, respond: Any) -> UpstreamError:
    """Send one call on `path` with the provider answering `respond`; the UpstreamError it raised."""
    wire, model, url, body = PATHS[path]
    with respx.mock() as mock:
        route = mock.post(url)
        if isinstance(respond, httpx.Response):
            route.mock(return_value=respond)
        else:
            route.mock(side_effect=respond)
        try:
            await LitellmUpstream().send(Call(CONFIG.find(model), wire, body))
        except UpstreamError as exc:
            assert route.called
            return exc
    raise AssertionError(f"{path}: no UpstreamError raised")


STATUSES = [429, 500, 503, 401, 403, 404, 400, 413, 422]
# On OpenAI-format paths litellm raises a plain APIError carrying status_code 403 or 413 (no dedicated class),
# so these two check that any carried 4xx is mapped as the relay maps it, not as a transient 502.
# On OpenAI-format paths litellm answers a provider's 422 by returning nothing; the gateway reports that as the
# non-transient 400 the status means.
CASES = [pytest.param(path, status, id=f"{path}-{status}") for path in PATHS for status in STATUSES]


@pytest.mark.parametrize("path, status", CASES)
def test_provider_http_status_becomes_the_upstream_failure_that_errors_module_defines(litellm_httpx, path, status):
    _, model, _, _ = PATHS[path]
    response = httpx.Response(status, json=error_body(model, status, "the provider says no"),
                              headers={"retry-after": "7"})
    error = run(send_once(path, response))
    expected = upstream_failure(model, status, "detail", "7")
    assert (error.status, error.code, error.transient) == (expected.status, expected.code, expected.transient)
    assert error.headers == expected.headers  # Retry-After only on a 429
    assert model in error.message


@pytest.mark.parametrize("path", list(PATHS))
def test_litellm_429_becomes_rate_limited_error_with_retry_after(litellm_httpx, path):
    _, model, _, _ = PATHS[path]
    response = httpx.Response(429, json=error_body(model, 429, "slow down"), headers={"retry-after": "12"})
    error = run(send_once(path, response))
    assert error.status == 429 and error.code == "upstream_rate_limited" and error.transient
    assert error.headers == {"Retry-After": "12"}
    assert "rate limiting" in error.message


@pytest.mark.parametrize("path", list(PATHS))
def test_provider_401_says_to_check_the_key_and_is_not_retried(litellm_httpx, path):
    _, model, _, _ = PATHS[path]
    error = run(send_once(path, httpx.Response(401, json=error_body(model, 401, "invalid x-api-key"))))
    assert (error.status, error.code, error.transient) == (502, "upstream_auth_failed", False)
    assert "check access_key" in error.message


# For Anthropic, litellm wraps the transport's ConnectError in an InternalServerError("AnthropicException - ...").
@pytest.mark.parametrize("path", list(PATHS))
def test_connection_error_becomes_502_upstream_unreachable_naming_the_url(litellm_httpx, path):
    _, model, _, _ = PATHS[path]
    error = run(send_once(path, httpx.ConnectError("connection refused")))
    assert (error.status, error.code, error.transient) == (502, "upstream_unreachable", True)
    base = CONFIG.find(model).base_url
    assert base in error.message


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("timeout", [httpx.ReadTimeout, httpx.ConnectTimeout])
def test_a_provider_timeout_becomes_504_upstream_timeout_with_the_providers_limit(litellm_httpx, path, timeout):
    _, model, _, _ = PATHS[path]
    error = run(send_once(path, timeout("too slow")))
    assert (error.status, error.code, error.transient) == (504, "upstream_timeout", True)
    limit = CONFIG.find(model).timeout
    assert f"within {limit:g}s" in error.message


@pytest.mark.parametrize("path", list(PATHS))
def test_a_200_that_is_not_json_is_502_upstream_bad_response_as_the_relay_says(litellm_httpx, path):
    page = httpx.Response(200, text="<html><body>502 Bad Gateway</body></html>", headers={"content-type": "text/html"})
    error = run(send_once(path, page))
    assert (error.status, error.code, error.transient) == (502, "upstream_bad_response", True)


# -- keys never leak ---------------------------------------------------------------


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("status", [400, 404, 429, 500])
def test_provider_keys_echoed_in_an_error_never_reach_the_client_message(litellm_httpx, path, status):
    wire, model, url, body = PATHS[path]
    config = make_config([openai_provider(default=True, fallbacks=[]), anthropic_provider(fallbacks=[])])
    echo = f"bad request for key {OPENAI_KEY} (also tried {ANTHROPIC_KEY})"

    async def go():
        with respx.mock() as mock:
            route = mock.post(url).mock(return_value=httpx.Response(status, json=error_body(model, status, echo)))
            try:
                await Forwarder(config, upstreams=[LitellmUpstream()]).send(config.find(model), wire, body)
            except UpstreamError as exc:
                return exc, route.call_count
        raise AssertionError("no error raised")

    error, calls = run(go())
    assert calls == 1  # max_retries 0, no fallbacks
    assert OPENAI_KEY not in error.message and ANTHROPIC_KEY not in error.message
    assert OPENAI_KEY not in str(error) and ANTHROPIC_KEY not in str(error)
    assert "***" in error.message  # the provider's detail is kept, masked


def broken_claude_stream_echoing_the_key() -> httpx.Response:
    return broken_sse_response(anthropic_sse(anthropic_events(("Hel",))[:3]), error=f"reset for key {ANTHROPIC_KEY}")


def test_provider_key_in_a_mid_stream_failure_never_reaches_the_clients_error_event(litellm_httpx):
    config = make_config([openai_provider(default=True), anthropic_provider()])

    async def go():
        with respx.mock() as mock:
            mock.post(ANTHROPIC_MESSAGES_URL).mock(return_value=broken_claude_stream_echoing_the_key())
            answer = await Forwarder(config, upstreams=[LitellmUpstream()]).send(
                config.find(CLAUDE), ChatWire(), {"messages": [{"role": "user", "content": "hi"}], "stream": True})
            return answer, await drain(answer)

    answer, events = run(go())
    assert answer.ending == "stream_interrupted"
    assert "error" in sse_data(events)[-1]
    assert ANTHROPIC_KEY not in b"".join(events).decode()


def test_provider_key_in_a_mid_stream_failure_never_reaches_the_gateway_log(litellm_httpx, caplog):
    config = make_config([openai_provider(default=True), anthropic_provider()])

    async def go():
        with respx.mock() as mock:
            mock.post(ANTHROPIC_MESSAGES_URL).mock(return_value=broken_claude_stream_echoing_the_key())
            answer = await Forwarder(config, upstreams=[LitellmUpstream()]).send(
                config.find(CLAUDE), ChatWire(), {"messages": [{"role": "user", "content": "hi"}], "stream": True})
            await drain(answer)

    with caplog.at_level(logging.WARNING, logger="gateway"):
        run(go())
    assert any("broke" in r.getMessage() for r in caplog.records)  # the break was logged
    assert ANTHROPIC_KEY not in caplog.text
