"""Plano's v0.4.0 layout: top-level `routing_preferences` with a `models` pool, `selection_policy`.

The v0.4.0 configs here are written from Plano's own schema
(config/plano_config_schema.yaml in katanemo/plano) and docs (docs/routing-api.md,
the LLM router guide). A config in the newer layout serves the same routes with the
same models as the v0.3.0 file it was migrated from; what this gateway does not act
on loads, and `gateway check` says what it is and what to do.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx
import pytest
import yaml

from gateway.cli import main as gateway_cli
from gateway.config import ConfigError, parse_config
from gateway.upstream.failover import Forwarder

from conftest import CODE_PROMPT, FakeProvider, GatewayFactory

REPO = Path(__file__).resolve().parent.parent

# The bundled v0.3.0 config, migrated by hand the way Plano's CLI does it
# (cli/planoai/config_generator.py: migrate_inline_routing_preferences).
V040_OF_BUNDLED = """\
version: v0.4.0
listeners:
  - type: model
    name: model_listener
    port: 12000
model_providers:
  - model: openai/gpt-4o-mini
    access_key: $OPENAI_API_KEY
    default: true
  - model: openai/gpt-4o
    access_key: $OPENAI_API_KEY
  - model: anthropic/claude-sonnet-4-20250514
    access_key: $ANTHROPIC_API_KEY
routing_preferences:
  - name: complex_reasoning
    description: complex reasoning tasks, multi-step analysis, or detailed explanations
    models: [openai/gpt-4o]
  - name: code_generation
    description: generating new code, writing functions, or creating boilerplate
    models: [anthropic/claude-sonnet-4-20250514]
routing:
  session_ttl_seconds: 600
  session_max_entries: 10000
"""

PROVIDERS = """\
version: v0.4.0
model_providers:
  - model: openai/gpt-4o-mini
    default: true
  - model: openai/gpt-4o
  - model: anthropic/claude-sonnet-4-20250514
"""


def parse(text: str):
    return parse_config(yaml.safe_load(textwrap.dedent(text)), env={})


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse(text)
    return err.value.problems


def check_output(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text))
    status = gateway_cli(["check", str(path)])
    out = capsys.readouterr()
    assert status == 0, out.err
    return out.out


def test_newer_layout_serves_the_same_routes_and_models_as_the_v030_file():
    old = parse((REPO / "config.yaml").read_text())
    new = parse(V040_OF_BUNDLED)
    assert [p.model for p in new.providers] == [p.model for p in old.providers]
    assert new.default_provider.model == old.default_provider.model
    as_set = lambda cfg: {(r.name, r.description, r.model, r.fallbacks) for r in cfg.routes}  # noqa: E731
    assert as_set(new) == as_set(old)
    assert new.notes == []


def test_models_pool_first_model_serves_and_the_rest_are_its_fallbacks_in_order():
    cfg = parse(PROVIDERS + """\
routing_preferences:
  - name: code generation
    description: generating new code snippets, functions, or boilerplate
    models: [anthropic/claude-sonnet-4-20250514, gpt-4o, openai/gpt-4o-mini]
    selection_policy: {prefer: none}
""")
    (route,) = cfg.routes
    assert route.name == "code generation" and route.model == "anthropic/claude-sonnet-4-20250514"
    assert route.fallbacks == ("openai/gpt-4o", "openai/gpt-4o-mini")  # a bare name resolves to its id
    claude = cfg.find("anthropic/claude-sonnet-4-20250514")
    chain = [p.model for p in Forwarder(cfg).candidates(claude, "code generation")]
    assert chain == ["anthropic/claude-sonnet-4-20250514", "openai/gpt-4o", "openai/gpt-4o-mini"]
    # Without the route (no match), the model's own rule applies: the default model.
    assert [p.model for p in Forwarder(cfg).candidates(claude)] == ["anthropic/claude-sonnet-4-20250514",
                                                                    "openai/gpt-4o-mini"]


def test_one_name_inline_under_two_models_becomes_one_route_as_plano_migrates_it():
    cfg = parse("""\
version: v0.3.0
model_providers:
  - model: openai/gpt-4o-mini
    default: true
  - model: openai/gpt-4o
    routing_preferences:
      - {name: code_generation, description: writing code}
  - model: anthropic/claude-sonnet-4-20250514
    routing_preferences:
      - {name: code_generation, description: writing code}
""")
    assert [(r.name, r.model, r.fallbacks) for r in cfg.routes] == [
        ("code_generation", "openai/gpt-4o", ("anthropic/claude-sonnet-4-20250514",))]


def test_a_top_level_route_wins_over_an_inline_one_of_the_same_name_and_check_says_so(tmp_path, capsys):
    text = """\
version: v0.4.0
model_providers:
  - model: openai/gpt-4o-mini
    default: true
    routing_preferences:
      - {name: code_generation, description: small code edits}
  - model: anthropic/claude-sonnet-4-20250514
routing_preferences:
  - name: code_generation
    description: generating new code
    models: [anthropic/claude-sonnet-4-20250514]
"""
    cfg = parse(text)
    assert [(r.name, r.model, r.description) for r in cfg.routes] == [
        ("code_generation", "anthropic/claude-sonnet-4-20250514", "generating new code")]
    out = check_output(tmp_path, text, capsys)
    assert "note: routing_preferences 'code_generation' under openai/gpt-4o-mini is replaced by the top-level" in out


@pytest.mark.parametrize("extra, expected", [
    ("  - {name: r, description: d, models: [openai/gpt-4o, openai/gpt-5]}\n",
     "routing_preferences[0].models[1]: 'openai/gpt-5' is not a configured model; add it to model_providers"),
    ("  - {name: r, description: d, models: []}\n", "routing_preferences[0].models: must be a non-empty list"),
    ("  - {name: r, description: d}\n", "routing_preferences[0].models: must be a non-empty list"),
    ("  - {name: r, description: d, models: [openai/gpt-4o, gpt-4o]}\n",
     "routing_preferences[0].models[1]: 'gpt-4o' is listed twice"),
    ("  - {name: r, description: d, models: [openai/gpt-4o]}\n  - {name: r, description: e, models: [openai/gpt-4o]}\n",
     "routing_preferences[1].name: 'r' is used by an earlier routing preference"),
    ("  - {name: r, description: d, models: [openai/gpt-4o], selection_policy: {prefer: random}}\n",
     "routing_preferences[0].selection_policy.prefer: must be cheapest, fastest or none, got 'random'"),
    ("  - {name: r, description: d, models: [openai/gpt-4o], selection_policy: {prefer: none, weight: 2}}\n",
     "routing_preferences[0].selection_policy.weight: unknown field; expected one of: prefer"),
    ("  - {name: r, description: d, models: [openai/gpt-4o], selection_policy: cheapest}\n",
     "routing_preferences[0].selection_policy: must be a mapping such as {prefer: none}"),
    ("  - {name: r, models: [openai/gpt-4o]}\n", "routing_preferences[0].description: is required"),
    ("  - just a string\n", "routing_preferences[0]: must be a mapping with name, description and models"),
])
def test_newer_layout_mistakes_name_the_exact_key(extra, expected):
    found = problems(PROVIDERS + "routing_preferences:\n" + extra)
    assert any(expected in line for line in found), found


def test_cost_and_latency_policies_load_and_check_says_the_written_order_is_used(tmp_path, capsys):
    text = PROVIDERS + """\
routing_preferences:
  - name: code review
    description: reviewing, analyzing, and suggesting improvements to existing code
    models: [anthropic/claude-sonnet-4-20250514, openai/gpt-4o]
    selection_policy:
      prefer: cheapest
model_metrics_sources:
  - type: cost
    provider: models.dev
    refresh_interval: 3600
  - type: latency
    provider: prometheus
    url: http://prometheus:9090
    query: avg by (model_name) (rate(plano_llm_latency_seconds_sum[5m]))
prompt_caching:
  enabled: true
  session_affinity: true
routing:
  route_on_user_only: true
  routing_budget:
    max_switch_spend_pct: 20
"""
    cfg = parse(text)
    assert [(r.model, r.fallbacks) for r in cfg.routes] == [("anthropic/claude-sonnet-4-20250514", ("openai/gpt-4o",))]
    out = check_output(tmp_path, text, capsys)
    assert "code review -> anthropic/claude-sonnet-4-20250514 (then openai/gpt-4o)" in out
    assert "ignored Plano sections: model_metrics_sources, prompt_caching" in out
    assert ("note: routing_preferences[0].selection_policy.prefer: cheapest is not acted on: this gateway reads "
            "no price catalog") in out
    assert "set routing.implicit_sessions: true" in out
    assert "note: routing.routing_budget is not acted on" in out


def test_a_failing_first_model_fails_over_to_the_next_of_its_route_not_the_default(
        start_gateway: GatewayFactory, fake_provider: FakeProvider):
    gw = start_gateway(f"""\
version: v0.4.0
model_providers:
  - model: openai/gpt-4o-mini
    access_key: $TEST_OPENAI_KEY
    base_url: {fake_provider.url}
    default: true
  - model: openai/gpt-4o
    access_key: $TEST_OPENAI_KEY
    base_url: {fake_provider.url}
  - model: openai/gpt-4.1
    access_key: $TEST_OPENAI_KEY
    base_url: {fake_provider.url}
  - model: openai/arch-router
    name: arch-router
    base_url: {fake_provider.url}
routing_preferences:
  - name: code_generation
    description: generating new code, writing functions, or creating boilerplate
    models: [openai/gpt-4o, openai/gpt-4.1]
routing:
  model: Arch-Router   # played by the fake provider: it answers the route a ROUTE: marker names
  llm_provider: arch-router
""")
    answer = httpx.post(f"{gw.url}/v1/chat/completions", timeout=30, json={"messages": [
        {"role": "user", "content": f"ROUTE:code_generation {CODE_PROMPT} FAULT:500@gpt-4o"}]})
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-router-route"] == "code_generation"
    assert answer.headers["x-router-model"] == "openai/gpt-4.1"
    assert answer.headers["x-router-failover"] == "openai/gpt-4o -> openai/gpt-4.1"
