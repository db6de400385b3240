"""Provider faults injected for real by the fake provider process, and what clients see."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import httpx
import openai
import pytest

from conftest import ANTHROPIC_KEY, OPENAI_KEY, free_port

CLAUDE = "anthropic/claude-sonnet-4-20250514"


def fault_config(fake_url: str) -> str:
    """No routes (so the requested model serves); short timeouts; one model on a dead port.

    The listener's `timeout` is the whole request's deadline, retries and failovers included.
    """
    return f"""\
listeners:
  - {{type: model, name: model_listener, port: 12000, max_retries: 1, timeout: 3s}}
model_providers:
  - model: openai/gpt-4o-mini
    access_key: $TEST_OPENAI_KEY
    base_url: {fake_url}
    default: true
    timeout: 1
  - model: openai/gpt-4o
    access_key: $TEST_OPENAI_KEY
    base_url: {fake_url}
  - model: anthropic/claude-sonnet-4-20250514
    access_key: $TEST_ANTHROPIC_KEY
    base_url: {fake_url}
    fallbacks: [openai/gpt-4o]
  - model: openai/dead
    access_key: $TEST_OPENAI_KEY
    base_url: http://127.0.0.1:{free_port()}
    fallbacks: []
  - model: openai/dead-with-failover
    access_key: $TEST_OPENAI_KEY
    base_url: http://127.0.0.1:{free_port()}
  - model: openai/hangs-then-falls-back
    access_key: $TEST_OPENAI_KEY
    base_url: {fake_url}
    timeout: 2
    fallbacks: [openai/hangs-too]
  - model: openai/hangs-too
    access_key: $TEST_OPENAI_KEY
    base_url: {fake_url}
    timeout: 2
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory, fake_provider, forwarding_path):
    from conftest import launch, stop

    g = launch(fault_config(fake_provider.url), tmp_path_factory.mktemp("faults"), env=forwarding_path,
               args=("--log-level", "debug"))
    # Answered requests first: litellm loads on first use, which takes seconds and would eat the 3 s deadline.
    for _ in range(20):
        if chat(g, "warm up").status_code == 200:
            break
    yield g
    stop(g.proc)


@pytest.fixture(autouse=True)
def _clean(fake_provider):
    fake_provider.clear()


def chat(gw, content: str, model: str = "gpt-4o-mini", session: str | None = None, **body) -> httpx.Response:
    headers = {"X-Session-Id": session} if session else {}
    return httpx.post(f"{gw.url}/v1/chat/completions", headers=headers, timeout=30,
                      json={"model": model, "messages": [{"role": "user", "content": content}], **body})


def sse(gw, content: str, model: str = "gpt-4o-mini") -> tuple[int, list[str]]:
    with httpx.stream("POST", f"{gw.url}/v1/chat/completions", timeout=30,
                      json={"model": model, "stream": True, "messages": [{"role": "user", "content": content}]}) as r:
        return r.status_code, [line[6:] for line in r.iter_lines() if line.startswith("data: ")]


def test_connection_refused_is_502_naming_the_provider(gw):
    r = chat(gw, "hello", model="openai/dead")
    assert r.status_code == 502
    error = r.json()["error"]
    assert error["code"] == "upstream_unreachable" and "openai/dead" in error["message"]


def test_unreachable_provider_fails_over_to_the_default_model(gw):
    r = chat(gw, "hello", model="openai/dead-with-failover")
    assert r.status_code == 200
    assert r.headers["x-router-model"] == "openai/gpt-4o-mini"
    assert r.headers["x-router-failover"] == "openai/dead-with-failover -> openai/gpt-4o-mini"


def test_provider_that_never_answers_gives_504_after_its_timeout(gw):
    started = time.monotonic()
    r = chat(gw, "hello FAULT:hang")
    elapsed = time.monotonic() - started
    assert r.status_code == 504 and "did not answer within 1s" in r.json()["error"]["message"]
    assert elapsed < 10  # 1 s timeout, one retry, no failover target: about 2 s, not an hour


def test_5xx_is_retried_then_502(gw, fake_provider):
    r = chat(gw, "hello FAULT:500")
    assert r.status_code == 502 and "gpt-4o-mini" in r.json()["error"]["message"]
    assert len(fake_provider.requests()) == 2  # the first try and max_retries=1


def test_429_is_relayed_with_retry_after(gw):
    r = chat(gw, "hello FAULT:429")
    assert r.status_code == 429 and r.headers["retry-after"] == "7"
    assert r.json()["error"]["code"] == "upstream_rate_limited"


def test_a_429_asking_for_more_than_the_deadline_leaves_is_not_retried_but_failed_over(gw, fake_provider):
    r = chat(gw, "hello FAULT:429@gpt-4o", model="gpt-4o")  # Retry-After 7 s; the deadline is 3 s
    assert r.status_code == 200
    assert r.headers["x-router-failover"] == "openai/gpt-4o -> openai/gpt-4o-mini"
    assert [q["body"]["model"] for q in fake_provider.requests()] == ["gpt-4o", "gpt-4o-mini"]


def test_a_429_is_retried_after_the_time_its_retry_after_asks_for(gw, fake_provider):
    started = time.monotonic()
    r = chat(gw, "hello FAULT:429soon")  # Retry-After 1 s fits the 3 s deadline: wait, then retry
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert len(fake_provider.requests()) == 2
    assert time.monotonic() - started >= 1.0


def test_one_deadline_bounds_the_whole_failover_chain(gw, fake_provider):
    started = time.monotonic()
    r = chat(gw, "hello FAULT:hang", model="openai/hangs-then-falls-back")  # 2 s per try, two models
    elapsed = time.monotonic() - started
    assert r.status_code == 504
    error = r.json()["error"]
    assert error["code"] == "deadline_exceeded"
    assert "3s" in error["message"] and "openai/hangs-then-falls-back, then openai/hangs-too" in error["message"]
    assert 2.9 <= elapsed < 3.9  # the listener's 3 s, not the 4 s the two tries would take
    assert [q["body"]["model"] for q in fake_provider.requests()] == ["hangs-then-falls-back", "hangs-too"]


def sse_response(gw, content: str, model: str = "gpt-4o-mini") -> tuple[httpx.Response, list[str]]:
    with httpx.stream("POST", f"{gw.url}/v1/chat/completions", timeout=30,
                      json={"model": model, "stream": True, "messages": [{"role": "user", "content": content}]}) as r:
        r.read()
    return r, [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]


def test_a_stream_request_answered_without_an_event_stream_is_retried_then_502(gw, fake_provider):
    r, _ = sse_response(gw, "hello FAULT:notjson")
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "upstream_bad_response"
    assert len(fake_provider.requests()) == 2  # nothing had reached the client: retried like a 502


def test_a_stream_request_answered_without_an_event_stream_fails_over(gw, fake_provider):
    r, data = sse_response(gw, "hello FAULT:notjson@gpt-4o", model="gpt-4o")
    assert r.status_code == 200 and r.headers["x-router-model"] == "openai/gpt-4o-mini"
    assert data[-1] == "[DONE]"
    text = "".join(json.loads(d)["choices"][0]["delta"].get("content") or "" for d in data[:-1]
                   if json.loads(d)["choices"])
    assert text.startswith("[gpt-4o-mini]")


def test_non_json_body_from_provider_is_502(gw):
    r = chat(gw, "hello FAULT:notjson")
    assert r.status_code == 502 and r.json()["error"]["type"] == "upstream_error"


@pytest.mark.parametrize("fault", ["midstream", "garbage"])
def test_stream_broken_midway_ends_with_an_sse_error_event_and_no_retry(gw, fake_provider, fault):
    status, data = sse(gw, f"one two three four five six FAULT:{fault}")
    assert status == 200
    assert json.loads(data[0])["object"] == "chat.completion.chunk"
    error = json.loads(data[-1])["error"]
    assert error["code"] == "stream_interrupted" and "gpt-4o-mini" in error["message"]
    assert "[DONE]" not in data
    assert len(fake_provider.requests()) == 1  # bytes had reached the client: no retry


def test_an_error_event_arriving_with_a_chunk_ends_the_stream_and_is_logged_as_interrupted(gw, fake_provider):
    sid = f"errorevent-{uuid.uuid4()}"
    with httpx.stream("POST", f"{gw.url}/v1/chat/completions", timeout=30, headers={"X-Session-Id": sid},
                      json={"model": "gpt-4o-mini", "stream": True, "messages": [
                          {"role": "user", "content": "one two three four five six FAULT:errorevent"}]}) as r:
        data = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert r.status_code == 200
    assert json.loads(data[0])["object"] == "chat.completion.chunk"
    assert "error" in json.loads(data[-1]) and "[DONE]" not in data
    deadline = time.monotonic() + 5
    while not (lines := [x for x in gw.output().splitlines() if sid in x]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(lines) == 1 and "stream_interrupted" in lines[0], lines


def test_openai_sdk_raises_on_a_broken_stream(gw):
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0)
    stream = client.chat.completions.create(model="gpt-4o-mini", stream=True,
                                            messages=[{"role": "user", "content": "a b c d e f FAULT:midstream"}])
    with pytest.raises(openai.APIError, match="stream interrupted"):
        for _ in stream:
            pass


def test_slow_stream_is_relayed_to_the_end(gw):
    started = time.monotonic()
    status, data = sse(gw, "one two three four five six FAULT:slowstream")
    assert status == 200 and data[-1] == "[DONE]"
    assert time.monotonic() - started >= 0.6  # three chunks, 200 ms apart
    text = "".join(json.loads(d)["choices"][0]["delta"].get("content", "") for d in data[:-1] if json.loads(d)["choices"])
    assert text.startswith("[gpt-4o-mini] one two")


def test_client_disconnect_mid_stream_cancels_the_upstream_request(gw, fake_provider):
    with httpx.stream("POST", f"{gw.url}/v1/chat/completions", timeout=30, json={
            "model": "gpt-4o-mini", "stream": True,
            "messages": [{"role": "user", "content": "one two three four five six FAULT:slowstream"}]}) as r:
        next(r.iter_lines())  # first chunk arrives, then we hang up
    deadline = time.monotonic() + 5
    while "disconnect" not in fake_provider.events() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "disconnect" in fake_provider.events()


def test_pinned_session_that_fails_over_is_repinned_to_the_model_that_answered(gw, fake_provider):
    sid = str(uuid.uuid4())
    first = chat(gw, "hello", model=CLAUDE, session=sid)
    assert first.headers["x-router-model"] == CLAUDE
    failed_over = chat(gw, f"hello FAULT:500@claude-sonnet-4-20250514", model=CLAUDE, session=sid)
    assert failed_over.status_code == 200
    assert failed_over.headers["x-router-model"] == "openai/gpt-4o"
    assert failed_over.headers["x-router-pinned"] == "false"
    assert failed_over.headers["x-router-failover"] == f"{CLAUDE} -> openai/gpt-4o"
    assert failed_over.json()["choices"][0]["message"]["content"].startswith("[gpt-4o]")
    after = chat(gw, "hello again", model=CLAUDE, session=sid)
    assert after.headers["x-router-model"] == "openai/gpt-4o" and after.headers["x-router-pinned"] == "true"


def test_a_thousand_concurrent_first_requests_of_one_session_get_one_model(gateway):
    sid = str(uuid.uuid4())
    prompts = ["Write a Python function that merges two dicts.",
               "Analyze the trade-offs of SQL and NoSQL in depth."] * 500

    async def flood():
        limits = httpx.Limits(max_connections=1000)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            return await asyncio.gather(*(client.post(
                f"{gateway.url}/routing/v1/chat/completions", headers={"X-Session-Id": sid},
                json={"messages": [{"role": "user", "content": p}]}) for p in prompts))

    answers = [r.json() for r in asyncio.run(flood())]
    assert len(answers) == 1000
    assert len({a["model"] for a in answers}) == 1
    assert sum(not a["pinned"] for a in answers) == 1


def process_stats(pid: int) -> tuple[int, int]:
    fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    rss_kb = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if line.startswith("VmRSS:"))
    return fds, rss_kb


def test_a_thousand_faulty_requests_leak_no_connections_tasks_or_memory(gw):
    faults = ["hello FAULT:500", "hello FAULT:429", "hello FAULT:notjson", "hello"]
    streamed = ["a b c d e f FAULT:midstream", "a b c d e f FAULT:garbage"]

    async def batch(n: int):
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=20)) as client:
            sem = asyncio.Semaphore(20)

            async def one(i: int):
                async with sem:
                    body = {"model": "openai/dead" if i % 7 == 0 else "gpt-4o-mini",
                            "messages": [{"role": "user", "content": (faults + streamed)[i % 6]}],
                            "stream": i % 6 >= 4}
                    r = await client.post(f"{gw.url}/v1/chat/completions", json=body)
                    assert r.status_code < 500 or r.status_code in (502, 504)

            await asyncio.gather(*(one(i) for i in range(n)))

    asyncio.run(batch(200))  # warm up: imports, pools, caches
    time.sleep(0.5)
    fds_before, rss_before = process_stats(gw.proc.pid)
    tasks_before = httpx.get(f"{gw.url}/healthz").json()["tasks"]
    asyncio.run(batch(1000))
    time.sleep(0.5)
    fds_after, rss_after = process_stats(gw.proc.pid)
    tasks_after = httpx.get(f"{gw.url}/healthz").json()["tasks"]
    assert fds_after <= fds_before + 5, (fds_before, fds_after)
    assert tasks_after <= tasks_before + 2, (tasks_before, tasks_after)
    assert rss_after - rss_before < 20_000, (rss_before, rss_after)  # KiB: no per-request growth


def test_provider_keys_never_appear_in_anything_the_gateway_printed(gw):
    # This module's gateway runs at --log-level debug and has served every fault above by now.
    r = chat(gw, "hello FAULT:500")
    assert OPENAI_KEY not in r.text
    output = gw.output()
    assert "upstream" in output or "provider" in output  # it did log the faults
    assert OPENAI_KEY not in output and ANTHROPIC_KEY not in output
