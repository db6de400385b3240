"""The benchmark suite: the gateway against a bare endpoint, direct calls, and LiteLLM's proxy.

    python benchmarks/run.py [--duration 5] [--latency-ms 0] [--chunks 20] [--skip-proxy]
                             [--gateway-src DIR]

Starts everything itself on loopback: the fake provider, a bare FastAPI echo
endpoint, the gateway (one worker) and LiteLLM's proxy (installed by
`benchmarks/setup.sh` into benchmarks/.venv-proxy) against the same fake
provider. Load comes from wrk at concurrency 1 and 50; time to first token
from a raw-socket client at concurrency 1. A realistic stream profile (a second
fake provider sending 30 chunks 20 ms apart) keeps 200 streams open at all
times through the gateway and directly, in alternating turns, counting every
chunk.
`--gateway-src DIR` runs the gateway from another checkout (e.g. a `git
worktree` of an older commit) so a before/after pair shares one harness.
Prints one table and writes it as
JSON to benchmarks/results/. Every comparison is a ratio measured in this run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PROXY_VENV = HERE / ".venv-proxy"
RESULTS = HERE / "results"
OFFLINE_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_OFFLINE_MODE": "true",
               "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True", "LITELLM_TELEMETRY": "False",
               "HF_HUB_OFFLINE": "1", "DISABLE_SCHEMA_UPDATE": "True", "LITELLM_LOG": "ERROR"}

PROXY_KEY = "sk-bench-master-key-0123456789abcdef"  # the proxy refuses to start without a master key
PROXY_AUTH = {"Authorization": f"Bearer {PROXY_KEY}"}
CODE = "Write a Python function that merges two sorted lists."
CHAT = "hello, how are you today?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Service:
    name: str
    proc: subprocess.Popen
    url: str

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        """CPU time the process has used so far (user + system)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def settle(self, idle_cpu: float = 0.05, window: float = 1.0, most: float = 20.0) -> None:
        """Wait until the process is idle: a gateway may still be loading litellm in a background thread
        after its first answer, and that start-up work is no part of what the cells measure."""
        deadline = time.monotonic() + most
        time.sleep(2.0)  # the gateway begins that import a second after its first answer
        used = self.cpu_seconds()
        while time.monotonic() < deadline:
            time.sleep(window)
            now = self.cpu_seconds()
            if now - used < idle_cpu:
                return
            used = now

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start(name: str, cmd: list[str], port: int, health: str, env: dict[str, str] | None = None,
          timeout: float = 90, cpus: set[int] | None = None) -> tuple[Service, float]:
    """Start a process (on `cpus` only, if given) and wait until `health` answers; returns it and the seconds that took."""
    log = open(RESULTS / f"{name}.log", "w")
    started = time.perf_counter()
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, cwd=HERE,
                            preexec_fn=pin)
    url = f"http://127.0.0.1:{port}"
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited; see {log.name}")
        if http_get_ok(port, health):
            return Service(name, proc, url), time.perf_counter() - started
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError(f"{name} not ready after {timeout}s; see {log.name}")


def http_get_ok(port: int, path: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


# ---------------------------------------------------------------------------- load


def wrk(url: str, body: dict[str, Any], headers: dict[str, str], conns: int, duration: float,
        unique_session: bool = False) -> dict[str, float]:
    """Run wrk against `url`; req/s, p50/p99 latency in ms, and the share of non-2xx answers."""
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(json.dumps(body))}",
             'wrk.headers["Content-Type"] = "application/json"']
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    if unique_session:  # every request opens a new session: fills the pin store
        lines += ["local n = 0", "request = function()", "  n = n + 1",
                  '  wrk.headers["X-Session-Id"] = "bench-" .. tostring(os.time()) .. "-" .. tostring(math.random(1e9)) .. "-" .. n',
                  "  return wrk.format()", "end"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("\n".join(lines) + "\n")
    threads = 1 if conns == 1 else 2
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", "--timeout", "30s", f"-d{max(1, round(duration))}s", "--latency", "-s", script.name, url],
                         capture_output=True, text=True, timeout=duration + 60).stdout
    os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)

    def pct(p: str) -> float:
        value, unit = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    failed = (int(bad.group(1)) if bad else 0) + (sum(map(int, errors.groups())) if errors else 0)
    return {"rps": rps, "p50_ms": pct("50"), "p99_ms": pct("99"), "requests": total,
            "failed_share": failed / max(total, 1)}


def first_tokens(targets: dict[str, tuple[int, dict[str, str]]], path: str, body: dict[str, Any],
                 n: int) -> dict[str, dict[str, float]]:
    """Time to the first streamed `data:` chunk, one request at a time on a keep-alive connection.

    The targets take turns request by request, so a noisy moment on the shared
    machine lands on all of them alike. Keep-alive and back-to-back, like wrk
    at c=1: with a new connection and idle gaps each process hop also pays for
    waking from idle (about 0.5 ms per hop on this VM), which is not work the
    gateway does.
    """
    payload = json.dumps(body).encode()
    conns = {}
    for name, (port, headers) in targets.items():
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   f"{head}Content-Length: {len(payload)}\r\n\r\n").encode() + payload
        conns[name] = (socket.create_connection(("127.0.0.1", port)), request)
    samples: dict[str, list[float]] = {name: [] for name in targets}
    try:
        for i in range(n + 20):
            for name, (sock, request) in conns.items():
                t = time.perf_counter()
                sock.sendall(request)
                seen = b""
                while b"data:" not in seen:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise RuntimeError(f"no stream from {name}: {seen[:200]!r}")
                    seen += chunk
                if i >= 20:  # the first 20 rounds warm up
                    samples[name].append((time.perf_counter() - t) * 1000)
                while not seen.endswith(b"\r\n0\r\n\r\n"):  # the end of the chunked body
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise RuntimeError(f"{name} closed the connection mid-stream")
                    seen += chunk
    finally:
        for sock, _ in conns.values():
            sock.close()
    out = {}
    for name, values in samples.items():
        values.sort()
        out[name] = {"p50_ms": statistics.median(values), "p99_ms": values[int(len(values) * 0.99) - 1]}
    return out


REALISTIC_CHUNKS = 30
REALISTIC_PROMPT = "Summarise the plot of a long novel about a lighthouse keeper, in detail. " * 4


def realistic_streams(targets: dict[str, tuple[str, dict[str, str]]], concurrency: int, seconds: float,
                      rounds: int = 2) -> dict[str, dict[str, float]]:
    """`concurrency` streams open at all times (a closed loop) against each target in turn.

    Each of `concurrency` clients opens a stream, reads it to the end and opens
    the next, for `seconds`; targets take turns `rounds` times so noise lands on
    both. Per target: time to first content chunk (p50/p99 over every stream),
    content chunks expected against received, and failed streams. A first short
    turn per target warms up connections and is not counted.
    """
    import asyncio

    import aiohttp

    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": REALISTIC_PROMPT}]}

    payload = json.dumps(body).encode()

    overheads: dict[str, list[float]] = {url: [] for url, _ in targets.values()}

    async def one(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> tuple[float, int, bool]:
        started = time.perf_counter()
        ttft, chunks, done = float("nan"), 0, False
        async with session.post(url + "/v1/chat/completions", data=payload,
                                headers={"Content-Type": "application/json", **headers}) as response:
            # The gateway's own added time before the first event, as it measured it: immune to the
            # load generator's queueing, which on a small machine swamps sub-millisecond differences.
            overhead = response.headers.get("X-Gateway-Overhead-Ms")
            if overhead is not None:
                overheads[url].append(float(overhead))
            buffer = b""
            async for piece in response.content.iter_any():
                buffer += piece
                *events, buffer = buffer.split(b"\n\n")
                for event in events:
                    if event == b"data: [DONE]":
                        done = True
                    elif _has_content(event):  # no JSON parsing: the client must not be the bottleneck
                        if chunks == 0:
                            ttft = (time.perf_counter() - started) * 1000
                        chunks += 1
        return ttft, chunks, done and response.status == 200

    async def client(session: aiohttp.ClientSession, url: str, headers: dict[str, str], until: float,
                     into: list[tuple[float, int, bool]]) -> None:
        while time.perf_counter() < until:
            try:
                into.append(await one(session, url, headers))
            except (aiohttp.ClientError, asyncio.TimeoutError):
                into.append((float("nan"), 0, False))

    async def turn(session: aiohttp.ClientSession, url: str, headers: dict[str, str],
                   length: float) -> list[tuple[float, int, bool]]:
        got: list[tuple[float, int, bool]] = []
        until = time.perf_counter() + length
        await asyncio.gather(*(client(session, url, headers, until, got) for _ in range(concurrency)))
        return got

    async def run() -> dict[str, dict[str, float]]:
        samples: dict[str, list[tuple[float, int, bool]]] = {name: [] for name in targets}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            for name, (url, headers) in targets.items():
                await turn(session, url, headers, 1.0)
            for _ in range(rounds):
                for name, (url, headers) in targets.items():
                    samples[name] += await turn(session, url, headers, seconds)
        out = {}
        for name, values in samples.items():
            ttfts = sorted(v[0] for v in values if v[0] == v[0])
            own = sorted(overheads[targets[name][0]])
            out[name] = {"streams": len(values), "failed": sum(1 for v in values if not v[2]),
                         "chunks_expected": len(values) * REALISTIC_CHUNKS,
                         "chunks_received": sum(v[1] for v in values),
                         "ttft_p50_ms": statistics.median(ttfts) if ttfts else float("nan"),
                         "ttft_p99_ms": ttfts[int(len(ttfts) * 0.99) - 1] if ttfts else float("nan")}
            if own:
                out[name]["own_ttft_p50_ms"] = statistics.median(own)
                out[name]["own_ttft_p99_ms"] = own[int(len(own) * 0.99) - 1]
        return out

    try:
        import uvloop  # uvicorn's standard extra brings it: a cheaper event loop for the load generator

        return uvloop.run(run())
    except ImportError:
        return asyncio.run(run())


def _has_content(event: bytes) -> bool:
    """Whether a chat chunk event carries text (the relay passes the provider's own spacing through)."""
    return (b'"content": "' in event and b'"content": ""' not in event) or (
        b'"content":"' in event and b'"content":""' not in event)


def warm_up(port: int, body: dict[str, Any], headers: dict[str, str], path: str = "/v1/chat/completions") -> None:
    import urllib.request

    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", **headers})
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()


# ---------------------------------------------------------------------------- configs


def gateway_config(fake: str, responses_native: bool = True) -> str:
    # An older gateway (--gateway-src) refuses fields it does not know, such as responses_api.
    native = f"""
  - model: openai/gpt-4.1
    access_key: bench-key
    base_url: {fake}
    responses_api: true""" if responses_native else ""
    return f"""\
model_providers:{native}
  - model: openai/gpt-4o-mini
    access_key: bench-key
    base_url: {fake}
    default: true
  - model: openai/gpt-4o
    access_key: bench-key
    base_url: {fake}
    routing_preferences:
      - name: complex_reasoning
        description: complex reasoning tasks, multi-step analysis, or detailed explanations
  - model: anthropic/claude-sonnet-4-20250514
    access_key: bench-key
    base_url: {fake}
    routing_preferences:
      - name: code_generation
        description: generating new code, writing functions, or creating boilerplate
routing:
  session_max_entries: 200000
"""


def proxy_config(fake: str) -> str:
    return f"""\
model_list:
  - model_name: gpt-4o-mini
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{fake}/v1", api_key: bench-key}}
  - model_name: claude-sonnet-4-20250514
    litellm_params: {{model: anthropic/claude-sonnet-4-20250514, api_base: "{fake}", api_key: bench-key}}
  - model_name: gpt-4o-mini-chat
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{fake}/v1", api_key: bench-key}}
    model_info: {{mode: chat}}
litellm_settings:
  telemetry: false
  set_verbose: false
"""


# ---------------------------------------------------------------------------- run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk measurement")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="the fake provider's fixed latency")
    parser.add_argument("--chunks", type=int, default=20, help="content chunks per streamed answer")
    parser.add_argument("--skip-proxy", action="store_true", help="do not run LiteLLM's proxy")
    parser.add_argument("--gateway-src", help="run the gateway from this checkout instead of this one")
    args = parser.parse_args()
    gw_env = {"PYTHONPATH": str(Path(args.gateway_src).resolve())} if args.gateway_src else {}
    src = Path(args.gateway_src).resolve() if args.gateway_src else ROOT
    three_protocols = (src / "gateway" / "api" / "messages.py").exists()  # older checkouts serve chat only
    RESULTS.mkdir(exist_ok=True)
    if not shutil.which("wrk") or (not args.skip_proxy and not (PROXY_VENV / "bin" / "litellm").exists()):
        subprocess.run(["bash", str(HERE / "setup.sh")], check=True)

    py = sys.executable
    services: list[Service] = []
    results: dict[str, Any] = {"settings": vars(args), "cpus": os.cpu_count()}
    try:
        fake_port, echo_port, gw_port, proxy_port = free_port(), free_port(), free_port(), free_port()
        fake, _ = start("fake_provider", [py, "-m", "gateway.testing.fake_provider", "--port", str(fake_port),
                                          "--latency-ms", str(args.latency_ms), "--chunks", str(args.chunks),
                                          "--no-record"], fake_port, "/healthz")
        services.append(fake)
        echo, _ = start("echo", [py, str(HERE / "echo_app.py"), "--port", str(echo_port)], echo_port, "/healthz")
        services.append(echo)
        config = RESULTS / "gateway_config.yaml"
        config.write_text(gateway_config(fake.url, three_protocols))
        ready = []
        for _ in range(3):
            gw, seconds = start("gateway", [py, "-m", "gateway", "up", str(config), "--port", str(gw_port)],
                                gw_port, "/healthz", env=gw_env)
            ready.append(seconds)
            gw.stop()
        gw, _ = start("gateway", [py, "-m", "gateway", "up", str(config), "--port", str(gw_port)], gw_port, "/healthz",
                      env=gw_env)
        services.append(gw)
        gw.settle()
        results["ready_s"] = statistics.median(ready)
        results["rss_idle_mib"] = gw.rss_mib()
        proxy = None
        if not args.skip_proxy:
            (RESULTS / "proxy_config.yaml").write_text(proxy_config(fake.url))
            proxy, results["proxy_ready_s"] = start(
                "litellm_proxy", [str(PROXY_VENV / "bin" / "litellm"), "--config", str(RESULTS / "proxy_config.yaml"),
                                  "--port", str(proxy_port), "--num_workers", "1"],
                proxy_port, "/health/liveliness", env={**OFFLINE_ENV, "LITELLM_MASTER_KEY": PROXY_KEY}, timeout=180)
            services.append(proxy)
        d = args.duration
        runs: dict[str, Any] = {}
        results["runs"] = runs

        def measure(key: str, url: str, body: dict[str, Any], headers: dict[str, str] | None = None,
                    **kw: Any) -> None:
            for c in (1, 50):
                wrk(url, body, headers or {}, c, 1.0, **kw)  # warm up
                runs[f"{key}@c{c}"] = wrk(url, body, headers or {}, c, d, **kw)
                print(f"  {key}@c{c}: {runs[f'{key}@c{c}']}", flush=True)

        chat = {"messages": [{"role": "user", "content": CHAT}]}
        code = {"messages": [{"role": "user", "content": CODE}]}
        pinned = {"X-Session-Id": "bench-pinned"}
        print("decision endpoint", flush=True)
        measure("echo", f"{echo.url}/echo", chat)
        measure("decision_pinned", f"{gw.url}/routing/v1/chat/completions", code, pinned)
        measure("decision_fresh", f"{gw.url}/routing/v1/chat/completions", code)

        print("forwarding, OpenAI format", flush=True)
        openai_body = {"model": "gpt-4o-mini", **chat}
        stream_body = {**openai_body, "stream": True}
        fwd_session = {"X-Session-Id": "bench-openai"}  # pinned to gpt-4o-mini by its first request
        measure("direct", f"{fake.url}/v1/chat/completions", openai_body)
        measure("gateway", f"{gw.url}/v1/chat/completions", openai_body, fwd_session)
        measure("direct_stream", f"{fake.url}/v1/chat/completions", stream_body)
        measure("gateway_stream", f"{gw.url}/v1/chat/completions", stream_body, fwd_session)
        # Pairs, each with direct: a slow peer in the same rotation would leave the others idle between turns.
        results["ttft"] = first_tokens({"direct": (fake_port, {}), "gateway": (gw_port, fwd_session)},
                                       "/v1/chat/completions", stream_body, 300)
        if proxy:
            measure("proxy", f"{proxy.url}/v1/chat/completions", openai_body, PROXY_AUTH)
            measure("proxy_stream", f"{proxy.url}/v1/chat/completions", stream_body, PROXY_AUTH)
            against_proxy = first_tokens({"direct": (fake_port, {}), "proxy": (proxy_port, PROXY_AUTH)},
                                         "/v1/chat/completions", stream_body, 100)
            results["ttft"]["proxy"] = against_proxy["proxy"]
            results["ttft"]["direct_with_proxy"] = against_proxy["direct"]

        print("realistic streams: 30 chunks 20 ms apart, 200 at a time", flush=True)
        # With two cores or more the gateway gets a core of its own, and the client and the fake
        # provider share another in both runs: the difference is then the gateway's own added
        # latency, not the CPU it takes away from the load generator on a small machine.
        isolate = (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity")
        load_cpus, gateway_cpus = ({0}, {1}) if isolate else (None, None)
        results["realistic_isolated"] = isolate
        slow_port = free_port()
        slow, _ = start("fake_provider_slow", [py, "-m", "gateway.testing.fake_provider", "--port", str(slow_port),
                                               "--chunks", str(REALISTIC_CHUNKS), "--chunk-delay-ms", "20",
                                               "--no-record"], slow_port, "/healthz", cpus=load_cpus)
        services.append(slow)
        slow_gw_port = free_port()
        slow_config = RESULTS / "gateway_slow_config.yaml"
        slow_config.write_text(gateway_config(slow.url, three_protocols))
        slow_gw, _ = start("gateway_slow", [py, "-m", "gateway", "up", str(slow_config), "--port", str(slow_gw_port)],
                           slow_gw_port, "/healthz", env=gw_env, cpus=gateway_cpus)
        services.append(slow_gw)
        slow_gw.settle()
        own_cpus = os.sched_getaffinity(0) if isolate else None
        if isolate:
            os.sched_setaffinity(0, load_cpus)
        cpu_before = slow_gw.cpu_seconds()
        try:
            results["realistic"] = realistic_streams({"direct": (slow.url, {}), "gateway": (slow_gw.url, fwd_session)},
                                                     concurrency=200, seconds=args.duration)
        finally:
            if own_cpus:
                os.sched_setaffinity(0, own_cpus)
        relayed = results["realistic"]["gateway"]["chunks_received"]
        results["realistic"]["gateway"]["cpu_ms_per_1000_chunks"] = (
            (slow_gw.cpu_seconds() - cpu_before) * 1e6 / max(relayed, 1))
        print(f"  {results['realistic']}", flush=True)

        print("forwarding, Anthropic format (translated)", flush=True)
        claude_body = {"model": "claude-sonnet-4-20250514", **chat}
        warm_up(gw_port, claude_body, {"X-Session-Id": "bench-claude"})  # the first translated call imports litellm
        measure("gateway_anthropic", f"{gw.url}/v1/chat/completions", claude_body, {"X-Session-Id": "bench-claude"})
        if proxy:
            measure("proxy_anthropic", f"{proxy.url}/v1/chat/completions", claude_body, PROXY_AUTH)

        if three_protocols:
            print("Anthropic Messages", flush=True)
            msg = {"model": "claude-sonnet-4-20250514", "max_tokens": 256, **chat}
            measure("direct_messages", f"{fake.url}/v1/messages", msg)
            measure("gateway_messages", f"{gw.url}/v1/messages", msg, {"X-Session-Id": "bench-messages"})
            translated = {**msg, "model": "gpt-4o-mini"}
            warm_up(gw_port, translated, {"X-Session-Id": "bench-messages-translated"}, "/v1/messages")
            measure("gateway_messages_translated", f"{gw.url}/v1/messages", translated,
                    {"X-Session-Id": "bench-messages-translated"})
            if proxy:
                measure("proxy_messages_translated", f"{proxy.url}/v1/messages", translated, PROXY_AUTH)

            print("OpenAI Responses", flush=True)
            native = {"model": "gpt-4.1", "input": CHAT}
            measure("direct_responses", f"{fake.url}/v1/responses", native)
            measure("gateway_responses", f"{gw.url}/v1/responses", native, {"X-Session-Id": "bench-responses"})
            bridged = {"model": "gpt-4o-mini", "input": CHAT}
            warm_up(gw_port, bridged, {"X-Session-Id": "bench-responses-bridged"}, "/v1/responses")
            measure("gateway_responses_bridged", f"{gw.url}/v1/responses", bridged,
                    {"X-Session-Id": "bench-responses-bridged"})
            if proxy:
                measure("proxy_responses_bridged", f"{proxy.url}/v1/responses",
                        {**bridged, "model": "gpt-4o-mini-chat"}, PROXY_AUTH)

        print("memory", flush=True)
        wrk(f"{gw.url}/routing/v1/chat/completions", chat, {}, 50, 1.0)
        before_pins = gw.rss_mib()
        pins = 0
        while pins < 100_000:
            pins += wrk(f"{gw.url}/routing/v1/chat/completions", chat, {}, 50, 5.0, unique_session=True)["requests"]
        results["pins_created"] = pins
        results["rss_after_100k_pins_mib"] = gw.rss_mib()
        results["pins_cost_mib"] = gw.rss_mib() - before_pins
        done = 0
        while done < 10_000:
            done += wrk(f"{gw.url}/v1/chat/completions", openai_body, fwd_session, 50, 2.0)["requests"]
        results["rss_after_10k_forwarded_mib"] = gw.rss_mib()
        done = 0
        while done < 10_000:
            done += wrk(f"{gw.url}/v1/chat/completions", openai_body, fwd_session, 50, 2.0)["requests"]
        results["rss_after_20k_forwarded_mib"] = gw.rss_mib()
    finally:
        for s in reversed(services):
            s.stop()

    table = report(results)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"{stamp}.json").write_text(json.dumps(results, indent=2))
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2))
    (RESULTS / "latest.md").write_text(table)
    print(f"\nwritten: benchmarks/results/{stamp}.json")
    return 0


def report(r: dict[str, Any]) -> str:
    runs = r["runs"]
    rows: list[tuple[str, str, str]] = []

    def add(name: str, value: str, target: str = "") -> None:
        rows.append((name, value, target))

    def ratio(a: str, b: str) -> float:
        return runs[a]["rps"] / runs[b]["rps"]

    def added(target: str, base: str, c: int, p: str) -> float:
        return runs[f"{target}@c{c}"][p] - runs[f"{base}@c{c}"][p]

    for c in (1, 50):
        add(f"echo endpoint c={c}", f"{runs[f'echo@c{c}']['rps']:.0f} req/s")
        add(f"decision, pinned hit c={c}", f"{runs[f'decision_pinned@c{c}']['rps']:.0f} req/s = "
            f"{ratio(f'decision_pinned@c{c}', f'echo@c{c}'):.0%} of echo; p50 {runs[f'decision_pinned@c{c}']['p50_ms']:.2f} "
            f"p99 {runs[f'decision_pinned@c{c}']['p99_ms']:.2f} ms", ">= 60%" if c == 50 else "")
        add(f"decision, fresh route c={c}", f"{runs[f'decision_fresh@c{c}']['rps']:.0f} req/s = "
            f"{ratio(f'decision_fresh@c{c}', f'echo@c{c}'):.0%} of echo; p50 {runs[f'decision_fresh@c{c}']['p50_ms']:.2f} "
            f"p99 {runs[f'decision_fresh@c{c}']['p99_ms']:.2f} ms", ">= 40%" if c == 50 else "")
    for peer in ("gateway", "proxy"):
        if f"{peer}@c1" not in runs:
            continue
        for c in (1, 50):
            add(f"{peer} forwarding c={c} (added vs direct)",
                f"p50 +{added(peer, 'direct', c, 'p50_ms'):.2f} ms, p99 +{added(peer, 'direct', c, 'p99_ms'):.2f} ms; "
                f"{runs[f'{peer}@c{c}']['rps']:.0f} req/s (direct {runs[f'direct@c{c}']['rps']:.0f})",
                "p50 < 1 ms, p99 < 3 ms" if (peer, c) == ("gateway", 1) else "")
            add(f"{peer} streaming c={c}", f"{runs[f'{peer}_stream@c{c}']['rps']:.0f} req/s = "
                f"{ratio(f'{peer}_stream@c{c}', f'direct_stream@c{c}'):.0%} of direct's chunk throughput",
                ">= 50%" if (peer, c) == ("gateway", 50) else "")
        direct_ttft = r["ttft"]["direct_with_proxy" if peer == "proxy" else "direct"]["p50_ms"]
        add(f"{peer} time to first token c=1",
            f"p50 {r['ttft'][peer]['p50_ms']:.2f} ms (+{r['ttft'][peer]['p50_ms'] - direct_ttft:.2f} vs direct)",
            "+ < 1 ms" if peer == "gateway" else "")
    if "proxy@c50" in runs:
        add("gateway / proxy req/s, c=50", f"{ratio('gateway@c50', 'proxy@c50'):.1f}x", ">= 10x")
        add("gateway / proxy added p50, c=50",
            f"{added('gateway', 'direct', 50, 'p50_ms') / max(added('proxy', 'direct', 50, 'p50_ms'), 1e-9):.2f}", "<= 0.25")
        add("gateway / proxy req/s, Anthropic c=50", f"{ratio('gateway_anthropic@c50', 'proxy_anthropic@c50'):.1f}x "
            f"({runs['gateway_anthropic@c50']['rps']:.0f} vs {runs['proxy_anthropic@c50']['rps']:.0f})", ">= 2x")
    if "gateway_messages@c1" in runs:
        for c in (1, 50):
            add(f"Messages relayed to Anthropic format c={c} (added vs direct)",
                f"p50 +{added('gateway_messages', 'direct_messages', c, 'p50_ms'):.2f} ms, "
                f"p99 +{added('gateway_messages', 'direct_messages', c, 'p99_ms'):.2f} ms; "
                f"{runs[f'gateway_messages@c{c}']['rps']:.0f} req/s (direct {runs[f'direct_messages@c{c}']['rps']:.0f})",
                "p50 < 1 ms" if c == 1 else "")
            add(f"Responses relayed to a Responses provider c={c} (added vs direct)",
                f"p50 +{added('gateway_responses', 'direct_responses', c, 'p50_ms'):.2f} ms, "
                f"p99 +{added('gateway_responses', 'direct_responses', c, 'p99_ms'):.2f} ms; "
                f"{runs[f'gateway_responses@c{c}']['rps']:.0f} req/s (direct {runs[f'direct_responses@c{c}']['rps']:.0f})")
        trans, bridged = runs["gateway_messages_translated@c50"]["rps"], runs["gateway_responses_bridged@c50"]["rps"]
        if "proxy_messages_translated@c50" in runs:
            add("gateway / proxy req/s, Messages translated to OpenAI format c=50",
                f"{ratio('gateway_messages_translated@c50', 'proxy_messages_translated@c50'):.1f}x ({trans:.0f} vs "
                f"{runs['proxy_messages_translated@c50']['rps']:.0f})", ">= 2x")
            add("Responses bridged to a chat-only provider c=50",
                f"{bridged:.0f} req/s (LiteLLM proxy, same request: {runs['proxy_responses_bridged@c50']['rps']:.0f})")
        else:
            add("Messages translated c=50 / Responses bridged c=50", f"{trans:.0f} / {bridged:.0f} req/s")
    if "proxy_stream@c50" in runs:
        add("gateway / proxy req/s, streamed c=50", f"{ratio('gateway_stream@c50', 'proxy_stream@c50'):.1f}x", ">= 10x")
    if "realistic" in r:
        real = r["realistic"]
        g, dr = real["gateway"], real["direct"]
        add("realistic streams c=200 (30 chunks, 20 ms apart)"
            + (", gateway on its own core" if r.get("realistic_isolated") else ""),
            f"TTFT p50 {g['ttft_p50_ms']:.2f} ms (+{g['ttft_p50_ms'] - dr['ttft_p50_ms']:.2f} vs direct), "
            f"p99 {g['ttft_p99_ms']:.2f} ms (+{g['ttft_p99_ms'] - dr['ttft_p99_ms']:.2f}); "
            + (f"the gateway's own added time to first token (X-Gateway-Overhead-Ms) p50 {g['own_ttft_p50_ms']:.2f} ms, "
               f"p99 {g['own_ttft_p99_ms']:.2f} ms; " if "own_ttft_p50_ms" in g else "")
            + (f"gateway CPU {g['cpu_ms_per_1000_chunks']:.0f} ms per 1,000 chunks; " if "cpu_ms_per_1000_chunks" in g else "")
            + f"chunks "
            f"{g['chunks_received']}/{g['chunks_expected']} (direct {dr['chunks_received']}/{dr['chunks_expected']}); "
            f"failed streams {g['failed']}", "TTFT + < 1 ms, no lost chunks")
    add("resident memory idle", f"{r['rss_idle_mib']:.1f} MiB")
    add(f"after {r['pins_created']:,} pins", f"{r['rss_after_100k_pins_mib']:.1f} MiB (+{r['pins_cost_mib']:.1f})", "< +30 MiB")
    add("after 10k / 20k forwarded", f"{r['rss_after_10k_forwarded_mib']:.1f} / {r['rss_after_20k_forwarded_mib']:.1f} MiB",
        "no growth")
    add("gateway up -> ready", f"{r['ready_s']:.2f} s (median of 3)", "< 2 s")
    failed = {k: v["failed_share"] for k, v in runs.items() if v["failed_share"]}
    if failed:
        add("non-2xx or socket errors", ", ".join(f"{k}: {v:.1%}" for k, v in failed.items()))
    width = max(len(n) for n, _, _ in rows)
    lines = [f"| {'measure':<{width}} | figure | target |", f"|{'-' * (width + 2)}|---|---|"]
    lines += [f"| {n:<{width}} | {v} | {t} |" for n, v, t in rows]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    return text


if __name__ == "__main__":
    sys.exit(main())
