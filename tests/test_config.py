"""Config loading: Plano files load unchanged; wrong ones are refused with one clear line each."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config, parse_config
import yaml

REPO = Path(__file__).resolve().parent.parent

SEED_CONFIG = (REPO / "config.yaml").read_text()  # the seed document's config, bundled as is


def parse(text: str, env: dict[str, str] | None = None):
    return parse_config(yaml.safe_load(textwrap.dedent(text)), env=env or {})


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse(text, env)
    return err.value.problems


def test_seed_config_loads_without_any_keys():
    cfg = parse(SEED_CONFIG)
    assert [p.model for p in cfg.providers] == ["openai/gpt-4o-mini", "openai/gpt-4o", "anthropic/claude-sonnet-4-20250514"]
    assert cfg.default_provider.model == "openai/gpt-4o-mini"
    assert [(r.name, r.model) for r in cfg.routes] == [
        ("complex_reasoning", "openai/gpt-4o"), ("code_generation", "anthropic/claude-sonnet-4-20250514")]
    assert cfg.port == 12000 and cfg.routing.session_ttl_seconds == 600
    assert cfg.providers[0].access_key is None and cfg.providers[0].access_key_source == "$OPENAI_API_KEY"


def test_access_keys_come_from_the_environment_in_both_spellings():
    cfg = parse("""\
        model_providers:
          - model: openai/a
            access_key: $KEY_A
          - model: openai/b
            access_key: ${KEY_B}
          - model: openai/c
            access_key: literal-key
        """, env={"KEY_A": "va", "KEY_B": "vb"})
    assert [p.access_key for p in cfg.providers] == ["va", "vb", "literal-key"]


def test_requests_may_name_a_model_with_or_without_prefix_by_name_or_alias():
    cfg = parse("""\
        llm_providers:
          - model: openai/gpt-4o
            name: big
          - model: anthropic/claude-sonnet-4-20250514
        model_aliases:
          smart: {target: big}
          coder: {target: claude-sonnet-4-20250514}
        """)
    find = lambda m: cfg.find(m).model  # noqa: E731
    assert find("openai/gpt-4o") == find("gpt-4o") == find("big") == find("smart") == "openai/gpt-4o"
    assert find("coder") == "anthropic/claude-sonnet-4-20250514"
    assert cfg.find("gpt-3.5") is None
    assert cfg.default_provider.model == "openai/gpt-4o"  # no default marked: the first


def test_listener_address_port_and_retries_are_read():
    cfg = parse("""\
        listeners:
          - {type: model, name: m, port: 13000, address: 0.0.0.0, max_retries: 1}
        model_providers:
          - model: openai/x
        """)
    assert (cfg.host, cfg.port, cfg.max_retries) == ("0.0.0.0", 13000, 1)


def test_examples_extension_and_top_level_routing_preferences():
    cfg = parse("""\
        model_providers:
          - model: openai/a
            routing_preferences:
              - name: sql
                description: writing SQL queries
                examples: ["select the top customers by revenue"]
          - model: openai/b
        routing_preferences:
          - name: poems
            description: writing poems
            models: [openai/b]
        """)
    assert cfg.routes[0].examples == ("select the top customers by revenue",)
    assert (cfg.routes[1].name, cfg.routes[1].model) == ("poems", "openai/b")


@pytest.mark.parametrize("text, expected", [
    ("model_providers:\n  - model: openai/a\n    colour: red\n", "model_providers[0] (openai/a).colour: unknown field"),
    ("model_providers:\n  - model: openai/a\n    default: yes please\n", "default: must be a boolean"),
    ("model_providers:\n  - model: openai/a\n    routing_preferences:\n      - name: x\n",
     "routing_preferences[0].description: is required"),
    ("model_providers:\n  - model: openai/a\n    default: true\n  - model: openai/b\n    default: true\n",
     "more than one model has `default: true`"),
    ("model_providers:\n  - model: openai/a\nrouting:\n  session_cache: {type: redis, url: $REDIS_URL}\n",
     "environment variable REDIS_URL is not set"),
    ("listeners:\n  - {type: model, name: m, port: eighty}\nmodel_providers:\n  - model: openai/a\n",
     "listeners[0].port: must be a whole number"),
    ("model_providers: []\n", "model_providers: must be a non-empty list"),
    ("routing:\n  session_ttl_seconds: 10\n", "model_providers: is required"),
    ("model_providers:\n  - model: openai/a\nmodel_aliases:\n  fast: {target: openai/zzz}\n",
     "model_aliases.fast.target: 'openai/zzz' is not a configured model"),
    ("model_providers:\n  - model: openai/a\nroutng: {}\n", "routng: unknown field"),
])
def test_wrong_configs_are_refused_naming_the_field(text, expected):
    found = problems(text)
    assert any(expected in p for p in found), found


def test_every_problem_is_reported_not_just_the_first():
    found = problems("model_providers:\n  - model: openai/a\n    colour: red\n    default: 3\nroutng: {}\n")
    assert len(found) == 3


def test_plano_sections_we_do_not_act_on_still_load():
    cfg = parse("model_providers:\n  - model: openai/a\ntracing:\n  random_sampling: 100\nprompt_targets: []\n")
    assert cfg.ignored_sections == ["prompt_targets", "tracing"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=60)


def test_check_prints_models_aliases_and_routes_of_the_bundled_config():
    result = run_cli("check", str(REPO / "config.yaml"))
    assert result.returncode == 0, result.stderr
    assert "anthropic/claude-sonnet-4-20250514" in result.stdout
    assert "code_generation -> anthropic/claude-sonnet-4-20250514" in result.stdout


def test_bad_config_gives_one_clear_line_per_problem_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_providers:\n  - model: openai/a\n    colour: red\n  - model: openai/b\n    timeout: soon\n")
    for command in ("check", "up"):
        result = run_cli(command, str(bad))
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 2, result.stderr
        assert all(line.startswith("config error: ") for line in lines)
        assert "Traceback" not in result.stderr + result.stdout


def test_missing_and_unparsable_files_are_one_line_errors(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("model_providers:\n  - model: [unclosed\n")
    for path, phrase in [(tmp_path / "nope.yaml", "file not found"), (broken, "not valid YAML at line")]:
        with pytest.raises(ConfigError) as err:
            load_config(path)
        assert phrase in err.value.problems[0]
