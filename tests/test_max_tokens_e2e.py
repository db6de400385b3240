"""What reaches Anthropic when a translated request names no answer limit: 4096, or the provider's own default.

litellm otherwise fills in the model's whole context size (128000 when its
bundled model map lacks the model), which a real Anthropic endpoint refuses
for a model with a smaller output limit. The fake provider records each
request as it arrived.
"""

from __future__ import annotations

import httpx
import pytest

from conftest import FakeProvider, RunningGateway, launch, provider_config, stop

CLAUDE = "anthropic/claude-sonnet-4-20250514"
SHORT = "anthropic/claude-3-5-haiku-20241022"  # configured with default_max_tokens: 1000


@pytest.fixture(scope="module")
def claude_gateway(fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory):
    extra = f"""\
  - model: {SHORT}
    access_key: $TEST_ANTHROPIC_KEY
    base_url: {fake_provider.url}
    default_max_tokens: 1000
"""
    gw = launch(provider_config(fake_provider.url) + extra, tmp_path_factory.mktemp("max_tokens"))
    yield gw
    stop(gw.proc)


def sent_max_tokens(gw: RunningGateway, fake: FakeProvider, path: str, body: dict) -> object:
    fake.clear()
    r = httpx.post(f"{gw.url}{path}", json=body, timeout=60)
    assert r.status_code == 200, r.text
    [request] = [q for q in fake.requests() if q["path"] == "/v1/messages"]
    return request["body"].get("max_tokens")


HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("path, body, expected", [
    ("/v1/chat/completions", {"model": CLAUDE, "messages": HI}, 4096),
    ("/v1/chat/completions", {"model": CLAUDE, "messages": HI, "stream": True}, 4096),
    ("/v1/responses", {"model": CLAUDE, "input": "hi"}, 4096),
    ("/v1/chat/completions", {"model": SHORT, "messages": HI}, 1000),
    ("/v1/responses", {"model": SHORT, "input": "hi"}, 1000),
    ("/v1/chat/completions", {"model": CLAUDE, "messages": HI, "max_tokens": 77}, 77),
    ("/v1/chat/completions", {"model": SHORT, "messages": HI, "max_completion_tokens": 55}, 55),
    ("/v1/responses", {"model": CLAUDE, "input": "hi", "max_output_tokens": 66}, 66),
], ids=["chat", "chat-stream", "responses", "chat-own-default", "responses-own-default", "chat-client-limit",
        "chat-client-completion-limit", "responses-client-limit"])
def test_a_translated_request_without_a_limit_gets_a_sane_one_and_a_client_limit_is_kept(
        claude_gateway: RunningGateway, fake_provider: FakeProvider, path: str, body: dict, expected: int):
    assert sent_max_tokens(claude_gateway, fake_provider, path, body) == expected
