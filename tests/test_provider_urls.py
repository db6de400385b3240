"""Where each provider's requests go: root or /v1 base_url, relay or litellm."""

from __future__ import annotations

import pytest

from gateway.config import parse_config
from gateway.forwarding import api_base, litellm_model
from gateway.relay import relay_url


def provider(model: str, base_url: str | None = None):
    entry = {"model": model, **({"base_url": base_url} if base_url else {})}
    return parse_config({"model_providers": [entry]}, env={}).providers[0]


@pytest.mark.parametrize("model, base, expected_url", [
    ("ollama/llama3.2", "http://127.0.0.1:11434", "http://127.0.0.1:11434/v1/chat/completions"),
    ("ollama/llama3.2", "http://127.0.0.1:11434/v1", "http://127.0.0.1:11434/v1/chat/completions"),
    ("openai/my-vllm-model", "http://gpu-box:8000/v1/", "http://gpu-box:8000/v1/chat/completions"),
    ("openai/gpt-4o", None, "https://api.openai.com/v1/chat/completions"),
])
def test_openai_format_providers_are_relayed_to_their_chat_completions_url(model, base, expected_url):
    p = provider(model, base)
    assert p.speaks_openai
    assert relay_url(p, api_base(p)) == expected_url


def test_providers_needing_translation_go_through_litellm_with_their_root_url():
    for base in ("http://127.0.0.1:9000", "http://127.0.0.1:9000/v1"):
        p = provider("anthropic/claude-sonnet-4-20250514", base)
        assert not p.speaks_openai
        assert api_base(p) == "http://127.0.0.1:9000"  # litellm adds /v1/messages itself
        assert litellm_model(p) == "anthropic/claude-sonnet-4-20250514"
    assert relay_url(provider("groq/llama-3.1-8b"), None) is None  # no base_url: only litellm knows the URL
