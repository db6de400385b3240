"""Real processes on loopback: the fake provider and gateways started by their CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import httpx
import pytest

OPENAI_KEY = "sk-test-openai-0d9f8e7c6b5a"
ANTHROPIC_KEY = "sk-ant-test-1a2b3c4d5e6f"

CODE_PROMPT = "Write a Python function that merges two sorted lists into one sorted list."
REASONING_PROMPT = "Analyze the trade-offs between SQL and NoSQL databases for a high-traffic system and explain which to choose."
SMALL_TALK = "hello, how are you today?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready after {timeout}s:\n{log.read_text()}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class FakeProvider:
    url: str
    proc: subprocess.Popen
    log: Path

    def requests(self) -> list[dict]:
        return httpx.get(f"{self.url}/_requests").json()

    def events(self) -> list[str]:
        return httpx.get(f"{self.url}/_events").json()

    def clear(self) -> None:
        httpx.delete(f"{self.url}/_requests")


@contextmanager
def fake_provider_process(directory: Path, *args: str) -> Iterator[FakeProvider]:
    """The fake provider as a process on a free port (`args`: its options, e.g. --chunk-delay-ms)."""
    port = free_port()
    log = directory / "fake_provider.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gateway.testing.fake_provider", "--port", str(port), *args],
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/healthz", proc, log)
        yield FakeProvider(url, proc, log)
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def fake_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeProvider]:
    with fake_provider_process(tmp_path_factory.mktemp("fake")) as provider:
        yield provider


def provider_config(fake_url: str, routing: str = "", extra: str = "") -> str:
    """A Plano-style config whose three models all live on the fake provider."""
    return textwrap.dedent(f"""\
        version: v0.3.0
        listeners:
          - type: model
            name: model_listener
            port: 12000
        model_providers:
          - model: openai/gpt-4o-mini
            access_key: $TEST_OPENAI_KEY
            base_url: {fake_url}
            default: true
          - model: openai/gpt-4o
            access_key: $TEST_OPENAI_KEY
            base_url: {fake_url}
            routing_preferences:
              - name: complex_reasoning
                description: complex reasoning tasks, multi-step analysis, or detailed explanations
          - model: anthropic/claude-sonnet-4-20250514
            access_key: $TEST_ANTHROPIC_KEY
            base_url: {fake_url}
            routing_preferences:
              - name: code_generation
                description: generating new code, writing functions, or creating boilerplate
        """) + textwrap.dedent(routing) + textwrap.dedent(extra)


@dataclass
class RunningGateway:
    url: str
    proc: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text()

    def decide(self, prompt: str, session: str | None = None, **body) -> httpx.Response:
        headers = {"X-Session-Id": session} if session is not None else {}
        return httpx.post(f"{self.url}/routing/v1/chat/completions", headers=headers,
                          json={"messages": [{"role": "user", "content": prompt}], **body}, timeout=30)


GatewayFactory = Callable[..., RunningGateway]


def launch(config_text: str, workdir: Path, env: dict[str, str] | None = None,
           args: tuple[str, ...] = ()) -> RunningGateway:
    """Write the config into `workdir` and start `gateway up` on a free port."""
    workdir.mkdir(parents=True, exist_ok=True)
    n = len(list(workdir.glob("config*.yaml")))
    config = workdir / f"config{n}.yaml"
    config.write_text(config_text)
    port = free_port()
    log = workdir / f"gateway{n}.log"
    full_env = {**os.environ, "TEST_OPENAI_KEY": OPENAI_KEY, "TEST_ANTHROPIC_KEY": ANTHROPIC_KEY, **(env or {})}
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "up", str(config), "--port", str(port), *args],
                                stdout=out, stderr=subprocess.STDOUT, env=full_env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/healthz", proc, log)
    except Exception:
        stop(proc)
        raise
    return RunningGateway(url, proc, log)


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[GatewayFactory]:
    """Start gateways on config texts; every one started is stopped afterwards."""
    started: list[RunningGateway] = []

    def start(config_text: str, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> RunningGateway:
        started.append(launch(config_text, tmp_path, env, args))
        return started[-1]

    yield start
    for gw in started:
        stop(gw.proc)


# The OpenAI-format providers are served two ways: the direct byte relay (the
# default) and litellm. Tests using these fixtures run once on each path, so
# both must behave identically.
FORWARDING_PATHS = {"relay": {"GATEWAY_OPENAI_RELAY": "1"}, "litellm": {"GATEWAY_OPENAI_RELAY": "0"}}


@pytest.fixture(scope="module", params=list(FORWARDING_PATHS))
def forwarding_path(request: pytest.FixtureRequest) -> dict[str, str]:
    return FORWARDING_PATHS[request.param]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake_provider: FakeProvider,
            forwarding_path: dict[str, str]) -> Iterator[RunningGateway]:
    """One gateway per test module and forwarding path on the three-model config, all on the fake provider."""
    gw = launch(provider_config(fake_provider.url), tmp_path_factory.mktemp("gateway"), env=forwarding_path)
    yield gw
    stop(gw.proc)
