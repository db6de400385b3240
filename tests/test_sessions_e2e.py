"""Session pinning and the decision endpoint, against a real gateway process."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai

from conftest import CODE_PROMPT, REASONING_PROMPT, SMALL_TALK, provider_config

CLAUDE = "anthropic/claude-sonnet-4-20250514"
GPT4O = "openai/gpt-4o"


def test_decision_without_session_has_plano_shape_and_no_session_id(gateway):
    r = gateway.decide(CODE_PROMPT)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"model", "route", "trace_id", "pinned"}
    assert body["model"] == CLAUDE and body["route"] == "code_generation" and body["pinned"] is False
    assert len(body["trace_id"]) == 32


def test_decision_with_session_reports_session_and_pins_second_request(gateway):
    sid = str(uuid.uuid4())
    first = gateway.decide(CODE_PROMPT, sid).json()
    second = gateway.decide(CODE_PROMPT, sid).json()
    assert first == {**first, "session_id": sid, "pinned": False, "model": CLAUDE}
    assert second == {**second, "session_id": sid, "pinned": True, "model": CLAUDE, "route": "code_generation"}


def test_trace_id_comes_from_traceparent(gateway):
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    r = httpx.post(f"{gateway.url}/routing/v1/chat/completions",
                   headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"},
                   json={"messages": [{"role": "user", "content": "hi"}]})
    assert r.json()["trace_id"] == trace


def test_no_route_returns_null_route_and_default_model(gateway):
    body = gateway.decide(SMALL_TALK).json()
    assert body["route"] is None and body["model"] == "openai/gpt-4o-mini"


def test_pin_outlives_the_routers_disagreement(gateway):
    sid = str(uuid.uuid4())
    assert gateway.decide(CODE_PROMPT, sid).json()["model"] == CLAUDE
    # Without the session this prompt routes elsewhere ...
    assert gateway.decide(REASONING_PROMPT).json()["model"] == GPT4O
    # ... but the session stays where it started.
    pinned = gateway.decide(REASONING_PROMPT, sid).json()
    assert pinned["model"] == CLAUDE and pinned["pinned"] is True and pinned["route"] == "code_generation"


def test_session_pinned_on_decision_endpoint_is_served_pinned_by_forwarding(gateway, fake_provider):
    sid = str(uuid.uuid4())
    assert gateway.decide(REASONING_PROMPT, sid).json()["model"] == GPT4O
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0,
                           default_headers={"X-Session-Id": sid})
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini",
                                                           messages=[{"role": "user", "content": CODE_PROMPT}])
    assert raw.headers["x-router-pinned"] == "true" and raw.headers["x-router-model"] == GPT4O
    assert fake_provider.requests()[-1]["body"]["model"] == "gpt-4o"


def test_session_pinned_by_forwarding_is_reported_pinned_by_decision_endpoint(gateway):
    sid = str(uuid.uuid4())
    r = httpx.post(f"{gateway.url}/v1/chat/completions", headers={"X-Session-Id": sid},
                   json={"messages": [{"role": "user", "content": CODE_PROMPT}]}, timeout=30)
    assert r.status_code == 200 and r.headers["x-router-pinned"] == "false"
    decision = gateway.decide(REASONING_PROMPT, sid).json()
    assert decision["pinned"] is True and decision["model"] == CLAUDE


def test_concurrent_first_requests_of_one_session_get_one_model(gateway):
    sid = str(uuid.uuid4())
    prompts = [CODE_PROMPT, REASONING_PROMPT] * 25  # mixed intents racing for the first pin
    with ThreadPoolExecutor(max_workers=25) as pool:
        bodies = list(pool.map(lambda p: gateway.decide(p, sid).json(), prompts))
    assert len({b["model"] for b in bodies}) == 1
    assert sum(1 for b in bodies if not b["pinned"]) == 1


def test_ttl_expiry_reroutes_and_use_slides_the_ttl(start_gateway, fake_provider):
    gw = start_gateway(provider_config(fake_provider.url, routing="""\
        routing:
          session_ttl_seconds: 1
        """))
    busy, idle = str(uuid.uuid4()), str(uuid.uuid4())
    assert gw.decide(CODE_PROMPT, busy).json()["pinned"] is False
    assert gw.decide(CODE_PROMPT, idle).json()["pinned"] is False
    for _ in range(4):  # 1.6 s of steady use: past the TTL counted from the first request
        time.sleep(0.4)
        assert gw.decide(REASONING_PROMPT, busy).json()["pinned"] is True
    # The idle session expired and routes afresh, by its new prompt.
    again = gw.decide(REASONING_PROMPT, idle).json()
    assert again["pinned"] is False and again["model"] == GPT4O


def test_least_recently_used_session_is_evicted_at_the_limit(start_gateway, fake_provider):
    gw = start_gateway(provider_config(fake_provider.url, routing="""\
        routing:
          session_max_entries: 2
        """))
    a, b, c = "session-a", "session-b", "session-c"
    gw.decide(CODE_PROMPT, a)
    gw.decide(CODE_PROMPT, b)
    assert gw.decide(CODE_PROMPT, a).json()["pinned"] is True  # a is now the most recent
    gw.decide(CODE_PROMPT, c)  # evicts b, the least recently used
    assert gw.decide(REASONING_PROMPT, b).json() | {"trace_id": ""} == {
        "model": GPT4O, "route": "complex_reasoning", "session_id": b, "session_source": "header:x-session-id", "pinned": False, "trace_id": ""}
    assert gw.decide(REASONING_PROMPT, c).json()["pinned"] is True
    assert gw.decide(REASONING_PROMPT, a).json()["pinned"] is False  # b's re-pin evicted a


def test_bad_input_gets_clear_4xx_and_gateway_keeps_serving(gateway):
    url = f"{gateway.url}/routing/v1/chat/completions"
    cases = [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"messages": []}', 400, "at least one message"),
        (b'{"model": "gpt-4o"}', 400, "`messages` is required"),
        (b'{"messages": "hi"}', 400, "must be a list"),
        (b'{"messages": [{"role": "wizard", "content": "hi"}]}', 400, "role"),
        (b'{"messages": [{"role": "user", "content": 5}]}', 400, "content"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}', 400, "stream"),
        (b"\xff\xfe{}", 400, "UTF-8"),
    ]
    for raw, status, phrase in cases:
        r = httpx.post(url, content=raw, headers={"content-type": "application/json"})
        assert r.status_code == status, raw
        assert phrase in r.json()["error"]["message"], (raw, r.json())
    for sid, phrase in [("", "empty"), ("x" * 257, "257"), ("bad id", "printable")]:
        r = httpx.post(url, headers={"X-Session-Id": sid}, json={"messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 400 and phrase in r.json()["error"]["message"]
    big = b'{"messages": [{"role": "user", "content": "' + b"a" * (5 * 1024 * 1024) + b'"}]}'
    r = httpx.post(url, content=big)
    assert r.status_code == 413 and "max_body_bytes" in r.json()["error"]["message"]
    assert gateway.decide(CODE_PROMPT).status_code == 200
