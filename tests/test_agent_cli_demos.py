"""The agent CLI demos run the real Claude Code and Codex through the gateway, offline.

Each demo (demos/claude_code, demos/codex) needs its CLI, which its setup.sh
installs with npm into demos/.clients/ (or AGENT_CLIENTS_DIR); CLAUDE_BIN and
CODEX_BIN point at another binary. Without one, the test is skipped and says
which setup script to run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import free_port

DEMOS = Path(__file__).resolve().parent.parent / "demos"
CLIENTS = Path(os.environ.get("AGENT_CLIENTS_DIR") or DEMOS / ".clients")

# One row of a demo's table: #, turn, endpoint, session source, route, model, pinned.
ROW = re.compile(r"^ +(\d+) +([12]) +(/v1/\S+) +(\S+) +(\S+) +(\S+) +(true|false)$", re.M)
DONE = re.compile(r"^✓ all (\d+) requests of session (\S+) served by (\S+)$", re.M)


def installed(name: str, env_var: str, default: Path, setup: str) -> str:
    path = os.environ.get(env_var) or str(default)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.skip(f"{name} not found at {path}: run {setup} (or set {env_var} to its binary)")
    return path


def run_demo(script: str, **env_extra: str) -> str:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GATEWAY_URL")}
    env.update(PYTHON=sys.executable, GATEWAY_PORT=str(free_port()), **env_extra)
    # Its own process group, so a demo that hangs is stopped with the gateway and fake provider it started.
    proc = subprocess.Popen(["bash", str(DEMOS / script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{script} did not finish in 120 s:\n{out}{err}")
    assert proc.returncode == 0, out + err
    return out


def check_one_pinned_session(out: str, endpoint: str, source: str, min_requests: int) -> str:
    """Every request of the one session went to one model; the first decided it, all others (turn 2's) pinned."""
    rows = ROW.findall(out)
    assert len(rows) >= min_requests, out
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1)), out
    assert {r[2] for r in rows} == {endpoint}, out
    assert {r[3] for r in rows} == {source}, out
    models = {r[5] for r in rows}
    assert len(models) == 1, f"one session, several models: {models}\n{out}"
    turn1 = [r for r in rows if r[1] == "1"]
    turn2 = [r for r in rows if r[1] == "2"]
    assert turn1 and turn2, out
    unpinned = [r for r in rows if r[6] == "false"]
    assert len(unpinned) == 1 and unpinned[0][1] == "1", f"expected only the first decision unpinned\n{out}"
    assert all(r[6] == "true" for r in turn2), f"turn 2 not pinned\n{out}"
    done = DONE.search(out)
    assert done, out
    assert int(done.group(1)) == len(rows) and done.group(3) in models, out
    return done.group(3)


def test_claude_code_demo_pins_both_turns_to_one_model():
    claude = installed("Claude Code", "CLAUDE_BIN", CLIENTS / "claude-code" / "bin" / "claude", "demos/claude_code/setup.sh")
    out = run_demo("claude_code/demo.sh", CLAUDE_BIN=claude)
    # turn 1: a title request, the prompt and a tool-result follow-up per offered tool; turn 2: the prompt
    model = check_one_pinned_session(out, "/v1/messages", "header:x-claude-code-session-id", min_requests=3)
    assert model == "anthropic/claude-sonnet-4-20250514", out  # the coding task's route
    assert "would be routed to anthropic/claude-opus-4-20250514 (route complex_reasoning)" in out, out


def test_codex_demo_pins_both_turns_to_one_model():
    codex = installed("Codex", "CODEX_BIN", CLIENTS / "codex" / "bin" / "codex", "demos/codex/setup.sh")
    out = run_demo("codex/demo.sh", CODEX_BIN=codex)
    model = check_one_pinned_session(out, "/v1/responses", "header:session-id", min_requests=2)
    assert model == "openai/gpt-4.1", out  # the coding task's route
    assert "would be routed to openai/o3 (route complex_reasoning)" in out, out
