"""What new sessions' routing costs the requests around them.

    python benchmarks/loop_stall.py [--gateway-src DIR] [--seconds 10]

Starts a gateway on the bundled config.yaml (decisions only, no keys) and, on
one keep-alive connection, asks for a pinned decision again and again: that is
an agent's next step, which should not wait for anyone. First alone (and, for
comparison, one client opening new sessions one after another), then while
four other clients open new sessions as fast as they can, each with a request
the router has never seen (so the encoder runs for every one). Prints the
pinned requests' p50/p99 in both phases and the new sessions' rate.

`--gateway-src DIR` runs the gateway from another checkout (e.g. a `git
worktree` of an older commit), to compare two versions in one sitting.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
PINNED = {"messages": [{"role": "user", "content": "Write a Python function that parses ISO dates."}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gateway(src: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "up", str(REPO / "config.yaml"), "--port", str(port)],
                            cwd=src, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the gateway from {src} did not become ready within 60 s")


def percentiles(samples: list[float]) -> str:
    s = sorted(samples)
    return f"p50 {statistics.median(s) * 1e3:6.2f} ms  p99 {s[int(len(s) * 0.99)] * 1e3:6.2f} ms  ({len(s)} requests)"


async def probe(client: httpx.AsyncClient, url: str, until: float) -> list[float]:
    samples = []
    while time.monotonic() < until:
        t = time.perf_counter()
        r = await client.post(url, json=PINNED, headers={"X-Session-Id": "loop-stall-pinned"})
        samples.append(time.perf_counter() - t)
        assert r.status_code == 200, r.text
        await asyncio.sleep(0.002)
    return samples


async def flood(url: str, until: float, worker: int) -> int:
    sent = 0
    async with httpx.AsyncClient(timeout=30) as client:
        while time.monotonic() < until:
            text = f"Request {worker}-{sent}-{time.monotonic_ns()}: summarize the incident report for ticket {sent}."
            r = await client.post(url, json={"messages": [{"role": "user", "content": text}]},
                                  headers={"X-Session-Id": f"loop-stall-{worker}-{sent}-{time.monotonic_ns()}"})
            assert r.status_code == 200, r.text
            sent += 1
    return sent


async def new_sessions(client: httpx.AsyncClient, url: str, until: float) -> list[float]:
    """One client opening new sessions one after another, each with a request never seen before."""
    samples = []
    while time.monotonic() < until:
        text = f"Request {len(samples)}-{time.monotonic_ns()}: summarize the incident report for ticket {len(samples)}."
        t = time.perf_counter()
        r = await client.post(url, json={"messages": [{"role": "user", "content": text}]},
                              headers={"X-Session-Id": f"loop-stall-alone-{len(samples)}-{time.monotonic_ns()}"})
        samples.append(time.perf_counter() - t)
        assert r.status_code == 200, r.text
        await asyncio.sleep(0.002)
    return samples


async def measure(port: int, seconds: float) -> None:
    url = f"http://127.0.0.1:{port}/routing/v1/chat/completions"
    async with httpx.AsyncClient(timeout=30) as client:
        await client.post(url, json=PINNED, headers={"X-Session-Id": "loop-stall-pinned"})  # pins it
        quiet = await probe(client, url, time.monotonic() + seconds)
        alone = await new_sessions(client, url, time.monotonic() + seconds)
        until = time.monotonic() + seconds
        busy, *sent = await asyncio.gather(probe(client, url, until), *(flood(url, until, w) for w in range(4)))
    print(f"  pinned, alone:                     {percentiles(quiet)}")
    print(f"  new session, alone:                {percentiles(alone)}")
    print(f"  pinned, while new sessions arrive: {percentiles(busy)}")
    print(f"  new sessions routed: {sum(sent) / seconds:.0f}/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gateway-src", type=Path, default=REPO)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    port = free_port()
    proc = start_gateway(args.gateway_src.resolve(), port)
    try:
        print(f"gateway from {args.gateway_src}")
        asyncio.run(measure(port, args.seconds))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
