"""Errors from a translated provider call reach clients without litellm's advice to its own users.

litellm appends "Handle with `litellm.InternalServerError`" (and retry
counts) to a provider's error; a gateway client can act on none of it. The
app runs in process and respx plays Anthropic.
"""

from __future__ import annotations

import httpx
import pytest
import respx

from gateway.app import create_app
from inprocess_helpers import (ANTHROPIC_MESSAGES_URL, CLAUDE, LITELLM_NOISE, MINI, NoRouter, anthropic_provider,
                               litellm_httpx, make_config, openai_provider, run)

__all__ = ["litellm_httpx"]
pytestmark = LITELLM_NOISE


@pytest.mark.parametrize("status, kind", [(500, "api_error"), (529, "api_error"), (500, "overloaded_error")])
def test_a_failing_anthropic_provider_is_reported_in_our_words_without_litellms_advice(litellm_httpx, status, kind):
    config = make_config([openai_provider(MINI, default=True), anthropic_provider(fallbacks=[])],
                         gateway={"openai_relay": False})
    app = create_app(config, router=NoRouter())
    failure = {"type": "error", "error": {"type": kind, "message": "Overloaded right now"}}

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
            with respx.mock(assert_all_called=True) as mock:
                mock.post(ANTHROPIC_MESSAGES_URL).mock(return_value=httpx.Response(status, json=failure))
                return await client.post("/v1/chat/completions", json={
                    "model": CLAUDE, "messages": [{"role": "user", "content": "hi"}]})

    response = run(go())
    assert response.status_code == 502
    message = response.json()["error"]["message"]
    assert message.startswith(f"provider {CLAUDE} failed (5") and "Overloaded right now" in message
    # neither litellm's advice nor its exception names
    assert "Handle with" not in message and "litellm" not in message.lower() and "Anthropic" not in message, message


@pytest.mark.parametrize("make", [
    lambda ll: ll.InternalServerError(message='AnthropicException - {"error": "boom"}. Handle with '
                                      '`litellm.InternalServerError`.', llm_provider="anthropic", model="x"),
    lambda ll: ll.ServiceUnavailableError(message='AnthropicException - {"error": "boom"}. Handle with '
                                          '`litellm.ServiceUnavailableError`.', llm_provider="anthropic", model="x"),
    lambda ll: ll.RateLimitError(message='RateLimitError: AnthropicException - {"error": "boom"}',
                                 llm_provider="anthropic", model="x", num_retries=2, max_retries=2),
])
def test_litellms_advice_and_retry_counts_are_cut_from_the_message_a_client_sees(make):
    from gateway.litellm_loader import litellm
    from gateway.upstream.translate import translate_error

    [claude] = [p for p in make_config([anthropic_provider()]).providers]
    error = translate_error(claude, make(litellm()))
    assert error.message.endswith(': {"error": "boom"}'), error.message
    assert "litellm" not in error.message.lower() and "Retried" not in error.message
