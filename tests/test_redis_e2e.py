"""Pins shared through the real Redis server: replicas, races, outages, tenants, keys, admin API."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from conftest import CODE_PROMPT, REASONING_PROMPT, free_port, provider_config

CLAUDE = "anthropic/claude-sonnet-4-20250514"
GPT4O = "openai/gpt-4o"
REDIS_URL = "redis://127.0.0.1:6379/15"


def redis_up(port: int = 6379) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not redis_up(), reason="needs the Redis server on 127.0.0.1:6379 (.ci/run starts it)")


def redis_config(fake_url: str, url: str = REDIS_URL, tenant_header: str | None = None, extra: str = "") -> str:
    tenant = f"\n    tenant_header: {tenant_header}" if tenant_header else ""
    return provider_config(fake_url, routing=f"routing:\n  session_cache:\n    type: redis\n    url: {url}{tenant}\n",
                           extra=extra)


def decisions_only_config(url: str) -> str:
    """The Redis config without provider keys or URLs: the gateway then never imports litellm, whose
    seconds-long import in a background thread would slow the timings these tests set up."""
    lines = redis_config("http://unused", url=url).splitlines()
    return "\n".join(line for line in lines if "access_key" not in line and "base_url" not in line) + "\n"


def decide(url: str, prompt: str, session: str | None = None, headers: dict | None = None) -> httpx.Response:
    h = dict(headers or {})
    if session:
        h["X-Session-Id"] = session
    return httpx.post(f"{url}/routing/v1/chat/completions", headers=h,
                      json={"messages": [{"role": "user", "content": prompt}]}, timeout=30)


def forward(url: str, prompt: str, session: str, headers: dict | None = None) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", headers={"X-Session-Id": session, **(headers or {})},
                      json={"messages": [{"role": "user", "content": prompt}]}, timeout=30)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, fake_provider):
    """Two separate gateway processes sharing the Redis pin store."""
    from conftest import launch, stop

    workdir = tmp_path_factory.mktemp("replicas")
    a = launch(redis_config(fake_provider.url), workdir)
    b = launch(redis_config(fake_provider.url), workdir)
    yield a, b
    stop(a.proc)
    stop(b.proc)


def test_session_pinned_on_one_replica_is_served_pinned_by_the_other(replicas):
    a, b = replicas
    sid = str(uuid.uuid4())
    assert decide(a.url, CODE_PROMPT, sid).json()["pinned"] is False
    on_b = decide(b.url, REASONING_PROMPT, sid).json()
    assert on_b["pinned"] is True and on_b["model"] == CLAUDE
    served = forward(b.url, REASONING_PROMPT, sid)
    assert served.status_code == 200 and served.headers["x-router-pinned"] == "true"
    assert served.headers["x-router-model"] == CLAUDE
    # and the other way round: pinned by forwarding on B, decided pinned on A
    sid2 = str(uuid.uuid4())
    assert forward(b.url, REASONING_PROMPT, sid2).headers["x-router-pinned"] == "false"
    on_a = decide(a.url, CODE_PROMPT, sid2).json()
    assert on_a["pinned"] is True and on_a["model"] == GPT4O


def test_concurrent_first_requests_across_replicas_get_one_model(replicas):
    a, b = replicas
    for _ in range(3):
        sid = str(uuid.uuid4())
        jobs = [(a.url if i % 2 else b.url, CODE_PROMPT if i % 4 < 2 else REASONING_PROMPT) for i in range(40)]
        with ThreadPoolExecutor(max_workers=40) as pool:
            answers = list(pool.map(lambda job: decide(job[0], job[1], sid).json(), jobs))
        assert len({x["model"] for x in answers}) == 1, answers
        # at most one first request per replica reports pinned=false; the later ones follow the stored pin
        assert 1 <= sum(not x["pinned"] for x in answers) <= 2


def test_admin_api_shows_and_unpins_a_redis_session(replicas):
    a, b = replicas
    sid = str(uuid.uuid4())
    decide(a.url, CODE_PROMPT, sid)
    shown = httpx.get(f"{b.url}/routing/v1/sessions/{sid}").json()
    assert shown["model"] == CLAUDE and shown["route"] == "code_generation"
    assert 590 < shown["seconds_left"] <= 600 and shown["created"] <= shown["last_used"] + 1
    assert httpx.delete(f"{b.url}/routing/v1/sessions/{sid}").json() == {"session_id": sid, "deleted": True}
    assert httpx.get(f"{a.url}/routing/v1/sessions/{sid}").status_code == 404
    assert decide(a.url, REASONING_PROMPT, sid).json() | {"trace_id": ""} == {
        "model": GPT4O, "route": "complex_reasoning", "session_id": sid, "session_source": "header:x-session-id", "pinned": False, "trace_id": ""}


def test_a_pin_written_under_the_key_before_hash_tags_is_still_followed_and_unpinned(replicas):
    """Upgrading from `pgw:v1:pin:<key>` to `pgw:v1:pin:{<key>}` keeps live sessions on their model."""
    import json

    import redis

    a, b = replicas
    sid = str(uuid.uuid4())
    admin = redis.Redis.from_url(REDIS_URL)
    admin.set(f"pgw:v1:pin:{sid}", json.dumps({"model": GPT4O, "route": "complex_reasoning", "created": 1.0}), ex=600)
    answer = decide(a.url, CODE_PROMPT, sid).json()
    assert (answer["model"], answer["pinned"]) == (GPT4O, True)
    assert httpx.delete(f"{b.url}/routing/v1/sessions/{sid}").json()["deleted"] is True
    assert admin.exists(f"pgw:v1:pin:{sid}") == 0
    assert decide(a.url, CODE_PROMPT, sid).json() | {"trace_id": ""} == {
        "model": CLAUDE, "route": "code_generation", "session_id": sid, "session_source": "header:x-session-id",
        "pinned": False, "trace_id": ""}
    assert admin.exists(f"pgw:v1:pin:{{{sid}}}") == 1  # new pins use the hash-tagged key


def test_admin_api_in_the_memory_store(gateway):
    sid = str(uuid.uuid4())
    assert httpx.get(f"{gateway.url}/routing/v1/sessions/{sid}").status_code == 404
    gateway.decide(REASONING_PROMPT, sid)
    shown = httpx.get(f"{gateway.url}/routing/v1/sessions/{sid}").json()
    assert shown["model"] == GPT4O and shown["seconds_left"] > 590
    assert httpx.delete(f"{gateway.url}/routing/v1/sessions/{sid}").status_code == 200
    assert httpx.delete(f"{gateway.url}/routing/v1/sessions/{sid}").status_code == 404
    assert gateway.decide(CODE_PROMPT, sid).json()["pinned"] is False


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server to start a disposable Redis")
def test_redis_outage_degrades_to_unpinned_routing_and_pins_resume(start_gateway, fake_provider, tmp_path):
    port = free_port()

    def start_redis() -> subprocess.Popen:
        proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not redis_up(port):
            assert time.monotonic() < deadline, "disposable redis did not start"
            time.sleep(0.05)
        return proc

    redis = start_redis()
    try:
        gw = start_gateway(redis_config(fake_provider.url, url=f"redis://127.0.0.1:{port}/0"))
        sid = str(uuid.uuid4())
        assert decide(gw.url, CODE_PROMPT, sid).json()["pinned"] is False
        assert decide(gw.url, REASONING_PROMPT, sid).json()["pinned"] is True

        redis.terminate()
        redis.wait(timeout=10)
        outage = [decide(gw.url, p, sid) for p in (REASONING_PROMPT, CODE_PROMPT) * 10]
        assert all(r.status_code == 200 for r in outage)
        bodies = [r.json() for r in outage]
        assert all(b["pinned"] is False for b in bodies)
        assert {b["model"] for b in bodies} == {GPT4O, CLAUDE}  # routed per request while pins are unavailable
        assert forward(gw.url, CODE_PROMPT, sid).status_code == 200
        admin = httpx.get(f"{gw.url}/routing/v1/sessions/{sid}")
        assert admin.status_code == 503 and "pin store is unreachable" in admin.json()["error"]["message"]

        redis = start_redis()  # an empty Redis: the old pin is gone, new pins work again
        time.sleep(1.2)  # the store waits a second between attempts during an outage
        first = decide(gw.url, CODE_PROMPT, sid).json()
        again = decide(gw.url, REASONING_PROMPT, sid).json()
        assert first["pinned"] is False and again["pinned"] is True and again["model"] == CLAUDE
        log = gw.output()
        assert log.count("unreachable") == 1 and "pins resume" in log  # logged once per outage
    finally:
        redis.terminate()
        redis.wait(timeout=10)


def test_tenants_never_share_pins_even_with_the_same_session_id(start_gateway, fake_provider):
    gw = start_gateway(redis_config(fake_provider.url, tenant_header="X-Tenant"))
    sid = str(uuid.uuid4())
    assert decide(gw.url, CODE_PROMPT, sid, {"X-Tenant": "acme"}).json()["model"] == CLAUDE
    other = decide(gw.url, REASONING_PROMPT, sid, {"X-Tenant": "globex"}).json()
    assert other["pinned"] is False and other["model"] == GPT4O
    assert decide(gw.url, REASONING_PROMPT, sid, {"X-Tenant": "acme"}).json()["model"] == CLAUDE
    assert decide(gw.url, CODE_PROMPT, sid, {"X-Tenant": "globex"}).json()["model"] == GPT4O
    # The admin API is scoped too: globex cannot see or delete acme's pin.
    assert httpx.get(f"{gw.url}/routing/v1/sessions/{sid}", headers={"X-Tenant": "initech"}).status_code == 404
    assert httpx.delete(f"{gw.url}/routing/v1/sessions/{sid}", headers={"X-Tenant": "globex"}).status_code == 200
    assert httpx.get(f"{gw.url}/routing/v1/sessions/{sid}", headers={"X-Tenant": "acme"}).json()["model"] == CLAUDE


AUTH = """\
auth:
  keys:
    - name: team-a
      key: $KEY_A
    - name: team-b
      key: $KEY_B
"""


def test_gateway_keys_are_required_and_each_key_is_its_own_tenant(start_gateway, fake_provider):
    gw = start_gateway(redis_config(fake_provider.url, extra=AUTH), env={"KEY_A": "gk-aaa", "KEY_B": "gk-bbb"})
    sid = str(uuid.uuid4())
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "gk-aaa"}):
        r = decide(gw.url, CODE_PROMPT, sid, headers)
        assert r.status_code == 401 and "Authorization: Bearer" in r.json()["error"]["message"]
        assert forward(gw.url, CODE_PROMPT, sid, headers).status_code == 401
    assert httpx.get(f"{gw.url}/v1/models").status_code == 401
    a = {"Authorization": "Bearer gk-aaa"}
    b = {"Authorization": "Bearer gk-bbb"}
    assert decide(gw.url, CODE_PROMPT, sid, a).json()["model"] == CLAUDE
    assert decide(gw.url, REASONING_PROMPT, sid, b).json() | {"trace_id": ""} == {
        "model": GPT4O, "route": "complex_reasoning", "session_id": sid, "session_source": "header:x-session-id", "pinned": False, "trace_id": ""}
    assert forward(gw.url, REASONING_PROMPT, sid, a).headers["x-router-model"] == CLAUDE
    assert httpx.get(f"{gw.url}/routing/v1/sessions/{sid}", headers=b).json()["model"] == GPT4O
    assert httpx.get(f"{gw.url}/v1/models", headers=a).status_code == 200


def test_workers_share_pins_through_redis(start_gateway, fake_provider):
    gw = start_gateway(redis_config(fake_provider.url), args=("--workers", "2"))
    deadline = time.monotonic() + 20
    pids = set()
    while len(pids) < 2 and time.monotonic() < deadline:  # each new connection may land on either worker
        pids.add(httpx.get(f"{gw.url}/healthz").json()["pid"])
    assert len(pids) == 2, "both workers should be serving"
    for _ in range(5):
        sid = str(uuid.uuid4())
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda p: decide(gw.url, p, sid).json(), [CODE_PROMPT, REASONING_PROMPT] * 8))
        assert len({x["model"] for x in answers}) == 1


def test_several_workers_with_the_memory_store_refuse_to_start(tmp_path, fake_provider):
    import sys

    config = tmp_path / "c.yaml"
    config.write_text(provider_config(fake_provider.url))
    result = subprocess.run([sys.executable, "-m", "gateway", "up", str(config), "--workers", "2",
                             "--port", str(free_port())], capture_output=True, text=True, timeout=60,
                            env={**__import__("os").environ, "TEST_OPENAI_KEY": "x", "TEST_ANTHROPIC_KEY": "y"})
    assert result.returncode == 1
    assert "session_cache" in result.stderr and "redis" in result.stderr


def test_a_dropped_idle_redis_connection_is_reestablished_without_losing_the_pin(start_gateway, fake_provider):
    import redis

    gw = start_gateway(redis_config(fake_provider.url))
    sid = str(uuid.uuid4())
    assert decide(gw.url, CODE_PROMPT, sid).json()["pinned"] is False
    admin = redis.Redis.from_url(REDIS_URL)
    killed = admin.client_kill_filter(_type="normal", skipme=True)  # what an idle timeout or a proxy would do
    assert killed >= 1
    after = decide(gw.url, REASONING_PROMPT, sid).json()
    assert after["pinned"] is True and after["model"] == CLAUDE
    assert "unreachable" not in gw.output()


# --- under load, with Redis slow, and the cheap health probes ---------------------------------------------


async def _burst(urls: list[str], sid: str, n: int) -> list[httpx.Response]:
    """`n` first requests of one session at once, spread over `urls`, alternating intents."""
    import asyncio

    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        return await asyncio.gather(*(
            client.post(f"{urls[i % len(urls)]}/routing/v1/chat/completions", headers={"X-Session-Id": sid},
                        json={"messages": [{"role": "user", "content": CODE_PROMPT if i % 4 < 2 else REASONING_PROMPT}]})
            for i in range(n)))


def test_single_flight_holds_for_a_thousand_concurrent_first_requests_across_two_processes(replicas):
    """Issue 15 item 1: a full Redis connection pool is a wait, not an outage that splits the session."""
    import asyncio

    a, b = replicas
    sid = str(uuid.uuid4())
    answers = asyncio.run(_burst([a.url, b.url], sid, 1000))
    assert [r.status_code for r in answers] == [200] * 1000
    bodies = [r.json() for r in answers]
    models = {x["model"] for x in bodies}
    first = sum(not x["pinned"] for x in bodies)
    print(f"1,000 concurrent first requests over two processes: models {sorted(models)}, pinned:false {first}")
    assert len(models) == 1
    assert first == 1  # one routing run wins; every other request, on either process, follows its pin


def _connections_received(admin) -> int:
    return int(admin.info("stats")["total_connections_received"])


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server to start a disposable Redis")
def test_a_paused_redis_costs_one_timeout_and_after_the_skip_window_one_probe(start_gateway, tmp_path):
    """Issue 15 item 8: a timeout is not retried (that doubled the wait) and only one request probes Redis again."""
    import redis
    from redis_servers import redis_server

    with redis_server(tmp_path) as port:
        gw = start_gateway(decisions_only_config(f"redis://127.0.0.1:{port}/0"))
        sid = str(uuid.uuid4())
        assert decide(gw.url, CODE_PROMPT, sid).json()["pinned"] is False  # a pooled connection exists now
        admin = redis.Redis(port=port)

        before = _connections_received(admin)
        admin.execute_command("CLIENT", "PAUSE", "1500", "ALL")
        started = time.perf_counter()
        paused = decide(gw.url, REASONING_PROMPT, sid)
        took = time.perf_counter() - started
        print(f"one request with Redis paused: {took * 1000:.0f} ms")
        assert paused.status_code == 200 and paused.json()["pinned"] is False
        time.sleep(1.7)  # the pause is over; no request was made, so nothing probed Redis yet
        # the timed-out command was not sent again on a new connection
        assert _connections_received(admin) - before == 0

        before = _connections_received(admin)
        admin.execute_command("CLIENT", "PAUSE", "1500", "ALL")
        sessions = [str(uuid.uuid4()) for _ in range(20)]  # distinct: one session's requests share a lookup anyway
        with ThreadPoolExecutor(max_workers=20) as pool:  # the skip window is over: each of these may probe
            herd = list(pool.map(lambda s: decide(gw.url, REASONING_PROMPT, s), sessions))
        assert all(r.status_code == 200 for r in herd)
        time.sleep(1.6)
        # one probe reconnected and timed out, the others failed open at once (a second probe only if
        # this slow machine stretched the herd past the next skip window); before, each of the 20 probed
        assert _connections_received(admin) - before <= 2


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server to start a disposable Redis")
def test_healthz_never_scans_the_pin_store_and_readyz_pings_it(start_gateway, tmp_path):
    """Issue 15 item 8 and issue 17: liveness is O(1); readiness is one PING and says what is not ready."""
    import redis
    from redis_servers import redis_server

    with redis_server(tmp_path) as port:
        gw = start_gateway(decisions_only_config(f"redis://127.0.0.1:{port}/0"))
        admin = redis.Redis(port=port)
        with admin.pipeline(transaction=False) as pipe:
            for i in range(2000):
                pipe.set(f"pgw:v1:pin:{{load-{i}}}", '{"model": "openai/gpt-4o", "route": null, "created": 0}', ex=600)
            pipe.execute()
        admin.config_resetstat()
        for _ in range(5):
            health = httpx.get(f"{gw.url}/healthz")
            assert health.status_code == 200 and health.json()["status"] == "ok"
        assert "cmdstat_scan" not in admin.info("commandstats")

        ready = httpx.get(f"{gw.url}/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "ready" and ready.json()["checks"]["pin_store"]["ready"] is True
        assert int(admin.info("commandstats")["cmdstat_ping"]["calls"]) >= 1

    # Redis is gone now: still ready (requests are served unpinned) but degraded, saying which part and what
    # to do; strict readiness counts the pin store too; still alive.
    down = httpx.get(f"{gw.url}/readyz")
    assert down.status_code == 200 and down.json()["status"] == "degraded"
    store = down.json()["checks"]["pin_store"]
    assert store["ready"] is False and "redis" in store["detail"].lower() and "session_cache" in store["detail"]
    assert down.json()["checks"]["router"]["ready"] is True
    strict = httpx.get(f"{gw.url}/readyz?strict=1")
    assert strict.status_code == 503 and strict.json()["status"] == "not ready"
    assert httpx.get(f"{gw.url}/healthz").status_code == 200


def test_readyz_with_the_memory_store_is_ready_at_once(gateway):
    ready = httpx.get(f"{gateway.url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["pin_store"] == {"ready": True, "detail": "in-process memory store"}
    assert ready.json()["checks"]["router"]["ready"] is True
    assert isinstance(httpx.get(f"{gateway.url}/healthz").json()["pins"], int)  # cheap in memory: still counted
