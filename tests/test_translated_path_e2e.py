"""The translated (litellm) path end to end, on one gateway: litellm's import off the event loop, the answer
limit Anthropic gets, and the agent demo's client in an environment without httpx.

The first test must send the gateway's first translated request: the gateway
starts importing litellm (seconds of CPU) in a thread at startup, and /healthz
must answer meanwhile. Before, that request imported litellm on the event loop
and every other request, /healthz included, waited seconds for it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from conftest import CODE_PROMPT, FakeProvider, RunningGateway, launch, provider_config, stop
from gateway.config import load_config
from gateway.litellm_loader import needed_by

ROOT = Path(__file__).resolve().parent.parent
CLAUDE = "anthropic/claude-sonnet-4-20250514"
SHORT = "anthropic/claude-3-5-haiku-20241022"  # configured with default_max_tokens: 1000
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def claude_gateway(fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory):
    extra = f"""\
  - model: {SHORT}
    access_key: $TEST_ANTHROPIC_KEY
    base_url: {fake_provider.url}
    default_max_tokens: 1000
"""
    gw = launch(provider_config(fake_provider.url) + extra, tmp_path_factory.mktemp("translated"))
    yield gw
    stop(gw.proc)


def test_healthz_answers_while_the_first_translated_request_waits_for_litellm(
        claude_gateway: RunningGateway, fake_provider: FakeProvider):
    answer: dict[str, httpx.Response] = {}

    def translated() -> None:  # chat to Claude goes through litellm
        answer["r"] = httpx.post(f"{claude_gateway.url}/v1/chat/completions", timeout=60, json={
            "model": CLAUDE, "messages": [{"role": "user", "content": CODE_PROMPT}]})

    started = time.perf_counter()
    caller = threading.Thread(target=translated)
    caller.start()
    health_seconds = []
    with httpx.Client(timeout=30) as client:
        while caller.is_alive():
            sent = time.perf_counter()
            assert client.get(f"{claude_gateway.url}/healthz").status_code == 200
            health_seconds.append(time.perf_counter() - sent)
            time.sleep(0.1)
    caller.join()
    first_answer = time.perf_counter() - started

    assert answer["r"].status_code == 200, answer["r"].text
    assert answer["r"].json()["choices"][0]["message"]["content"]  # translated there and back
    worst = max(health_seconds, default=0.0)
    print(f"\nfirst translated answer after {first_answer:.2f}s; /healthz polled {len(health_seconds)} times "
          f"meanwhile, slowest {worst * 1000:.0f} ms")
    # Generous for a noisy machine: on the event loop the import held every request for seconds.
    assert worst < 2.0


def test_only_a_gateway_that_can_forward_or_routes_with_an_llm_imports_litellm_at_startup():
    bundled = ROOT / "config.yaml"  # keys from the environment: none set means decisions only
    assert not needed_by(load_config(bundled, env={}))
    assert needed_by(load_config(bundled, env={"OPENAI_API_KEY": "sk-set"}))


# -- what reaches Anthropic when a translated request names no answer limit ----------------------
# litellm otherwise fills in the model's whole context size (128000 when its bundled model map
# lacks the model), which a real Anthropic endpoint refuses for a model with a smaller output limit.


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
    fake_provider.clear()
    r = httpx.post(f"{claude_gateway.url}{path}", json=body, timeout=60)
    assert r.status_code == 200, r.text
    [request] = [q for q in fake_provider.requests() if q["path"] == "/v1/messages"]
    assert request["body"].get("max_tokens") == expected


# -- demos/agent_loop where httpx is not installed --------------------------------------------------
# openai 3 is built on httpx2 and no longer installs httpx; a fresh venv following the demo's README
# (`pip install -r demos/agent_loop/requirements.txt`) has no httpx. Blocking its import here is that venv.

WITHOUT_HTTPX = """
import runpy, sys
sys.modules["httpx"] = None  # `import httpx` now fails as it does where httpx is not installed
runpy.run_path(sys.argv[1], run_name="__main__")
"""


def test_the_agent_demo_runs_where_httpx_is_not_installed(claude_gateway: RunningGateway):
    agent = ROOT / "demos" / "agent_loop" / "agent.py"
    done = subprocess.run([sys.executable, "-c", WITHOUT_HTTPX, str(agent)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "GATEWAY_URL": claude_gateway.url})
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"✓ all 5 agent steps served by {CLAUDE}" in done.stdout
