"""Every demo runs offline from its own script, and prints what its README promises."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import free_port

DEMOS = Path(__file__).resolve().parent.parent / "demos"


def run_demo(script: str) -> str:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GATEWAY_URL")}
    env.update(PYTHON=sys.executable, GATEWAY_PORT=str(free_port()))
    result = subprocess.run(["bash", str(DEMOS / script)], capture_output=True, text=True, env=env, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_session_pinning_demo_prints_the_seed_output():
    out = run_demo("llm_routing/session_pinning/demo.sh")
    claude, gpt4o = "anthropic/claude-sonnet-4-20250514", "openai/gpt-4o"
    expected_run1 = [
        f"Step 1: Design a REST API schema… → {claude}",
        f"Step 2: Analyze SQL vs NoSQL… → {gpt4o}",
        f"Step 3: Write SQLAlchemy models… → {claude}",
        f"Step 4: Review API for security… → {gpt4o}",
        f"Step 5: Implement JWT auth… → {claude}",
        f"✗ Models varied: {claude}, {gpt4o}",
    ]
    expected_run2 = [
        f"Step 1: Design a REST API schema… → {claude} (pinned=false)",
        f"Step 2: Analyze SQL vs NoSQL… → {claude} (pinned=true)",
        f"Step 3: Write SQLAlchemy models… → {claude} (pinned=true)",
        f"Step 4: Review API for security… → {claude} (pinned=true)",
        f"Step 5: Implement JWT auth… → {claude} (pinned=true)",
        f"✓ All 5 steps routed to {claude}",
    ]
    lines = out.splitlines()
    run1 = lines.index("Run 1: WITHOUT Session Pinning")
    run2 = next(i for i, line in enumerate(lines) if line.startswith("Run 2: WITH Session Pinning (X-Session-Id: "))
    assert lines[run1 + 2: run1 + 8] == expected_run1
    assert lines[run2 + 2: run2 + 8] == expected_run2
    assert re.fullmatch(r"Run 2: WITH Session Pinning \(X-Session-Id: [0-9a-f]{8}-…\)", lines[run2])


def test_model_routing_service_demo_shows_routes_default_and_pinning():
    out = run_demo("llm_routing/model_routing_service/demo.sh")
    answers = [line for line in out.splitlines() if line.startswith("{")]
    assert len(answers) == 6
    expect = [
        ('"model":"anthropic/claude-sonnet-4-20250514","route":"code_generation"', '"pinned":false'),
        ('"model":"openai/gpt-4o","route":"complex_reasoning"', '"pinned":false'),
        ('"model":"openai/gpt-4o-mini","route":null', '"pinned":false'),
        ('"model":"anthropic/claude-sonnet-4-20250514","route":"code_generation"', '"pinned":false'),
        ('"model":"anthropic/claude-sonnet-4-20250514","route":"code_generation"', '"pinned":true'),
        ('"model":"openai/gpt-4o","route":"complex_reasoning"', '"pinned":false'),
    ]
    for answer, (decision, pinned) in zip(answers, expect):
        assert decision in answer and pinned in answer, answer
    assert '"session_id"' not in answers[0] and '"session_id":"demo-' in answers[3]


def test_openai_sdk_demo_serves_both_calls_from_one_pinned_model():
    out = run_demo("openai_sdk/demo.sh")
    assert "step 1 (non-streamed): model=anthropic/claude-sonnet-4-20250514 route=code_generation pinned=false" in out
    assert "step 2 (streamed):     model=anthropic/claude-sonnet-4-20250514 route=code_generation pinned=true" in out
    assert "| [claude-sonnet-4-20250514] Explain in detail" in out
    assert "✓ both steps served by anthropic/claude-sonnet-4-20250514" in out


def test_agent_framework_demo_runs_every_step_on_one_model():
    out = run_demo("agent_loop/demo.sh")
    steps = re.findall(r"step (\d+): (\S+) \(route=(\S+), pinned=(\w+)\)", out)
    assert len(steps) == 5  # four tool calls and the final answer
    assert {model for _, model, _, _ in steps} == {"anthropic/claude-sonnet-4-20250514"}
    assert [pinned for *_, pinned in steps] == ["false", "true", "true", "true", "true"]
    assert "✓ all 5 agent steps served by anthropic/claude-sonnet-4-20250514" in out
