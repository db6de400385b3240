"""Metrics, request logs and tracing, read the way an operator would: from /metrics and the log."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import ANTHROPIC_KEY, CODE_PROMPT, OPENAI_KEY, REASONING_PROMPT, SMALL_TALK, provider_config

CLAUDE = "anthropic/claude-sonnet-4-20250514"


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    text = httpx.get(f"{url}/metrics").text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def observed(start_gateway, fake_provider, forwarding_path):
    """A gateway logging JSON, keeping at most two pins so evictions show."""
    return start_gateway(provider_config(fake_provider.url, routing="routing:\n  session_max_entries: 2\n"),
                         env=forwarding_path, args=("--log-format", "json"))


def json_log_lines(gw, until) -> list[dict]:
    """The gateway's JSON log lines, once `until(lines)` holds (request lines are written in batches)."""
    deadline = time.monotonic() + 5
    while True:
        lines = [json.loads(line) for line in gw.output().splitlines() if line.startswith("{")]
        if until(lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def post(gw, path: str, content: str, session: str | None = None, **extra) -> httpx.Response:
    headers = {"X-Session-Id": session} if session else {}
    return httpx.post(f"{gw.url}{path}", headers=headers, timeout=30,
                      json={"messages": [{"role": "user", "content": content}], **extra})


def test_metrics_follow_a_scripted_sequence(observed):
    gw = observed
    before = scrape(gw.url)
    routing = "/routing/v1/chat/completions"
    post(gw, routing, CODE_PROMPT)  # routed
    post(gw, routing, CODE_PROMPT, "m-1")  # routed, pinned afterwards
    post(gw, routing, REASONING_PROMPT, "m-1")  # pinned hit
    post(gw, routing, SMALL_TALK)  # no route
    post(gw, routing, CODE_PROMPT, "m-2")
    post(gw, routing, CODE_PROMPT, "m-3")  # third pin with a limit of two: one eviction
    failed = post(gw, "/v1/chat/completions", f"{SMALL_TALK} FAULT:500")  # no route; upstream error
    assert failed.status_code == 502
    post(gw, "/v1/chat/completions", SMALL_TALK, model="gpt-4o-mini")  # served
    after = scrape(gw.url)

    def moved(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("gateway_routing_decisions_total", route="code_generation", outcome="routed") == 4
    assert moved("gateway_routing_decisions_total", route="code_generation", outcome="pinned") == 1
    assert moved("gateway_routing_decisions_total", route="none", outcome="no_route") == 3
    assert moved("gateway_pin_store_operations_total", result="hit") == 1
    assert moved("gateway_pin_store_operations_total", result="miss") == 3
    assert moved("gateway_pin_store_evictions_total") == 1
    assert value(after, "gateway_pin_store_size") == 2
    assert moved("gateway_requests_total", endpoint=routing, status="200", model=CLAUDE) == 5
    assert moved("gateway_requests_total", endpoint="/v1/chat/completions", status="502",
                 model="openai/gpt-4o-mini") == 1
    assert moved("gateway_upstream_errors_total", provider="openai/gpt-4o-mini", status="502") == 3  # 1 + 2 retries
    assert moved("gateway_router_latency_seconds_count") == 7
    assert moved("gateway_upstream_latency_seconds_count", provider="openai/gpt-4o-mini", stream="false") == 1
    assert value(after, "gateway_in_flight_requests") == 1  # the scrape itself
    for (name, labels), _ in after.items():  # label values stay bounded: no session ids, no prompts
        assert not any(v.startswith("m-") or "Python" in v for _, v in labels), (name, labels)


def test_request_log_lines_are_json_with_the_fields_to_explain_a_session(observed):
    gw = observed
    sid = f"explain-{uuid.uuid4()}"
    post(gw, "/routing/v1/chat/completions", CODE_PROMPT, sid)
    r = post(gw, "/v1/chat/completions", REASONING_PROMPT, sid)
    assert r.status_code == 200
    streamed = post(gw, "/v1/chat/completions", REASONING_PROMPT, sid, stream=True,
                    stream_options={"include_usage": True})
    assert streamed.status_code == 200
    lines = json_log_lines(gw, lambda ls: sum(line.get("session_id") == sid for line in ls) >= 3)
    mine = [line for line in lines if line.get("session_id") == sid]
    assert [line["endpoint"] for line in mine] == ["/routing/v1/chat/completions"] + ["/v1/chat/completions"] * 2
    first, second, third = mine
    assert third["pinned"] is True and third["prompt_tokens"] > 0 and third["completion_tokens"] > 0
    assert (first["route"], first["model"], first["pinned"], first["outcome"]) == (
        "code_generation", CLAUDE, False, "routed")
    assert (second["route"], second["model"], second["pinned"], second["outcome"]) == (
        "code_generation", CLAUDE, True, "pinned")
    for line in mine:
        assert set(line) >= {"ts", "trace_id", "endpoint", "session_id", "route", "model", "pinned", "status",
                             "upstream_ms", "gateway_ms"}
        assert line["status"] == 200 and line["gateway_ms"] >= 0
    assert second["upstream_ms"] > 0 and second["prompt_tokens"] > 0 and second["completion_tokens"] > 0
    assert CODE_PROMPT not in gw.output() and REASONING_PROMPT not in gw.output()  # no prompt text by default
    assert OPENAI_KEY not in gw.output() and ANTHROPIC_KEY not in gw.output()


def test_session_ids_can_be_logged_as_hashes(start_gateway, fake_provider):
    gw = start_gateway(provider_config(fake_provider.url), args=("--log-format", "json", "--hash-session-ids"))
    post(gw, "/routing/v1/chat/completions", CODE_PROMPT, "secret-session-42")
    lines = [line for line in json_log_lines(gw, lambda ls: any("endpoint" in line for line in ls))
             if "endpoint" in line]
    assert lines[-1]["session_id"].startswith("sha256:")
    assert "secret-session-42" not in gw.output()


def test_gateway_overhead_header_on_both_endpoints(gateway):
    for path in ("/routing/v1/chat/completions", "/v1/chat/completions"):
        r = post(gateway, path, SMALL_TALK)
        assert r.status_code == 200
        assert 0 <= float(r.headers["x-gateway-overhead-ms"]) < 1000


def test_traceparent_is_propagated_to_the_provider(gateway, fake_provider):
    fake_provider.clear()
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    for model in ("gpt-4o-mini", "claude-sonnet-4-20250514"):  # relay or litellm, and litellm's translation
        r = httpx.post(f"{gateway.url}/v1/chat/completions", headers={"traceparent": traceparent}, timeout=30,
                       json={"model": model, "messages": [{"role": "user", "content": SMALL_TALK}]})
        assert r.status_code == 200 and r.headers["x-trace-id"] == "0af7651916cd43dd8448eb211c80319c"
    received = [req["headers"].get("traceparent") for req in fake_provider.requests()]
    assert received == [traceparent, traceparent]


def test_otel_spans_continue_the_client_trace_and_reach_the_provider(start_gateway, fake_provider):
    pytest.importorskip("opentelemetry.sdk")
    gw = start_gateway(provider_config(fake_provider.url), env={"OTEL_TRACES_EXPORTER": "console"},
                       args=("--otel",))
    fake_provider.clear()
    trace, client_span = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    r = httpx.post(f"{gw.url}/v1/chat/completions", headers={"traceparent": f"00-{trace}-{client_span}-01"},
                   json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": SMALL_TALK}]}, timeout=30)
    assert r.status_code == 200
    _, sent_trace, sent_parent, _ = fake_provider.requests()[-1]["headers"]["traceparent"].split("-")
    assert sent_trace == trace and sent_parent != client_span  # the provider's parent is our upstream span
    deadline = time.monotonic() + 5
    while '"name": "POST /v1/chat/completions"' not in gw.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    output = gw.output()
    for name in ("gateway.decide", "gateway.upstream", "POST /v1/chat/completions"):
        assert f'"name": "{name}"' in output
    assert output.count(f'"trace_id": "0x{trace}"') == 3
    assert f'"span_id": "0x{sent_parent}"' in output
