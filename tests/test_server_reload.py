"""Reloading a running `gateway up` process's config: SIGHUP and `gateway reload`."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from conftest import CODE_PROMPT, REASONING_PROMPT, RunningGateway

CLAUDE = "anthropic/claude-sonnet-4-20250514"
NEW_MODEL = "openai/gpt-4.1"


def config_file(gw: RunningGateway) -> Path:
    return Path(gw.proc.args[4])  # launch() runs: python -m gateway up CONFIG ...


def models(gw: RunningGateway) -> list[str]:
    return [m["id"] for m in httpx.get(f"{gw.url}/v1/models", timeout=5).json()["data"]]


def wait_for_model(gw: RunningGateway, model: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while model not in models(gw):
        assert gw.proc.poll() is None, gw.output()
        assert time.monotonic() < deadline, f"{model} never served:\n{gw.output()}"
        time.sleep(0.1)


def models_config(models: tuple[str, ...] = ("openai/gpt-4o", CLAUDE), extra: str = "", routing: str = "") -> str:
    """gpt-4o-mini (the default) and `models`, no routes, no keys or URLs: decisions only, so the gateway
    starts and reloads quickly (no router to build, no provider library to import). A session is pinned
    to the model its first request names, or to the default."""
    entries = "".join(f"  - model: {m}\n" for m in models)
    return f"model_providers:\n  - model: openai/gpt-4o-mini\n    default: true\n{entries}{extra}{routing}"


def without_gpt_4o_with_a_new_model(routing: str = "") -> str:
    return models_config((CLAUDE, NEW_MODEL), routing=routing)


def wait_for_log(gw: RunningGateway, text: str, count: int = 1, timeout: float = 10) -> None:
    """Until `text` appears `count` times in the gateway's output (its log lines are written in batches)."""
    deadline = time.monotonic() + timeout
    while gw.output().count(text) < count:
        assert time.monotonic() < deadline, f"{text!r} not logged {count} time(s):\n{gw.output()}"
        time.sleep(0.1)


def gateway_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=120)


def test_sighup_reloads_keeping_pins_to_models_still_configured_and_dropping_the_others(start_gateway):
    gw = start_gateway(models_config())
    code = gw.decide(CODE_PROMPT, session="reload-code", model=CLAUDE).json()
    reasoning = gw.decide(REASONING_PROMPT, session="reload-reasoning", model="openai/gpt-4o").json()
    assert (code["model"], reasoning["model"]) == (CLAUDE, "openai/gpt-4o")

    config_file(gw).write_text(without_gpt_4o_with_a_new_model())
    gw.proc.send_signal(signal.SIGHUP)  # before reload support, SIGHUP's default action ended the process
    wait_for_model(gw, NEW_MODEL)

    assert "openai/gpt-4o" not in models(gw)
    kept = gw.decide(REASONING_PROMPT, session="reload-code").json()
    assert (kept["model"], kept["pinned"]) == (CLAUDE, True)  # its model is still configured: the pin survives
    dropped = gw.decide(REASONING_PROMPT, session="reload-reasoning").json()
    assert (dropped["model"], dropped["pinned"]) == ("openai/gpt-4o-mini", False)  # its model is gone: decided afresh
    wait_for_log(gw, f"reloaded {config_file(gw)}")


def test_an_invalid_config_is_refused_with_the_check_problems_and_the_old_one_keeps_serving(start_gateway):
    gw = start_gateway(models_config())
    assert gw.decide(CODE_PROMPT, session="refused-reload", model=CLAUDE).json()["model"] == CLAUDE
    path = config_file(gw)
    broken = models_config(extra="  - model: openai/broken\n    colour: red\n    timeout: soon\n")
    path.write_text(broken)

    reload = gateway_cli("reload", str(path), "--url", gw.url)
    check = gateway_cli("check", str(path))
    assert reload.returncode == 1 and check.returncode == 1
    problems = [line for line in reload.stderr.splitlines() if line.startswith("config error: ")]
    assert problems == check.stderr.strip().splitlines() and len(problems) == 2  # the same list gateway check prints
    assert "the previous one keeps serving" in reload.stderr

    gw.proc.send_signal(signal.SIGHUP)  # the signal path refuses it the same way, in the log
    wait_for_log(gw, "reload refused: the previous config keeps serving", count=2)
    pinned = gw.decide(REASONING_PROMPT, session="refused-reload").json()
    assert (pinned["model"], pinned["pinned"]) == (CLAUDE, True)
    assert "openai/broken" not in models(gw)

    path.write_text(without_gpt_4o_with_a_new_model())
    fixed = gateway_cli("reload", str(path), "--url", gw.url)
    assert fixed.returncode == 0, fixed.stderr
    assert f"reloaded {path}" in fixed.stdout and NEW_MODEL in fixed.stdout
    assert NEW_MODEL in models(gw)


def worker_pids(gw: RunningGateway, answers: int = 12) -> set[int]:
    """The worker pids that answered `answers` fresh connections (each may land on any worker)."""
    return {httpx.get(f"{gw.url}/healthz", headers={"Connection": "close"}, timeout=5).json()["pid"]
            for _ in range(answers)}


def live_workers(gw: RunningGateway) -> set[int]:
    """The supervisor's child processes now, from the kernel (sampling answers can miss a live worker:
    a shared listening socket need not spread fresh connections evenly). Besides the workers this may
    include multiprocessing's helper process."""
    pid = gw.proc.pid
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def both_workers(gw: RunningGateway) -> set[int]:
    deadline = time.monotonic() + 20
    pids: set[int] = set()
    while len(pids) < 2:
        assert time.monotonic() < deadline, f"only {pids} answered"
        pids |= worker_pids(gw, 4)
    return pids


def test_with_workers_a_broken_config_keeps_them_and_a_valid_one_replaces_them(start_gateway):
    routing = "routing:\n  session_cache:\n    type: redis\n    url: redis://127.0.0.1:6379/13\n"
    gw = start_gateway(models_config(routing=routing), args=("--workers", "2"))
    session = f"workers-reload-{time.time_ns()}"
    assert gw.decide(CODE_PROMPT, session=session, model=CLAUDE).json()["model"] == CLAUDE
    old = both_workers(gw)
    assert old <= live_workers(gw)  # the kernel's list of children holds the workers (it is what the wait below reads)

    path = config_file(gw)
    path.write_text(models_config(extra="  - model: openai/x\n    colour: red\n", routing=routing))
    gw.proc.send_signal(signal.SIGHUP)
    wait_for_log(gw, "reload refused: the workers keep serving the previous config")
    assert "colour: unknown field" in gw.output()
    assert worker_pids(gw) <= old  # no worker was replaced

    path.write_text(without_gpt_4o_with_a_new_model(routing))
    asked = gateway_cli("reload", "--url", gw.url)  # reaches one worker, which checks and signals the supervisor
    assert asked.returncode == 0 and "the workers are being replaced one by one" in asked.stdout, asked.stderr
    deadline = time.monotonic() + 90
    while live_workers(gw) & old:  # until both old workers have been replaced and have exited
        assert gw.proc.poll() is None and time.monotonic() < deadline, gw.output()
        time.sleep(0.2)
    assert not worker_pids(gw) & old
    assert NEW_MODEL in models(gw)
    kept = gw.decide(REASONING_PROMPT, session=session).json()
    assert (kept["model"], kept["pinned"]) == (CLAUDE, True)  # pins are in Redis: new workers see them
