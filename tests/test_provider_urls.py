"""Where each provider's requests go: root or /v1 base_url, relay or litellm."""

from __future__ import annotations

import pytest

from gateway.config import parse_config
from gateway.upstream.endpoints import api_base, native_wire, relay_url
from gateway.upstream.translate import litellm_model


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
    assert relay_url(p, "chat") == expected_url


def test_providers_needing_translation_go_through_litellm_with_their_root_url():
    for base in ("http://127.0.0.1:9000", "http://127.0.0.1:9000/v1"):
        p = provider("anthropic/claude-sonnet-4-20250514", base)
        assert not p.speaks_openai
        assert api_base(p) == "http://127.0.0.1:9000"  # litellm adds /v1/messages itself
        assert litellm_model(p) == "anthropic/claude-sonnet-4-20250514"
    assert relay_url(provider("groq/llama-3.1-8b"), "chat") is None  # no base_url: only litellm knows the URL


@pytest.mark.parametrize("model, base, wire, expected_url", [
    ("anthropic/claude-sonnet-4-20250514", None, "messages", "https://api.anthropic.com/v1/messages"),
    ("anthropic/claude-sonnet-4-20250514", "http://127.0.0.1:9000/v1", "messages", "http://127.0.0.1:9000/v1/messages"),
    ("openai/gpt-4o", None, "responses", "https://api.openai.com/v1/responses"),
    ("openai/local", "http://127.0.0.1:9000", "responses", "http://127.0.0.1:9000/v1/responses"),
])
def test_messages_and_responses_are_relayed_to_the_providers_own_endpoint(model, base, wire, expected_url):
    assert relay_url(provider(model, base), wire) == expected_url


def test_only_openai_itself_speaks_responses_unless_the_config_says_so():
    assert native_wire(provider("openai/gpt-4o"), "responses")
    assert not native_wire(provider("openai/llama", "http://127.0.0.1:8000"), "responses")  # vLLM, Ollama: chat only
    assert not native_wire(provider("anthropic/claude-sonnet-4-20250514"), "responses")
    told = parse_config({"model_providers": [{"model": "openai/llama", "base_url": "http://127.0.0.1:8000",
                                              "responses_api": True}]}, env={}).providers[0]
    assert native_wire(told, "responses")
    assert native_wire(provider("anthropic/claude-sonnet-4-20250514"), "messages")
    assert not native_wire(provider("openai/gpt-4o"), "messages")
