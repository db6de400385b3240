"""`gateway up` as an operator meets it: ports, the default config, --version, listening beyond loopback safely."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from conftest import free_port, launch, stop, wait_ready

REPO = Path(__file__).resolve().parents[1]
MINIMAL = "model_providers:\n  - model: openai/gpt-4o-mini\n    default: true\n"  # decisions only: quick to start
WITH_KEYS = MINIMAL + "auth:\n  keys:\n    - {name: team-a, key: gw-key-team-a}\n"


def gateway(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the gateway command to completion (for the cases where it must refuse to start)."""
    full_env = {k: v for k, v in os.environ.items() if k != "GATEWAY_CONFIG"}
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env={**full_env, **(env or {}), "PYTHONPATH": str(REPO)})


def test_version_prints_the_package_version():
    from gateway import __version__

    result = gateway("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"gateway {__version__}"


def test_a_port_out_of_range_is_refused_before_anything_listens(tmp_path):
    (tmp_path / "config.yaml").write_text(MINIMAL)
    result = gateway("up", str(tmp_path / "config.yaml"), "--port", "70000")
    assert result.returncode == 2
    assert "70000 is not a TCP port; use 1-65535" in result.stderr
    assert "listening" not in result.stdout  # it printed port 70000 and bound 4464 (70000 mod 65536)


def test_a_port_in_use_is_reported_before_the_listening_line(tmp_path):
    (tmp_path / "config.yaml").write_text(MINIMAL)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = gateway("up", str(tmp_path / "config.yaml"), "--port", str(port))
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr and "--port" in result.stderr
    assert "listening" not in result.stdout


def test_without_a_config_argument_the_error_names_gateway_config_and_config_yaml(tmp_path):
    result = gateway("up", cwd=tmp_path)
    assert result.returncode == 1
    assert "GATEWAY_CONFIG" in result.stderr and "config.yaml" in result.stderr and str(tmp_path) in result.stderr
    assert "Traceback" not in result.stderr


def test_without_a_config_argument_check_reads_config_yaml_in_the_current_directory(tmp_path):
    (tmp_path / "config.yaml").write_text(MINIMAL)
    result = gateway("check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("config.yaml: ok")
    assert "server: headers at most 65536 bytes, 100 headers" in result.stdout


def test_without_a_config_argument_up_serves_the_file_named_by_gateway_config(tmp_path):
    (tmp_path / "elsewhere.yaml").write_text(MINIMAL)
    port = free_port()
    log = tmp_path / "gateway.log"
    env = {**os.environ, "GATEWAY_CONFIG": str(tmp_path / "elsewhere.yaml"), "PYTHONPATH": str(REPO)}
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "up", "--port", str(port)], cwd=tmp_path,
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz", proc, log)
        assert f"(config {tmp_path / 'elsewhere.yaml'}" in log.read_text()
    finally:
        stop(proc)


def test_listening_beyond_loopback_without_gateway_keys_is_refused_and_says_how_to_fix_it(tmp_path):
    (tmp_path / "config.yaml").write_text(MINIMAL)
    result = gateway("up", str(tmp_path / "config.yaml"), "--host", "0.0.0.0", "--port", str(free_port()))
    assert result.returncode == 1
    assert "listening on 0.0.0.0 reaches beyond this machine" in result.stderr
    assert "auth.keys" in result.stderr and "--allow-unauthenticated" in result.stderr
    assert "listening" not in result.stdout


def test_beyond_loopback_with_gateway_keys_every_api_and_reload_needs_a_key(tmp_path):
    gw = launch(WITH_KEYS, tmp_path, args=("--host", "0.0.0.0"))
    try:
        assert httpx.get(f"{gw.url}/v1/models", timeout=5).status_code == 401
        assert httpx.post(f"{gw.url}/routing/v1/reload", timeout=60).status_code == 401
        assert gateway("reload", "--url", gw.url, "--key", "gw-key-team-a").returncode == 0
        # Probes and scrapers need no key (README, Operating): no session ids or prompts in either.
        assert httpx.get(f"{gw.url}/healthz", timeout=5).status_code == 200
        assert httpx.get(f"{gw.url}/metrics", timeout=5).status_code == 200

        Path(gw.proc.args[4]).write_text(MINIMAL)  # a reload may not leave an exposed gateway without keys
        refused = gateway("reload", "--url", gw.url, "--key", "gw-key-team-a")
        assert refused.returncode == 1 and "reaches beyond this machine" in refused.stderr
        assert httpx.get(f"{gw.url}/v1/models", timeout=5).status_code == 401  # the keys still apply
    finally:
        stop(gw.proc)


def test_beyond_loopback_without_keys_starts_when_explicitly_allowed(tmp_path):
    gw = launch(MINIMAL, tmp_path, args=("--host", "0.0.0.0", "--allow-unauthenticated"))
    try:
        assert httpx.get(f"{gw.url}/v1/models", timeout=5).status_code == 200
    finally:
        stop(gw.proc)


def test_a_keyless_reload_from_another_machine_is_forbidden():
    import yaml

    from gateway.app import create_app
    from gateway.config import parse_config

    app = create_app(parse_config(yaml.safe_load(MINIMAL), env={}))

    async def ask_from(host: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(host, 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return await client.post("/routing/v1/reload")

    answer = asyncio.run(ask_from("10.1.2.3"))
    assert answer.status_code == 403
    assert "needs gateway keys" in answer.json()["error"]["message"]


def test_bad_server_settings_are_config_errors_naming_the_field():
    import yaml

    from gateway.config import ConfigError, parse_config

    raw = yaml.safe_load(MINIMAL + "server:\n  max_headers: 2\n  header_timeout: soon\n  colour: red\n"
                                   "  max_header_line_bytes: 100000\n")
    try:
        parse_config(raw, env={})
    except ConfigError as exc:
        problems = "\n".join(exc.problems)
    else:
        raise AssertionError("a bad server section was accepted")
    assert "server.max_headers: must be at least 8, got 2" in problems
    assert "server.header_timeout: must be a positive number of seconds" in problems
    assert "server.colour: unknown field" in problems
    assert "server.max_header_line_bytes: must not exceed server.max_header_bytes" in problems
    defaults = parse_config(yaml.safe_load(MINIMAL + "server: {drain_timeout: 5s, max_connections: 50}\n"), env={})
    assert (defaults.server.drain_timeout, defaults.server.max_connections, defaults.server.max_headers) == (5, 50, 100)
