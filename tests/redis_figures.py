"""Figures for the Redis pin store (not a test): run `python tests/redis_figures.py` from the repository root.

Starts a disposable redis-server and gateways on spare loopback ports, then prints:
/healthz latency with 100,000 pins in Redis, the time one request takes while
Redis is paused (`CLIENT PAUSE`), and what 1,000 concurrent first requests of
one session over two gateway processes were answered with.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import redis

sys.path.insert(0, str(Path(__file__).parent))
from conftest import CODE_PROMPT, launch, stop  # noqa: E402
from redis_servers import redis_server  # noqa: E402
from test_redis_e2e import _burst, decisions_only_config  # noqa: E402

PINS = 100_000


def healthz_with_many_pins(url: str, admin: redis.Redis) -> None:
    with admin.pipeline(transaction=False) as pipe:
        for i in range(PINS):
            pipe.set(f"pgw:v1:pin:{{figures-{i}}}", '{"model": "openai/gpt-4o", "route": null, "created": 0}', ex=600)
        pipe.execute()
    with httpx.Client() as client:
        client.get(f"{url}/healthz")
        times = []
        for _ in range(50):
            started = time.perf_counter()
            client.get(f"{url}/healthz")
            times.append((time.perf_counter() - started) * 1000)
    print(f"/healthz with {PINS:,} pins in Redis: median {statistics.median(times):.1f} ms over 50")


def request_with_redis_paused(url: str, admin: redis.Redis) -> None:
    sid = str(uuid.uuid4())
    body = {"messages": [{"role": "user", "content": CODE_PROMPT}]}
    with httpx.Client() as client:
        client.post(f"{url}/routing/v1/chat/completions", headers={"X-Session-Id": sid}, json=body)
        times = []
        for _ in range(5):
            admin.execute_command("CLIENT", "PAUSE", "1000", "ALL")
            started = time.perf_counter()
            client.post(f"{url}/routing/v1/chat/completions", headers={"X-Session-Id": sid}, json=body)
            times.append((time.perf_counter() - started) * 1000)
            time.sleep(2.2)  # the pause and the skip window end
    print(f"one request with Redis paused: median {statistics.median(times):.0f} ms over 5 ({', '.join(f'{t:.0f}' for t in times)})")


def burst_over_two_processes(urls: list[str]) -> None:
    answers = asyncio.run(_burst(urls, str(uuid.uuid4()), 1000))
    bodies = [r.json() for r in answers if r.status_code == 200]
    models = Counter(b["model"] for b in bodies)
    print(f"1,000 concurrent first requests of one session over two processes: {len(bodies)} answered 200, "
          f"models {dict(models)}, pinned:false {sum(not b['pinned'] for b in bodies)}")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="redis-figures-"))
    with redis_server(work / "redis") as port:
        config = decisions_only_config(f"redis://127.0.0.1:{port}/0")
        a, b = launch(config, work / "gw"), launch(config, work / "gw")
        try:
            admin = redis.Redis(port=port)
            burst_over_two_processes([a.url, b.url])
            request_with_redis_paused(a.url, admin)
            healthz_with_many_pins(a.url, admin)
        finally:
            stop(a.proc)
            stop(b.proc)


if __name__ == "__main__":
    main()
