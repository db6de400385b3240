"""The LLM router configured exactly as README.md shows it, against the fake provider playing Arch-Router.

The config block is read from README.md, so the test breaks if the README and
the code drift apart. Only the server's URL is changed (to the fake provider)
and two models with routes are added for it to choose between.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import yaml

from conftest import FakeProvider, GatewayFactory

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_router_config() -> dict:
    """The YAML block that follows README's "**The LLM router**" paragraph, parsed."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("**The LLM router**"):]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block, "README's LLM router section has no yaml block"
    return yaml.safe_load(block.group(1))


def test_the_readme_llm_router_config_sends_the_model_name_whole_and_pins_the_session(
        fake_provider: FakeProvider, start_gateway: GatewayFactory):
    config = readme_router_config()
    router_model = config["routing"]["model"]
    assert router_model == "hf.co/katanemo/Arch-Router-1.5B.gguf:Q4_K_M"  # the README's example, slashes and all
    [host] = config["model_providers"]
    assert host["name"] == config["routing"]["llm_provider"]
    host["base_url"] = fake_provider.url  # instead of Ollama's port
    config["model_providers"] += [
        {"model": "openai/gpt-4o-mini", "access_key": "$TEST_OPENAI_KEY", "base_url": fake_provider.url,
         "default": True},
        {"model": "openai/gpt-4o", "access_key": "$TEST_OPENAI_KEY", "base_url": fake_provider.url,
         "routing_preferences": [{"name": "code_generation", "description": "writing code"}]},
    ]
    gw = start_gateway(yaml.safe_dump(config, sort_keys=False))
    fake_provider.clear()

    first = gw.decide("ROUTE:code_generation write a merge sort", session="readme-router")
    again = gw.decide("and now a quick sort", session="readme-router")

    assert first.status_code == 200, first.text
    assert first.json()["model"] == "openai/gpt-4o" and first.json()["route"] == "code_generation"
    assert first.json()["pinned"] is False
    assert again.json()["model"] == "openai/gpt-4o" and again.json()["pinned"] is True
    asked = [r for r in fake_provider.requests() if "<routes>" in str(r["body"].get("messages"))]
    assert len(asked) == 1  # the pinned request did not ask the router
    assert asked[0]["body"]["model"] == router_model  # exactly as Ollama knows it
    assert first.json()["route"] is not None  # not the fallback a router failure gives
    health = httpx.get(f"{gw.url}/healthz", timeout=5).json()
    assert health["router"] == "llm"
