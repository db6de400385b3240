"""Environment variables inside strings, Plano's provider_interface with a prefix, passthrough_auth, default_max_tokens.

Plano runs envsubst over its whole config, so `$VAR` and `${VAR}` work inside
any string (`redis://${HOST}:6379`, a header value). Where a missing variable
would break the gateway (URLs, headers, gateway keys) it is a config error
naming the field and the variable; a missing provider key is not (routing
decisions still work without it), as before.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import ConfigError, parse_config


def config(providers: list[dict[str, Any]], env: dict[str, str], **sections: Any):
    return parse_config({"version": "v0.3.0", "model_providers": providers, **sections}, env=env)


def refused(providers: list[dict[str, Any]], env: dict[str, str], **sections: Any) -> str:
    with pytest.raises(ConfigError) as error:
        config(providers, env, **sections)
    return str(error.value)


ENV = {"HOST": "redis.internal", "TEAM": "search", "ORG": "org-42", "LOCAL": "127.0.0.1", "KEY": "sk-k"}


def test_variables_inside_strings_are_expanded_in_urls_headers_and_everywhere_else():
    cfg = config([{"model": "openai/gpt-4o", "access_key": "$KEY", "base_url": "http://${LOCAL}:8000/v1",
                   "headers": {"X-Team": "team-${TEAM}", "OpenAI-Organization": "$ORG"},
                   "routing_preferences": [{"name": "code", "description": "code for the ${TEAM} team"}]}],
                 ENV, routing={"session_cache": {"type": "redis", "url": "redis://${HOST}:6379/2"}})
    [provider] = cfg.providers
    assert provider.base_url == "http://127.0.0.1:8000/v1"
    assert provider.headers == {"X-Team": "team-search", "OpenAI-Organization": "org-42"}
    assert provider.access_key == "sk-k" and provider.access_key_source == "$KEY"
    assert cfg.routing.session_cache.url == "redis://redis.internal:6379/2"
    assert cfg.routes[0].description == "code for the search team"


@pytest.mark.parametrize("providers, sections, field, variable", [
    ([{"model": "openai/gpt-4o", "headers": {"X-Team": "team-${NO_TEAM}"}}], {},
     "(openai/gpt-4o).headers.X-Team", "NO_TEAM"),
    ([{"model": "openai/gpt-4o", "base_url": "http://${NO_HOST}:8000"}], {}, "(openai/gpt-4o).base_url", "NO_HOST"),
    ([{"model": "openai/gpt-4o"}], {"routing": {"session_cache": {"type": "redis", "url": "redis://${NO_HOST}:6379"}}},
     "routing.session_cache.url", "NO_HOST"),
    ([{"model": "openai/gpt-4o"}], {"auth": {"keys": [{"name": "ci", "key": "gw-${NO_SECRET}"}]}},
     "auth.keys[0].key", "NO_SECRET"),
])
def test_an_unset_variable_where_it_is_needed_is_an_error_naming_the_field_and_the_variable(
        providers, sections, field, variable):
    message = refused(providers, ENV, **sections)
    assert field in message and f"environment variable {variable}" in message and "not set" in message


def test_an_unset_provider_key_is_still_no_error_inside_a_string_either():
    [provider] = config([{"model": "openai/gpt-4o", "access_key": "prefix-${NO_KEY}"}], ENV).providers
    assert provider.access_key is None and provider.access_key_source == "$NO_KEY"


def test_provider_interface_names_the_provider_of_a_model_whose_prefix_is_only_a_label():
    cfg = config([{"model": "custom/llama-3", "provider_interface": "claude", "base_url": "http://127.0.0.1:9"},
                  {"model": "openai/gpt-4o", "provider_interface": "openai"},  # agreeing: fine
                  {"model": "qwen3", "provider_interface": "groq"}], ENV)
    assert [(p.provider, p.model_name) for p in cfg.providers] == [
        ("anthropic", "llama-3"), ("openai", "gpt-4o"), ("groq", "qwen3")]
    assert cfg.find("custom/llama-3") is cfg.providers[0]


@pytest.mark.parametrize("entry, says", [
    ({"model": "openai/gpt-4o", "provider_interface": "claude"}, "contradicts the model's prefix openai/"),
    ({"model": "custom/llama-3", "provider_interface": "cobol"}, "provider_interface: must be one of"),
])
def test_a_provider_interface_that_cannot_hold_is_a_config_error(entry, says):
    assert says in refused([entry], ENV)


def test_passthrough_auth_is_refused_with_what_to_do_instead_rather_than_dropped():
    message = refused([{"model": "openai/gpt-4o", "base_url": "http://127.0.0.1:4000", "passthrough_auth": True}], ENV)
    assert "passthrough_auth" in message and "access_key" in message
    [provider] = config([{"model": "openai/gpt-4o", "passthrough_auth": False}], ENV).providers
    assert provider.model == "openai/gpt-4o"


def test_default_max_tokens_is_a_positive_number_and_anthropic_gets_4096_without_one():
    cfg = config([{"model": "anthropic/claude-sonnet-4-20250514"},
                  {"model": "anthropic/claude-3-5-haiku-20241022", "default_max_tokens": 1000},
                  {"model": "openai/gpt-4o"}], ENV)
    assert [p.max_tokens_default for p in cfg.providers] == [4096, 1000, None]
    assert "default_max_tokens: must be a positive whole number" in refused(
        [{"model": "anthropic/claude-sonnet-4-20250514", "default_max_tokens": 0}], ENV)
